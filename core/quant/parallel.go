package quant

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"distill/core/tensor"
)

// The worker pool. Package tensor has the same design (parallel.go:
// helpers that keep spinning between ops) but does not export it; this copy
// exists until it does, and should then be replaced by a call to it, so
// that one pool serves both packages.
//
// Why spin: a decode matvec on a SmolLM2 projection takes 10-40 µs; waking
// a parked goroutine's thread costs 5-20 µs, and with plain goroutines the
// 2-worker matvec measured slower than the 1-worker one (17.6 against
// 13.5 µs on 576×576 NF4).

// helperSpin is how long an idle helper polls for work before it parks.
var helperSpin = 100 * time.Microsecond

type helper struct {
	job    atomic.Pointer[job]
	parked atomic.Bool
	wake   chan struct{} // one token per parked → awake transition
}

type job struct {
	fn      func(lo, hi int)
	lo, hi  int
	pending *atomic.Int32
}

var (
	helpersBusy atomic.Bool // held by the parallelChunks call using the helpers
	helpers     []*helper   // guarded by helpersBusy
)

func (h *helper) loop() {
	for {
		if j := h.job.Swap(nil); j != nil {
			j.fn(j.lo, j.hi)
			j.pending.Add(-1)
			continue
		}
		if h.spin() {
			continue
		}
		h.parked.Store(true)
		if h.job.Load() != nil && h.parked.CompareAndSwap(true, false) {
			continue // posted before we parked, and the poster saw us awake
		}
		<-h.wake
	}
}

// spin polls for a job for up to helperSpin, yielding the processor between
// rounds so that other goroutines (package tensor's helpers among them) run.
func (h *helper) spin() bool {
	deadline := time.Now().Add(helperSpin)
	for {
		for range 64 {
			if h.job.Load() != nil {
				return true
			}
		}
		if time.Now().After(deadline) {
			return false
		}
		runtime.Gosched()
	}
}

func (h *helper) post(j *job) {
	h.job.Store(j)
	if h.parked.CompareAndSwap(true, false) {
		h.wake <- struct{}{}
	}
}

// parallelChunks splits [0, n) into at most tensor.Threads contiguous chunks
// of at least grain items, with boundaries at multiples of align (the last
// chunk takes the remainder), and runs fn on each concurrently, the last on
// the calling goroutine. One caller at a time gets the spinning helpers; a
// concurrent or nested call starts goroutines instead.
func parallelChunks(n, grain, align int, fn func(lo, hi int)) {
	align = max(align, 1)
	grain = max(grain, 1)
	workers := min(tensor.Threads, n/grain)
	if workers <= 1 {
		if n > 0 {
			fn(0, n)
		}
		return
	}
	chunk := ((n+workers-1)/workers + align - 1) / align * align
	var buf [16][2]int
	chunks := buf[:0]
	for lo := 0; lo < n; lo += chunk {
		chunks = append(chunks, [2]int{lo, min(lo+chunk, n)})
	}
	last, rest := chunks[len(chunks)-1], chunks[:len(chunks)-1]
	if len(rest) == 0 {
		fn(0, n)
		return
	}
	if !helpersBusy.CompareAndSwap(false, true) {
		var wg sync.WaitGroup
		for _, c := range rest {
			wg.Add(1)
			go func() {
				defer wg.Done()
				fn(c[0], c[1])
			}()
		}
		fn(last[0], last[1])
		wg.Wait()
		return
	}
	defer helpersBusy.Store(false)
	for len(helpers) < len(rest) {
		h := &helper{wake: make(chan struct{}, 1)}
		helpers = append(helpers, h)
		go h.loop()
	}
	var pending atomic.Int32
	pending.Store(int32(len(rest)))
	for i, c := range rest {
		helpers[i].post(&job{fn: fn, lo: c[0], hi: c[1], pending: &pending})
	}
	fn(last[0], last[1])
	for i := 0; pending.Load() != 0; i++ {
		if i&63 == 63 {
			runtime.Gosched()
		}
	}
}

var scratchPool sync.Pool // of *[]float32

// getScratch returns a pooled buffer of n floats (contents undefined).
func getScratch(n int) *[]float32 {
	if p, ok := scratchPool.Get().(*[]float32); ok && cap(*p) >= n {
		*p = (*p)[:n]
		return p
	}
	s := make([]float32, n)
	return &s
}

func putScratch(p *[]float32) { scratchPool.Put(p) }
