//go:build cuda

package cuda

/*
#include "distill_cuda.h"
*/
import "C"

import (
	"fmt"
	"slices"
	"unsafe"

	"distill/core/tensor"
)

// Kind is a Buffer's element type.
type Kind uint8

const (
	F32  Kind = iota // float32
	F16              // IEEE half, stored as uint16
	BF16             // bfloat16, stored as uint16
	I32              // int32 (token ids, positions)
	U8               // bytes (NF4 codes, double-quant codes)
	F64              // float64 (reductions)
	Addr             // device addresses as uint64 (per-row tables of cache buffers)
	U64              // uint64 (keys a recorded step's kernels read, as LoRA dropout's)
)

// Size is one element's bytes.
func (k Kind) Size() int {
	switch k {
	case F32, I32:
		return 4
	case F16, BF16:
		return 2
	case U8:
		return 1
	case F64, Addr, U64:
		return 8
	}
	return 0
}

func (k Kind) String() string {
	return [...]string{"f32", "f16", "bf16", "i32", "u8", "f64", "addr", "u64"}[k]
}

// KindOf is the Kind that stores a tensor dtype.
func KindOf(dt tensor.DType) Kind {
	switch dt {
	case tensor.F16:
		return F16
	case tensor.BF16:
		return BF16
	}
	return F32
}

// Buffer is device memory from the Device's pool: Len elements of Kind.
// Free returns it to the pool; a Buffer must not be used after. A View shares
// its parent's memory and frees nothing; freeing the parent frees its views
// too: an op, copy or zeroing given one then fails rather than write into a
// block the pool may have handed out again.
type Buffer struct {
	ptr   unsafe.Pointer
	Len   int
	Kind  Kind
	dev   *Device
	owned bool
	blk   *block // the allocation it lies in, shared with its views
}

// block is an allocation's state, shared by its buffer and their views.
type block struct{ freed bool }

// gone says whether b's memory went back to the pool (b or the buffer it
// is a view of was freed).
func (b *Buffer) gone() bool { return b.ptr == nil || b.blk != nil && b.blk.freed }

// Bytes is the buffer's size in bytes.
func (b *Buffer) Bytes() int { return b.Len * b.Kind.Size() }

// Ptr is the device address of element off.
func (b *Buffer) Ptr(off int) unsafe.Pointer { return unsafe.Add(b.ptr, off*b.Kind.Size()) }

func (b *Buffer) String() string { return fmt.Sprintf("%s[%d]", b.Kind, b.Len) }

// Carve is n elements of kind k at byte offset off of b (a U8 arena):
// a view that shares b's memory and frees nothing, or an error past b's end
// or off an element's alignment.
func (b *Buffer) Carve(k Kind, off, n int) (*Buffer, error) {
	if off < 0 || n < 0 || off%max(1, k.Size()) != 0 || off+n*k.Size() > b.Bytes() {
		return nil, fmt.Errorf("cuda: %s[%d] at byte %d of %s", k, n, off, b)
	}
	return &Buffer{ptr: unsafe.Add(b.ptr, off), Len: n, Kind: k, dev: b.dev, blk: b.blk}, nil
}

// View is elements [off, off+n) of b, sharing its memory.
func (b *Buffer) View(off, n int) *Buffer {
	if off < 0 || n < 0 || off+n > b.Len {
		panic(fmt.Sprintf("cuda: view [%d, %d) of %s", off, off+n, b))
	}
	return &Buffer{ptr: b.Ptr(off), Len: n, Kind: b.Kind, dev: b.dev, blk: b.blk}
}

// Alloc returns an uninitialised buffer of n elements. Refused inside a
// graph capture on the capturing goroutine: the recording would keep an
// address the pool may hand out again once the buffer is freed.
func (d *Device) Alloc(k Kind, n int) (*Buffer, error) { return d.alloc(k, n, d.Pool.Get) }

// AllocExact is Alloc for a large buffer held long (Pool.GetExact): its
// size rounded to 2 MiB, not to its size class.
func (d *Device) AllocExact(k Kind, n int) (*Buffer, error) { return d.alloc(k, n, d.Pool.GetExact) }

func (d *Device) alloc(k Kind, n int, get func(bytes int) (unsafe.Pointer, error)) (*Buffer, error) {
	if n < 0 {
		return nil, fmt.Errorf("cuda: alloc of %d %s elements", n, k)
	}
	if g := capG.Load(); g != 0 && g == goid() {
		return nil, fmt.Errorf("cuda: alloc %s[%d] inside a graph capture: %w", k, n, ErrCaptureAlloc)
	}
	p, err := get(max(1, n*k.Size()))
	if err != nil {
		return nil, fmt.Errorf("cuda: alloc %s[%d]: %w", k, n, err)
	}
	return &Buffer{ptr: p, Len: n, Kind: k, dev: d, owned: true, blk: &block{}}, nil
}

// Zeros returns a zeroed buffer of n elements.
func (d *Device) Zeros(k Kind, n int) (*Buffer, error) {
	b, err := d.Alloc(k, n)
	if err != nil {
		return nil, err
	}
	if err := b.Zero(); err != nil {
		b.Free()
		return nil, err
	}
	return b, nil
}

// Free returns an owned buffer to the pool (nil-safe, idempotent; a no-op
// on a View). Inside a graph capture, on its goroutine, the capture fails
// instead (ErrCaptureFree) and the buffer goes back once it has ended.
func (b *Buffer) Free() {
	if b == nil || b.ptr == nil || !b.owned {
		return
	}
	if g := capG.Load(); g != 0 && g == goid() {
		if !slices.Contains(capFreed, b) {
			capFreed = append(capFreed, b)
		}
		return
	}
	b.dev.Pool.Put(b.ptr)
	b.ptr, b.blk.freed = nil, true
}

// Zero clears the buffer (asynchronously, on the stream).
func (b *Buffer) Zero() error {
	if b.gone() {
		return fmt.Errorf("cuda: zeroing %s, which was freed", b)
	}
	return call(func() C.int { return C.dc_memset0(b.ptr, C.size_t(b.Bytes())) })
}

// Element is a Go type a Buffer can be copied from and to; its size must be
// the buffer's Kind's.
type Element interface {
	~float32 | ~uint16 | ~int32 | ~uint8 | ~float64 | ~uint64
}

func checkCopy[T Element](op string, b *Buffer, off, n int) error {
	var z T
	if int(unsafe.Sizeof(z)) != b.Kind.Size() {
		return fmt.Errorf("cuda: %s of %T elements with a %s buffer", op, z, b)
	}
	if b.gone() {
		return fmt.Errorf("cuda: %s with %s, which was freed", op, b)
	}
	if off < 0 || off+n > b.Len {
		return fmt.Errorf("cuda: %s of %d elements at %d with a %s buffer", op, n, off, b)
	}
	return nil
}

// Write copies v to elements [off, off+len(v)) of b; v may be reused when it
// returns.
func Write[T Element](b *Buffer, off int, v []T) error {
	if err := checkCopy[T]("upload", b, off, len(v)); err != nil || len(v) == 0 {
		return err
	}
	src := unsafe.Pointer(unsafe.SliceData(v))
	return call(func() C.int { return C.dc_h2d(b.Ptr(off), src, C.size_t(len(v)*b.Kind.Size())) })
}

// Read copies elements [off, off+len(dst)) of b into dst, after all the
// stream's work before it.
func Read[T Element](b *Buffer, off int, dst []T) error {
	if err := checkCopy[T]("download", b, off, len(dst)); err != nil || len(dst) == 0 {
		return err
	}
	p := unsafe.Pointer(unsafe.SliceData(dst))
	return call(func() C.int { return C.dc_d2h(p, b.Ptr(off), C.size_t(len(dst)*b.Kind.Size())) })
}

// Upload copies v into a new buffer of kind k.
func Upload[T Element](d *Device, k Kind, v []T) (*Buffer, error) {
	b, err := d.Alloc(k, len(v))
	if err != nil {
		return nil, err
	}
	if err := Write(b, 0, v); err != nil {
		b.Free()
		return nil, err
	}
	return b, nil
}

// Download returns a copy of b's contents.
func Download[T Element](b *Buffer) ([]T, error) {
	v := make([]T, b.Len)
	return v, Read(b, 0, v)
}

// CopyTo copies src into dst (same kind; len(src) ≤ len(dst)), on the stream.
func (b *Buffer) CopyTo(dst *Buffer) error {
	if b.Kind != dst.Kind || b.Len > dst.Len {
		return fmt.Errorf("cuda: copy of %s into %s", b, dst)
	}
	if b.gone() || dst.gone() {
		return fmt.Errorf("cuda: copy of %s into %s: one was freed", b, dst)
	}
	return call(func() C.int { return C.dc_d2d(dst.ptr, b.ptr, C.size_t(b.Bytes())) })
}
