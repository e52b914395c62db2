//go:build cuda

package cuda_test

import (
	"errors"
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
