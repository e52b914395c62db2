package tensor

import (
	"runtime"
	"sync"
)

// Threads is the number of workers the CPU kernels split their work over.
var Threads = runtime.GOMAXPROCS(0)

// parallelFor splits [0, n) into at most Threads contiguous chunks of at least
// grain items and runs fn on each concurrently; the calling goroutine takes
// the last chunk.
func parallelFor(n, grain int, fn func(lo, hi int)) {
	if grain < 1 {
		grain = 1
	}
	workers := Threads
	if m := (n + grain - 1) / grain; m < workers {
		workers = m
	}
	if workers <= 1 {
		if n > 0 {
			fn(0, n)
		}
		return
	}
	var wg sync.WaitGroup
	chunk := (n + workers - 1) / workers
	for lo := 0; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		if hi == n {
			fn(lo, hi)
			break
		}
		wg.Add(1)
		go func(lo, hi int) {
			defer wg.Done()
			fn(lo, hi)
		}(lo, hi)
	}
	wg.Wait()
}

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
	var wg sync.WaitGroup
	for lo := 0; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		if hi == n {
			fn(lo, hi)
			break
		}
		wg.Add(1)
		go func(lo, hi int) {
			defer wg.Done()
			fn(lo, hi)
		}(lo, hi)
	}
	wg.Wait()
}
