package tensor

// ParallelFor splits [0, n) into at most Threads contiguous chunks of at
// least grain items and runs fn on each concurrently, on the same workers as
// the backend's own kernels. fn must be safe to run concurrently on disjoint
// ranges.
func ParallelFor(n, grain int, fn func(lo, hi int)) { parallelFor(n, grain, fn) }
