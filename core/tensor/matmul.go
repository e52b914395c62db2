package tensor

import (
	"fmt"
	"slices"
	"sync"
)

// Tuning of MatMul, measured on a 2-core AMD EPYC (Zen 4, 2 MB L2 per core)
// with bench_test.go's benchmarks.
var (
	// gemmMinT is the smallest T that goes to sgemm for 16-bit weights
	// (gemmMinTF32 for f32 ones, which need no widening); below it each
	// L2-sized tile of W is streamed once from memory and multiplied by the T
	// vectors with the matvec kernel, at about 120 GFLOP/s for BF16 from L2
	// against sgemm's 115 at T = 16 and 140 at T = 24.
	gemmMinT    = 24
	gemmMinTF32 = 8
	// gemmMinTBF16 is gemmMinT for the bf16 products on AVX-512 BF16
	// (BenchmarkPrefillBF16): their GEMM beat the matvec from T = 8 on every
	// SmolLM2 shape (576×576: 186 against 98 GFLOP/s at T = 8; the LM head:
	// 119 against 105), and from T = 4 on all but the LM head.
	gemmMinTBF16 = 8
	// matvecTileBytes bounds the weights of one tile in the T > 1 matvec path
	// so that they are still in L2 for the second vector.
	matvecTileBytes = 512 << 10
	// matvecMinBytes is the least weight bytes worth a worker goroutine.
	matvecMinBytes = 64 << 10
	// gemmTileBytes bounds one worker's f32 scratch of widened rows of W:
	// the larger, the fewer sgemm calls each packing x again. At T = 128 the
	// BF16 LM head (49152×576) ran at 145, 157, 163 and 173 GFLOP/s with 256
	// KiB, 512 KiB, 1 MiB and 2 MiB; the projections at 180-186 from 512 KiB.
	gemmTileBytes = 2 << 20
)

// matMul is the CPU MatMul: out(T, N) = x(T, K) · W(N, K)ᵀ, with bf16 on
// the bf16 products (CPU.BF16Products).
func matMul(out, x []float32, w *Tensor, T int, bf16 bool) {
	N, K := w.Rows(), w.Cols()
	if T < 0 || len(x) < T*K || len(out) < T*N || len(w.Data) < N*K*w.DType.Size() {
		panic(fmt.Sprintf("tensor: MatMul of %s %v (%s, %d bytes) with T=%d needs x of %d floats (have %d) and out of %d (have %d)",
			w.Name, w.Shape, w.DType, len(w.Data), T, T*K, len(x), T*N, len(out)))
	}
	if T == 0 || N == 0 {
		return
	}
	if K == 0 {
		clear(out[:T*N])
		return
	}
	minT := gemmMinT
	if w.DType == F32 {
		minT = gemmMinTF32
	}
	if roundsBF16(w, bf16) {
		if haveBLAS && T >= gemmMinTBF16 && BF16ProductsFast() {
			matMulBF16(out, x, w, T)
			return
		}
		// The same products on the f32 kernels: x rounded first, so that
		// every path (and batch size) multiplies the same values.
		xs := getScratch(T * K)
		defer putScratch(xs)
		x = roundedInto((*xs)[:T*K], x)
	}
	if haveBLAS && T >= minT {
		matMulGEMM(out, x, w, T)
		return
	}
	matMulVec(out, x, w, T)
}

// matMulVec runs the matvec kernel for each of the T rows of x, over tiles
// of W's rows small enough to stay in L2 between rows, the tiles split over
// the workers.
func matMulVec(out, x []float32, w *Tensor, T int) {
	N, K := w.Rows(), w.Cols()
	rowBytes := K * w.DType.Size()
	xpl := xpLen(K)
	xp := getScratch(T * xpl)
	defer putScratch(xp)
	for t := 0; t < T; t++ {
		matvecPrep((*xp)[t*xpl:(t+1)*xpl], x[t*K:(t+1)*K], w.DType)
	}
	tile := N
	if T > 1 {
		tile = max(4, matvecTileBytes/rowBytes&^3)
	}
	parallelChunks(N, max(4, matvecMinBytes/rowBytes), 4, func(lo, hi int) {
		for n0 := lo; n0 < hi; n0 += tile {
			n1 := min(n0+tile, hi)
			for t := 0; t < T; t++ {
				matvecRows(out[t*N:(t+1)*N], w, x[t*K:(t+1)*K], (*xp)[t*xpl:(t+1)*xpl], n0, n1)
			}
		}
	})
}

// matMulGEMM splits the columns of out (rows of W) over the workers, or the
// rows of x when W has too few rows; each worker widens tiles of W into its
// own L2-sized f32 scratch and calls single-threaded sgemm on them (OpenBLAS
// runs with one thread, set in cgo.go's init).
//
// The alternative, widening a tile with all workers and then calling
// OpenBLAS with Threads threads from one goroutine, measured 2-3× slower at
// T = 128 on SmolLM2 shapes: its threads wake per call and, once idle, spin
// against the goroutines of the next op.
func matMulGEMM(out, x []float32, w *Tensor, T int) {
	N, K := w.Rows(), w.Cols()
	if N < 64*Threads && T >= 2*Threads {
		parallelChunks(T, 1, 1, func(lo, hi int) {
			gemmColumns(out[lo*N:hi*N], x[lo*K:hi*K], w, hi-lo, 0, N)
		})
		return
	}
	parallelChunks(N, 16, 16, func(lo, hi int) { gemmColumns(out, x, w, T, lo, hi) })
}

// gemmColumns sets columns [n0, n1) of out(T, N) = x(T, K) · W(N, K)ᵀ.
func gemmColumns(out, x []float32, w *Tensor, T, n0, n1 int) {
	N, K := w.Rows(), w.Cols()
	if w.DType == F32 {
		sgemmNT(T, n1-n0, K, x, K, w.F32s()[n0*K:], K, out[n0:], N)
		return
	}
	es := w.DType.Size()
	nb := max(16, gemmTileBytes/(4*K)&^15)
	s := getScratch(min(nb, n1-n0) * K)
	defer putScratch(s)
	for a := n0; a < n1; a += nb {
		b := min(a+nb, n1)
		tile := (*s)[:(b-a)*K]
		widen(tile, w.DType, w.Data[a*K*es:b*K*es])
		sgemmNT(T, b-a, K, x, K, tile, K, out[a:], N)
	}
}

// Scratch buffers (widened tiles of W, de-interleaved x) are kept in a small
// free list rather than a sync.Pool: the pool is emptied at every garbage
// collection, and reallocating 2 MiB tiles on each call after that made the
// collector run often enough to halve prefill throughput.
var scratch struct {
	sync.Mutex
	free []*[]float32
}

// getScratch returns a buffer of n floats (contents undefined).
func getScratch(n int) *[]float32 {
	scratch.Lock()
	for i := len(scratch.free) - 1; i >= 0; i-- {
		if p := scratch.free[i]; cap(*p) >= n {
			scratch.free = append(scratch.free[:i], scratch.free[i+1:]...)
			scratch.Unlock()
			*p = (*p)[:n]
			return p
		}
	}
	scratch.Unlock()
	s := make([]float32, n)
	return &s
}

// putScratch returns a buffer to the free list, which keeps the largest
// 2·Threads+4 buffers.
func putScratch(p *[]float32) {
	scratch.Lock()
	defer scratch.Unlock()
	scratch.free = append(scratch.free, p)
	slices.SortFunc(scratch.free, func(a, b *[]float32) int { return cap(*b) - cap(*a) })
	if keep := 2*Threads + 4; len(scratch.free) > keep {
		clear(scratch.free[keep:])
		scratch.free = scratch.free[:keep]
	}
}
