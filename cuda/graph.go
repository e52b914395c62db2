//go:build cuda

package cuda

/*
#include "distill_cuda.h"
*/
import "C"

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"unsafe"
)

// Graph is a sequence of launches on the device's stream recorded once and
// replayed with one call (a CUDA graph): for work whose launches cost the
// host more than the device spends on them — one decoded token of a small
// model is a few hundred short kernels. A replay reads and writes the same
// buffers as the recording, with the same arguments; what changes between
// replays must live in device memory the kernels read.
type Graph struct {
	exec unsafe.Pointer
}

// While a capture is open every launch onto the stream is recorded, from
// whichever goroutine: so calls from goroutines other than the capturing
// one wait for it to end (call checks capG under callMu; capMu is held for
// the whole capture).
var (
	capMu sync.Mutex
	capG  atomic.Int64 // the capturing goroutine's id, 0 when none
	// Buffers freed inside the capture (by its goroutine, under capMu):
	// the recording writes them at every replay, so they go back to their
	// pool only once the capture is dropped for it.
	capFreed []*Buffer
)

// Capture records the device work f launches and returns it as a Graph. f
// must make no synchronising call (no upload, no download) and use no
// buffer pool at all — not even a cached buffer: another goroutine may be
// waiting for the capture inside the pool's lock. When f fails or panics,
// or the recording fails, nothing is kept (a panic goes on after) and the
// error says why; the stream is back to normal either way.
func (d *Device) Capture(f func() error) (g *Graph, err error) {
	// Buffers f freed go back to their pools last, once capMu is released
	// (the deferred calls run in reverse): a goroutine waiting for the
	// capture may hold a pool's lock. The recording is gone by then, so
	// nothing writes them.
	var freed []*Buffer
	defer func() {
		for _, b := range freed {
			if b.ptr != nil {
				b.dev.Pool.Put(b.ptr)
				b.ptr = nil
				if b.blk != nil {
					b.blk.freed = true // its views are gone too (Free's own rule)
				}
			}
		}
	}()
	capMu.Lock()
	defer capMu.Unlock()
	defer func() { freed, capFreed = capFreed, nil }()
	// Begin and claim the stream at once: a call from another goroutine in
	// between would be recorded.
	callMu.Lock()
	err = callLocked(func() C.int { return C.dc_graph_begin() })
	if err == nil {
		capG.Store(goid())
	}
	callMu.Unlock()
	if err != nil {
		return nil, err
	}
	ended := false
	end := func(keep bool) (unsafe.Pointer, error) {
		var exec unsafe.Pointer
		eerr := call(func() C.int { return C.dc_graph_end(&exec, cbool(keep)) })
		callMu.Lock()
		capG.Store(0)
		callMu.Unlock()
		ended = true
		return exec, eerr
	}
	defer func() {
		if !ended { // f panicked: close the recording before the panic goes on
			end(false)
		}
	}()
	ferr := f()
	var ffree error
	if n := len(capFreed); n > 0 {
		ffree = fmt.Errorf("cuda: %d buffers freed inside a graph capture (the recording would write memory the pool hands out again): %w", n, ErrCaptureFree)
	}
	exec, eerr := end(ferr == nil && ffree == nil)
	if err := errors.Join(ferr, ffree, eerr); err != nil {
		return nil, err
	}
	return &Graph{exec: exec}, nil
}

// ErrCaptureFree is wrapped by a capture whose work freed a buffer: work
// meant for recording frees its buffers after.
var ErrCaptureFree = errors.New("device memory must be freed after the capture")

// ErrCaptureAlloc is wrapped by an allocation refused inside a capture: work
// meant for recording takes its buffers (scratch included) before.
var ErrCaptureAlloc = errors.New("device memory must be allocated before the capture")

// ReserveBLASWorkspace gives cuBLAS a workspace of its own from the pool,
// kept for the device's life (idempotent): cuBLAS's recommended size, 32
// MiB on Hopper, 4 MiB before. Recordings of GEMMs then use it; cuBLAS
// before 12.2 allocated a new workspace for each capture otherwise, so
// memory grew with every recording. Called before recording training steps
// only, so eager work keeps cuBLAS's own until then.
func (d *Device) ReserveBLASWorkspace() error {
	blasWSMu.Lock()
	defer blasWSMu.Unlock()
	if blasWS != nil {
		return nil
	}
	bytes := 4 << 20
	if d.Major >= 9 {
		bytes = 32 << 20
	}
	ws, err := d.Alloc(U8, bytes)
	if err != nil {
		return fmt.Errorf("cuda: cuBLAS workspace: %w", err)
	}
	if err := call(func() C.int { return C.dc_blas_workspace(ws.ptr, C.size_t(bytes)) }); err != nil {
		ws.Free()
		return err
	}
	blasWS = ws
	return nil
}

var (
	blasWSMu sync.Mutex
	blasWS   *Buffer
)

// Launch replays g on the stream (asynchronously, like a launch).
func (g *Graph) Launch() error {
	return call(func() C.int { return C.dc_graph_launch(g.exec) })
}

// Free releases g; nil and freed graphs are no-ops.
func (g *Graph) Free() {
	if g == nil || g.exec == nil {
		return
	}
	call(func() C.int { return C.dc_graph_free(g.exec) })
	g.exec = nil
}

// waitCapture is called with callMu held: while another goroutine captures,
// it releases callMu until that capture ends, then takes it again.
func waitCapture() {
	for {
		g := capG.Load()
		if g == 0 || g == goid() {
			return
		}
		callMu.Unlock()
		capMu.Lock() // held by the capture until it ends
		capMu.Unlock()
		callMu.Lock()
	}
}

// goid is the calling goroutine's id, read from its stack header
// ("goroutine 123 [running]:"): Go exposes no other, and it is read only
// while a capture is open.
func goid() int64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b = bytes.TrimPrefix(b, []byte("goroutine "))
	if i := bytes.IndexByte(b, ' '); i > 0 {
		b = b[:i]
	}
	id, _ := strconv.ParseInt(string(b), 10, 64)
	return id
}
