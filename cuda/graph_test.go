//go:build cuda

package cuda_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"distill/cuda"
)

// TestGraphReplay: a captured sequence runs nothing while it is recorded,
// then each replay runs all of it once (x·2 + y, twice); a goroutine's call
// made while the capture is open waits for it and is not recorded (its add
// happens once, not at each replay); a capture whose work fails keeps
// nothing and leaves the stream usable; so does one whose work panics.
func TestGraphReplay(t *testing.T) {
	d := device(t)
	x := up(t, d, cuda.F32, []float32{1, 2, 3})
	y := up(t, d, cuda.F32, []float32{10, 20, 30})
	other := up(t, d, cuda.F32, []float32{0, 0, 0})
	one := up(t, d, cuda.F32, []float32{1, 1, 1})
	var wg sync.WaitGroup
	g, err := d.Capture(func() error {
		if err := d.Add(x, x, 3); err != nil {
			return err
		}
		wg.Go(func() { // another goroutine, mid-capture
			if err := d.Add(other, one, 3); err != nil {
				t.Error(err)
			}
		})
		time.Sleep(50 * time.Millisecond) // long enough for it to be waiting
		return d.Add(x, y, 3)
	})
	ok(t, err)
	defer g.Free()
	wg.Wait()
	near(t, "x after the capture (nothing ran)", down(t, x), []float32{1, 2, 3}, 0, 0)
	ok(t, g.Launch())
	near(t, "x after one replay", down(t, x), []float32{12, 24, 36}, 0, 0)
	ok(t, g.Launch())
	near(t, "x after two", down(t, x), []float32{34, 68, 102}, 0, 0)
	near(t, "the other goroutine's add (once, outside the graph)", down(t, other), []float32{1, 1, 1}, 0, 0)

	boom := errors.New("boom")
	if _, err := d.Capture(func() error { ok(t, d.Add(x, x, 3)); return boom }); !errors.Is(err, boom) {
		t.Fatalf("a failing capture returned %v", err)
	}
	near(t, "x after a failed capture", down(t, x), []float32{34, 68, 102}, 0, 0)
	ok(t, d.Add(x, y, 3)) // the stream works
	near(t, "x after a plain add", down(t, x), []float32{44, 88, 132}, 0, 0)

	// A capture whose work panics: the panic goes on, the stream and the
	// next capture work.
	func() {
		defer func() {
			if recover() == nil {
				t.Error("the panic was swallowed")
			}
		}()
		d.Capture(func() error { ok(t, d.Add(x, x, 3)); panic("boom") })
	}()
	g2, err := d.Capture(func() error { return d.Add(x, y, 3) })
	ok(t, err)
	defer g2.Free()
	ok(t, g2.Launch())
	near(t, "x after a capture that followed a panic", down(t, x), []float32{54, 108, 162}, 0, 0)
}

// TestCaptureRefusesFree: a buffer freed inside a capture (a recording
// would write it at every replay after the pool handed it out again) fails
// the capture, naming why, and goes back to the pool once the capture has
// ended — once, however often it was freed, and without waiting on a pool
// another goroutine holds while it waits for the capture; the stream and
// the next capture work.
func TestCaptureRefusesFree(t *testing.T) {
	d := device(t)
	x := up(t, d, cuda.F32, []float32{1, 2, 3})
	tmp, err := d.Alloc(cuda.F32, 1<<10)
	ok(t, err)
	view := tmp.View(0, 16) // gone with tmp, even when tmp goes at the capture's end
	inUse := d.Pool.Stats().InUse
	// Meanwhile another goroutine allocates a fresh block: the pool's lock
	// held while it waits for the capture to end, so the freed buffer goes
	// back only after the capture has let go.
	var other sync.WaitGroup
	done := make(chan error, 1)
	go func() {
		_, err := d.Capture(func() error {
			if err := d.Add(x, x, 3); err != nil {
				return err
			}
			tmp.Free()
			tmp.Free()
			other.Go(func() {
				b, err := d.Alloc(cuda.F32, 3<<20)
				if err != nil {
					t.Error(err)
				}
				b.Free()
			})
			time.Sleep(100 * time.Millisecond) // long enough for it to be waiting
			return nil
		})
		done <- err
	}()
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Capture did not return: it waits for a pool another goroutine holds while that waits for the capture")
	}
	other.Wait()
	if !errors.Is(err, cuda.ErrCaptureFree) {
		t.Fatalf("a capture that freed a buffer returned %v", err)
	}
	if got := d.Pool.Stats().InUse; got != inUse-4096 {
		t.Errorf("pool in use %d after the capture, want %d (the buffer back, once)", got, inUse-4096)
	}
	tmp.Free() // idempotent after
	// Likely tmp's block, handed out again.
	if again, err := d.Alloc(cuda.F32, 1<<10); err == nil {
		if view.Zero() == nil {
			t.Error("a view of a buffer freed during a capture still writes (into the block's next owner)")
		}
		again.Free()
	}
	near(t, "x (nothing recorded ran)", down(t, x), []float32{1, 2, 3}, 0, 0)
	g, err := d.Capture(func() error { return d.Add(x, x, 3) })
	ok(t, err)
	defer g.Free()
	ok(t, g.Launch())
	near(t, "x after the next capture's replay", down(t, x), []float32{2, 4, 6}, 0, 0)
}
