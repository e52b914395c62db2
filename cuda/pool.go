package cuda

import (
	"errors"
	"fmt"
	"math/bits"
	"sync"
	"unsafe"
)

// Allocator is the device memory a Pool caches: cudaMalloc and cudaFree in
// the cuda build, a fake in the pool's tests. Device pointers are held as
// unsafe.Pointer: they point outside Go's heap, which the collector ignores.
type Allocator interface {
	Malloc(bytes int) (ptr unsafe.Pointer, err error)
	Free(ptr unsafe.Pointer) error
}

// ErrOutOfMemory is wrapped by Allocator.Malloc when the device is full; the
// Pool then frees its cache and tries once more.
var ErrOutOfMemory = errors.New("out of device memory")

// PoolStats are a pool's byte counts (at size-class granularity).
type PoolStats struct {
	InUse   int64 // held by callers
	Peak    int64 // the most InUse has been
	Cached  int64 // freed by callers, kept for reuse
	Mallocs int64 // calls to the allocator
	Reuses  int64 // Gets served from the cache
}

// Pool is a caching allocator over device memory: freed blocks go to a free
// list per size class and are handed out again without a cudaMalloc (which
// synchronises the device). It is safe for concurrent use.
//
// Size classes bound the waste of one block to 1/8 of its size above 64 KiB
// (and 512 bytes below), so a training step's buffers, whose sizes repeat
// step after step, settle into the cache after the first step.
type Pool struct {
	mu    sync.Mutex
	dev   Allocator
	free  map[int][]unsafe.Pointer
	live  map[unsafe.Pointer]int // block → its class
	stats PoolStats
	limit int64 // SetLimit's cap on the bytes in use; 0: none
}

// SetLimit caps the bytes the pool holds on the device, handed out or
// cached (0: no cap): a Get that would pass it frees the cache first, and
// fails with ErrOutOfMemory, as a full device would, where what is handed
// out leaves no room — a device of that size (DISTILL_CUDA_MEMORY; the
// tests' full devices), whatever the card's.
func (p *Pool) SetLimit(bytes int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.limit = bytes
}

// Room is what a Get may still take: free device memory (free, from
// MemInfo) plus the cache, within the limit.
func (p *Pool) Room(free int64) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	room := free + p.stats.Cached
	if p.limit > 0 {
		room = min(room, p.limit-p.stats.InUse)
	}
	return max(room, 0)
}

// NewPool returns an empty pool over dev.
func NewPool(dev Allocator) *Pool {
	return &Pool{dev: dev, free: map[int][]unsafe.Pointer{}, live: map[unsafe.Pointer]int{}}
}

// sizeClass is the block size that serves a request of n bytes: a multiple
// of 512 up to 64 KiB, above that n rounded up to an eighth of its power of
// two.
func sizeClass(n int) int {
	if n <= 0 {
		n = 1
	}
	if n <= 64<<10 {
		return (n + 511) &^ 511
	}
	step := 1 << (bits.Len(uint(n-1)) - 1 - 3) // an eighth of the power of two below n
	return (n + step - 1) &^ (step - 1)
}

// Get returns a block of at least bytes bytes (contents undefined).
func (p *Pool) Get(bytes int) (unsafe.Pointer, error) { return p.get(bytes, sizeClass(bytes)) }

// exactStep is GetExact's granularity: cudaMalloc's own for large blocks.
const exactStep = 2 << 20

// GetExact is Get for a large block held long (a recorded step's arena,
// gigabytes): its size rounded up to 2 MiB rather than to its size class,
// which may add an eighth (a gigabyte at 8 GiB). Freed, it is cached like
// any block of its size.
func (p *Pool) GetExact(bytes int) (unsafe.Pointer, error) {
	return p.get(bytes, min(sizeClass(bytes), (max(1, bytes)+exactStep-1)&^(exactStep-1)))
}

func (p *Pool) get(bytes, c int) (unsafe.Pointer, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.limit > 0 && p.stats.InUse+int64(c) > p.limit {
		return nil, fmt.Errorf("device alloc of %d bytes (class %d; %d in use of the pool's limit %d): %w",
			bytes, c, p.stats.InUse, p.limit, ErrOutOfMemory)
	}
	var ptr unsafe.Pointer
	if l := p.free[c]; len(l) > 0 {
		ptr = l[len(l)-1]
		p.free[c] = l[:len(l)-1]
		p.stats.Cached -= int64(c)
		p.stats.Reuses++
	} else {
		if p.limit > 0 && p.stats.InUse+p.stats.Cached+int64(c) > p.limit {
			// Under a limit the cache counts too: what the card holds
			// stays within it (a shared card's other users need the rest).
			if err := p.trimLocked(); err != nil {
				return nil, fmt.Errorf("device alloc of %d bytes: freeing the cache for the pool's limit: %w", bytes, err)
			}
		}
		var err error
		ptr, err = p.dev.Malloc(c)
		if errors.Is(err, ErrOutOfMemory) && p.stats.Cached > 0 {
			if terr := p.trimLocked(); terr != nil {
				return nil, fmt.Errorf("%w (freeing the cache: %v)", err, terr)
			}
			ptr, err = p.dev.Malloc(c)
		}
		if err != nil {
			return nil, fmt.Errorf("device alloc of %d bytes (class %d; %d in use, %d cached): %w",
				bytes, c, p.stats.InUse, p.stats.Cached, err)
		}
		p.stats.Mallocs++
	}
	p.live[ptr] = c
	p.stats.InUse += int64(c)
	p.stats.Peak = max(p.stats.Peak, p.stats.InUse)
	return ptr, nil
}

// Put returns a block from Get to the cache. Putting a block twice, or one
// the pool did not give, panics: it is a use-after-free in waiting.
func (p *Pool) Put(ptr unsafe.Pointer) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := p.live[ptr]
	if !ok {
		panic(fmt.Sprintf("cuda: Put of %p, which the pool has not handed out", ptr))
	}
	delete(p.live, ptr)
	p.free[c] = append(p.free[c], ptr)
	p.stats.InUse -= int64(c)
	p.stats.Cached += int64(c)
}

// Trim frees every cached block back to the device.
func (p *Pool) Trim() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.trimLocked()
}

func (p *Pool) trimLocked() error {
	var first error
	for c, l := range p.free {
		for _, ptr := range l {
			if err := p.dev.Free(ptr); err != nil && first == nil {
				first = err
			}
			p.stats.Cached -= int64(c)
		}
		delete(p.free, c)
	}
	return first
}

// Stats returns the current counts.
func (p *Pool) Stats() PoolStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}

// ResetPeak starts a new peak from what is in use now (to measure one
// phase's high-water mark).
func (p *Pool) ResetPeak() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stats.Peak = p.stats.InUse
}
