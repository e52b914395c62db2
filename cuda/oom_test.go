//go:build cuda

package cuda_test

import (
	"errors"
	"strings"
	"testing"

	"distill/cuda"
)

// A cudaMalloc the device refuses leaves no error pending for the next
// launch's check: the caller is told the device is full (or the pool frees
// its cache and tries again), and a kernel after it runs and reports
// success — not the allocation's failure as its own.
func TestLaunchAfterRefusedAlloc(t *testing.T) {
	d := device(t)
	free, _, err := d.MemInfo()
	if err != nil {
		t.Fatal(err)
	}
	if b, err := d.Alloc(cuda.U8, int(2*free)); !errors.Is(err, cuda.ErrOutOfMemory) {
		b.Free()
		t.Fatalf("twice the free memory: %v, want ErrOutOfMemory", err)
	}
	x, err := cuda.Upload(d, cuda.F32, []float32{1, 2, 3})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Free()
	y, err := d.Alloc(cuda.BF16, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer y.Free()
	if err := d.ToBF16(y, x, 3); err != nil {
		t.Fatalf("a launch after a refused allocation: %v", err)
	}
}

// After a fault that loses the CUDA context (an illegal address in a
// kernel, say) every call fails at once with ErrDeviceLost, naming the
// first failure and what to do, rather than each naming itself.
func TestLostContextFailsEveryCall(t *testing.T) {
	d := device(t)
	b, err := d.Alloc(cuda.F32, 16)
	ok(t, err)
	defer b.Free()
	restore := cuda.LoseContext("add(n=16): cudaErrorIllegalAddress: an illegal memory access was encountered")
	errs := []error{b.Zero(), d.Sync(), cuda.Write(b, 0, []float32{1}), d.Add(b, b, 16)}
	restore()
	for i, err := range errs {
		if !errors.Is(err, cuda.ErrDeviceLost) || !strings.Contains(err.Error(), "add(n=16)") || !strings.Contains(err.Error(), "restart") {
			t.Errorf("call %d after the context was lost: %v", i, err)
		}
	}
	ok(t, d.Sync())
}
