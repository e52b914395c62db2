package tensor

import (
	"runtime"
	"sync/atomic"
	"time"
)

// MeasureCopyBandwidth returns the machine's read bandwidth in bytes/s, the
// limit of decode's matvec (which only reads its weights): Threads goroutines
// each sum their share of a 256 MiB buffer (much larger than the caches) with
// the widest vector loads the CPU has; the best of 10 passes. It allocates and
// touches the buffer on each call (about half a second), after a garbage
// collection so that the collector's workers do not share the cores.
func MeasureCopyBandwidth() (bytesPerSec float64) {
	runtime.GC()
	const size = 256 << 20
	buf := make([]byte, size)
	for i := 0; i < size; i += 4096 {
		buf[i] = byte(i >> 12) // fault every page in: untouched pages all read the zero page
	}
	best := 0.0
	var sink atomic.Uint64 // keeps the sums live
	for range 10 {
		start := time.Now()
		parallelChunks(size, 1<<20, 4096, func(lo, hi int) { sink.Add(sumBytes(buf[lo:hi])) })
		best = max(best, size/time.Since(start).Seconds())
	}
	return best
}

// MeasureSgemmGFLOPS returns the f32 GEMM rate the prefill path can reach:
// the best of 20 MatMuls of 1024×1024 f32 matrices (out(T=1024, N=1024) =
// x(1024, 1024) · W(1024, 1024)ᵀ), in GFLOP/s (2·T·N·K flops). Without cgo it
// times the pure-Go path at 256×256. Like MeasureCopyBandwidth it collects
// garbage first.
func MeasureSgemmGFLOPS() float64 {
	return measureGEMM(F32, func(out, x []float32, w *Tensor, T int) { matMul(out, x, w, T, false) })
}

// MeasureBF16GFLOPS is MeasureSgemmGFLOPS for the bf16 products' GEMM on
// AVX-512 BF16 (BF16 weights): the limit of prefill with them on. Zero where
// they do not run on it.
func MeasureBF16GFLOPS() float64 {
	if !BF16ProductsFast() || !haveBLAS {
		return 0
	}
	return measureGEMM(BF16, matMulBF16)
}

func measureGEMM(dt DType, mm func(out, x []float32, w *Tensor, T int)) float64 {
	runtime.GC()
	n := 1024
	if !haveBLAS {
		n = 256
	}
	x := make([]float32, n*n)
	wf := make([]float32, n*n)
	for i := range x {
		x[i] = float32(i%7) - 3
		wf[i] = float32(i%5) - 2
	}
	w := FromF32("gemm", wf, n, n)
	if dt == BF16 {
		w = New("gemm", BF16, n, n)
		for i, v := range wf {
			w.U16s()[i] = F32ToBF16(v)
		}
	}
	out := make([]float32, n*n)
	for range 3 { // warm up: OpenBLAS buffers, page faults, clocks
		mm(out, x, w, n)
	}
	best := 0.0
	for range 20 {
		start := time.Now()
		mm(out, x, w, n)
		best = max(best, 2*float64(n)*float64(n)*float64(n)/time.Since(start).Seconds()/1e9)
	}
	return best
}
