package tensor

// ParallelFor splits [0, n) into at most Threads contiguous chunks of at
// least grain items and runs fn on each concurrently, on the same workers as
// the backend's own kernels. fn must be safe to run concurrently on disjoint
// ranges.
func ParallelFor(n, grain int, fn func(lo, hi int)) { parallelFor(n, grain, fn) }

// ParallelChunks is ParallelFor with chunk boundaries rounded to multiples
// of align (e.g. the rows a kernel processes together).
func ParallelChunks(n, grain, align int, fn func(lo, hi int)) { parallelChunks(n, grain, align, fn) }

// GetScratch returns a pooled buffer of n floats (contents undefined);
// PutScratch returns it. Kernels use them for dequantised or widened tiles,
// which a GC-cleared pool would make them reallocate.
func GetScratch(n int) *[]float32 { return getScratch(n) }
func PutScratch(p *[]float32)     { putScratch(p) }
