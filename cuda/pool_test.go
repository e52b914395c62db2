package cuda

import (
	"errors"
	"testing"
	"unsafe"
)

// fakeDevice hands out distinct addresses (one byte of Go memory each) and
// fails past its capacity.
type fakeDevice struct {
	capacity, used int
	sizes          map[unsafe.Pointer]int
	mallocs, frees int
}

func newFake(capacity int) *fakeDevice {
	return &fakeDevice{capacity: capacity, sizes: map[unsafe.Pointer]int{}}
}

func (f *fakeDevice) Malloc(n int) (unsafe.Pointer, error) {
	if f.used+n > f.capacity {
		return nil, ErrOutOfMemory
	}
	f.used += n
	f.mallocs++
	p := unsafe.Pointer(new(byte))
	f.sizes[p] = n
	return p, nil
}

func (f *fakeDevice) Free(p unsafe.Pointer) error {
	n, ok := f.sizes[p]
	if !ok {
		return errors.New("free of unknown pointer")
	}
	delete(f.sizes, p)
	f.used -= n
	f.frees++
	return nil
}

func TestSizeClass(t *testing.T) {
	for _, tc := range []struct{ n, want int }{
		{0, 512}, {1, 512}, {512, 512}, {513, 1024}, {64 << 10, 64 << 10},
		{64<<10 + 1, 72 << 10}, {1 << 20, 1 << 20}, {1<<20 + 1, 1<<20 + 128<<10}, {3 << 20, 3 << 20},
	} {
		if got := sizeClass(tc.n); got != tc.want {
			t.Errorf("sizeClass(%d) = %d, want %d", tc.n, got, tc.want)
		}
	}
	// Every class holds its request and wastes at most 1/8 above 64 KiB.
	for n := 1; n < 1<<26; n = n*5/4 + 7 {
		c := sizeClass(n)
		if c < n || (n > 64<<10 && float64(c-n) > float64(n)/8) || (n <= 64<<10 && c-n >= 512) {
			t.Fatalf("sizeClass(%d) = %d", n, c)
		}
		if sizeClass(c) != c {
			t.Fatalf("class %d of %d is not its own class", c, n)
		}
	}
}

func TestPoolReusesAndCounts(t *testing.T) {
	dev := newFake(1 << 30)
	p := NewPool(dev)
	a, _ := p.Get(1000)
	b, _ := p.Get(100 << 10)
	if s := p.Stats(); s.InUse != 1024+104<<10 || s.Mallocs != 2 {
		t.Fatalf("stats after two gets: %+v", s)
	}
	p.Put(a)
	c, _ := p.Get(600) // same class as 1000: the cached block comes back
	if c != a || dev.mallocs != 2 {
		t.Fatalf("Get(600) = %p (mallocs %d), want the cached %p", c, dev.mallocs, a)
	}
	p.Put(b)
	p.Put(c)
	s := p.Stats()
	if s.InUse != 0 || s.Peak != 1024+104<<10 || s.Cached != 1024+104<<10 || s.Reuses != 1 {
		t.Fatalf("stats after puts: %+v", s)
	}
	if err := p.Trim(); err != nil || dev.used != 0 || p.Stats().Cached != 0 {
		t.Fatalf("Trim: err %v, device still holds %d bytes, stats %+v", err, dev.used, p.Stats())
	}
}

// GetExact rounds a large block to 2 MiB, not to its size class (an
// eighth: 8.1 GiB would take 9), and never past it for a small one; freed,
// it serves a Get of its size.
func TestPoolGetExact(t *testing.T) {
	dev := newFake(1 << 40)
	p := NewPool(dev)
	big := 8<<30 + 100<<20 + 5 // 8.1 GiB
	if _, err := p.GetExact(big); err != nil {
		t.Fatal(err)
	}
	if got, want := p.Stats().InUse, int64(8<<30+102<<20); got != want {
		t.Errorf("GetExact(8.1 GiB) holds %d bytes, want %d (class %d)", got, want, sizeClass(big))
	}
	small, err := p.GetExact(1000)
	if err != nil || p.Stats().InUse != int64(8<<30+102<<20+1024) {
		t.Fatalf("GetExact(1000): %v, in use %d", err, p.Stats().InUse)
	}
	p.Put(small)
	if again, _ := p.Get(1000); again != small {
		t.Error("a freed GetExact block does not serve a Get of its size")
	}
}

func TestPoolFreesCacheWhenFull(t *testing.T) {
	dev := newFake(3 << 20)
	p := NewPool(dev)
	a, _ := p.Get(2 << 20)
	p.Put(a)
	// 2 MiB cached + 2 MiB asked of a 3 MiB device: the cache must go first.
	if _, err := p.Get(2<<20 + 1); err != nil {
		t.Fatalf("Get after freeing the cache: %v", err)
	}
	if dev.frees != 1 {
		t.Fatalf("frees = %d, want 1", dev.frees)
	}
	_, err := p.Get(2 << 20)
	if !errors.Is(err, ErrOutOfMemory) {
		t.Fatalf("Get past capacity: %v, want ErrOutOfMemory", err)
	}
}

func TestPoolPutUnknownPanics(t *testing.T) {
	p := NewPool(newFake(1 << 20))
	defer func() {
		if recover() == nil {
			t.Fatal("Put of a foreign pointer did not panic")
		}
	}()
	p.Put(unsafe.Pointer(new(int)))
}

// SetLimit caps what the pool hands out at once: a Get past it fails with
// ErrOutOfMemory (the device untouched), one within it succeeds, blocks
// from the cache count as any other; Room is the free memory and the
// cache within the limit.
func TestPoolLimit(t *testing.T) {
	dev := newFake(1 << 30)
	p := NewPool(dev)
	p.SetLimit(3 << 20)
	a, err := p.Get(2 << 20)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Get(2 << 20); !errors.Is(err, ErrOutOfMemory) || dev.used != 2<<20 {
		t.Fatalf("past the limit: %v, the device holds %d", err, dev.used)
	}
	if got := p.Room(1 << 30); got != 1<<20 {
		t.Errorf("room %d, want the 1 MiB the limit leaves", got)
	}
	p.Put(a)
	if got := p.Room(0); got != 2<<20 {
		t.Errorf("room with nothing free but the cache: %d, want 2 MiB", got)
	}
	if _, err := p.Get(3 << 20); err != nil || dev.used > 3<<20 {
		t.Errorf("at the limit: %v; the device holds %d (the cache freed for it?)", err, dev.used)
	}
	p.SetLimit(0)
	if _, err := p.Get(4 << 20); err != nil {
		t.Errorf("no limit: %v", err)
	}
}
