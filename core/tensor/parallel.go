package tensor

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Threads is the number of workers the CPU kernels split their work over.
var Threads = runtime.GOMAXPROCS(0)

// helperSpin is how long an idle helper keeps polling for work before it
// parks. Decode issues a matvec every few tens of microseconds; waking a
// parked goroutine's thread costs 5–10 µs on the 2-core machine measured,
// as much as half a 576×576 matvec, so helpers stay awake between them.
var helperSpin = 200 * time.Microsecond

// A helper is a goroutine that runs one job at a time for parallelChunks.
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
	helpersBusy atomic.Bool // held by the parallelChunks call using helpers
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
// polls so that other goroutines still run.
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

// run calls fn on each [lo, hi) chunk concurrently, the last on the calling
// goroutine. One caller at a time gets the spinning helpers; a concurrent or
// nested call starts goroutines instead.
func run(chunks [][2]int, fn func(lo, hi int)) {
	last := chunks[len(chunks)-1]
	rest := chunks[:len(chunks)-1]
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

// parallelFor splits [0, n) into at most Threads contiguous chunks of at least
// grain items and runs fn on each concurrently; the calling goroutine takes
// the last chunk.
func parallelFor(n, grain int, fn func(lo, hi int)) { parallelChunks(n, grain, 1, fn) }

// parallelChunks is parallelFor with chunk boundaries at multiples of align
// (the last chunk takes the remainder).
func parallelChunks(n, grain, align int, fn func(lo, hi int)) {
	align = max(align, 1)
	grain = max(grain, 1)
	workers := min(Threads, n/grain)
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
	if len(chunks) == 1 {
		fn(0, n)
		return
	}
	run(chunks, fn)
}
