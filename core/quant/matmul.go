package quant

import (
	"fmt"

	"distill/core/tensor"
)

// Tuning of MatMul and MatMulT, measured on a 2-core AMD EPYC (Zen 4) with
// bench_test.go's benchmarks; the tile sizes follow core/tensor/matmul.go.
var (
	// gemmMinT is the smallest T that goes to sgemm on dequantised tiles
	// when the fused kernel applies; below it each L2-sized tile of packed
	// rows is read once and multiplied by the T vectors with the fused
	// kernel. On 1536×576 NF4 the fused path holds 92-99 GFLOP/s at any T;
	// sgemm on tiles gave 25, 40, 76, 101, 115, 137 and 147 at T = 2, 4, 8,
	// 12, 16, 24 and 32.
	gemmMinT = 12
	// matvecTileBytes bounds the packed bytes of one tile in the T > 1 fused
	// path so that they are still in L2 for the next vector.
	matvecTileBytes = 256 << 10
	// matvecMinBytes is the least packed bytes worth a worker goroutine.
	matvecMinBytes = 32 << 10
	// gemmTileBytes bounds one worker's f32 scratch of dequantised rows.
	gemmTileBytes = 2 << 20
	// bf16GEMM says whether the bf16 products run on AVX-512 BF16 (tests
	// turn it off to run their f32 fallback on such a CPU).
	bf16GEMM = tensor.BF16ProductsFast
)

// weights is what the tiling needs from a quantised matrix (N, K).
type weights interface {
	name() string
	shape() (n, k int)
	// fused says whether matvec applies (K a multiple of the block).
	fused() bool
	// colAlign is the column granularity at which workers split
	// dequantTile's columns (whole blocks when K is a multiple of it).
	colAlign() int
	rowBytes() int
	prepLen(K int) int
	prep(xp, x []float32)
	// matvec sets out[n] = W[n, :]·x for n in [n0, n1), xp prepared from x.
	matvec(out, xp []float32, n0, n1 int)
	// dequantTile sets dst[(n-n0)*ldd + k-k0] for rows [n0, n1), columns
	// [k0, k1).
	dequantTile(dst []float32, ldd, n0, n1, k0, k1 int)
	// roundsBF16 says whether matvec and dequantTile round each weight to
	// bf16 (the bf16 products); withBF16 returns the matrix so.
	roundsBF16() bool
	withBF16(on bool) weights
}

// matMul computes out(T, N) = x(T, K) · W(N, K)ᵀ.
func matMul(w weights, out, x []float32, T int) {
	N, K := w.shape()
	if T < 0 || len(x) < T*K || len(out) < T*N {
		panic(fmt.Sprintf("quant: MatMul of %s (%d×%d) with T=%d needs x of %d floats (have %d) and out of %d (have %d)",
			w.name(), N, K, T, T*K, len(x), T*N, len(out)))
	}
	if T == 0 || N == 0 {
		return
	}
	if K == 0 {
		clear(out[:T*N])
		return
	}
	if w.roundsBF16() {
		if haveBLAS && T >= gemmMinT && bf16GEMM() {
			matMulBF16(w, out, x, T)
			return
		}
		// The same products on the f32 kernels: the weights come rounded,
		// x is rounded here.
		xs := tensor.GetScratch(T * K)
		defer tensor.PutScratch(xs)
		x = roundedCopy((*xs)[:T*K], x[:T*K])
	}
	if w.fused() && (T < gemmMinT || !haveBLAS) {
		matVec(w, out, x, T)
		return
	}
	if N < 64*tensor.Threads && T >= 2*tensor.Threads {
		tensor.ParallelChunks(T, 1, 1, func(lo, hi int) {
			gemmRows(w, out[lo*N:hi*N], x[lo*K:hi*K], hi-lo, 0, N)
		})
		return
	}
	tensor.ParallelChunks(N, 16, 16, func(lo, hi int) { gemmRows(w, out, x, T, lo, hi) })
}

// matVec runs the fused kernel for each of the T rows of x, over tiles of W's
// rows small enough to stay in L2 between rows, the tiles split over the
// workers.
func matVec(w weights, out, x []float32, T int) {
	N, K := w.shape()
	xpl := w.prepLen(K)
	xp := tensor.GetScratch(T * xpl)
	defer tensor.PutScratch(xp)
	for t := 0; t < T; t++ {
		w.prep((*xp)[t*xpl:(t+1)*xpl], x[t*K:(t+1)*K])
	}
	rb := w.rowBytes()
	tile := N
	if T > 1 {
		tile = max(4, matvecTileBytes/rb&^3)
	}
	tensor.ParallelChunks(N, max(4, matvecMinBytes/rb), 4, func(lo, hi int) {
		for n0 := lo; n0 < hi; n0 += tile {
			n1 := min(n0+tile, hi)
			for t := 0; t < T; t++ {
				w.matvec(out[t*N:(t+1)*N], (*xp)[t*xpl:(t+1)*xpl], n0, n1)
			}
		}
	})
}

// gemmRows sets columns [n0, n1) of out(T, N) = x(T, K) · W(N, K)ᵀ,
// dequantising tiles of W's rows into the worker's scratch.
func gemmRows(w weights, out, x []float32, T, n0, n1 int) {
	N, K := w.shape()
	nb := max(16, gemmTileBytes/(4*K)&^15)
	s := tensor.GetScratch(min(nb, n1-n0) * K)
	defer tensor.PutScratch(s)
	for a := n0; a < n1; a += nb {
		b := min(a+nb, n1)
		tile := (*s)[:(b-a)*K]
		w.dequantTile(tile, K, a, b, 0, K)
		sgemmNT(T, b-a, K, x, K, tile, K, out[a:], N)
	}
}

// matMulT computes dx(T, K) = dy(T, N) · W(N, K). The workers split the
// columns of dx, each dequantising its columns of every tile of W's rows;
// when K is too narrow to split and T is not, they split the rows of dy,
// each dequantising all of W.
func matMulT(w weights, dx, dy []float32, T int) { matMulTAcc(w, dx, dy, T, false) }

// matMulTAcc is matMulT that, with acc, adds to dx instead of overwriting it.
func matMulTAcc(w weights, dx, dy []float32, T int, acc bool) {
	N, K := w.shape()
	if T < 0 || len(dy) < T*N || len(dx) < T*K {
		panic(fmt.Sprintf("quant: MatMulT of %s (%d×%d) with T=%d needs dy of %d floats (have %d) and dx of %d (have %d)",
			w.name(), N, K, T, T*N, len(dy), T*K, len(dx)))
	}
	if T == 0 || K == 0 {
		return
	}
	if N == 0 {
		if !acc {
			clear(dx[:T*K])
		}
		return
	}
	if w.roundsBF16() {
		if haveBLAS && bf16GEMM() {
			matMulTBF16(w, dx, dy, T, acc)
			return
		}
		ys := tensor.GetScratch(T * N)
		defer tensor.PutScratch(ys)
		dy = roundedCopy((*ys)[:T*N], dy[:T*N])
	}
	a := w.colAlign()
	if K/a >= tensor.Threads || T < tensor.Threads {
		tensor.ParallelChunks(K, a, a, func(k0, k1 int) { gemmT(w, dx, dy, T, k0, k1, acc) })
		return
	}
	tensor.ParallelChunks(T, 1, 1, func(lo, hi int) { gemmT(w, dx[lo*K:hi*K], dy[lo*N:hi*N], hi-lo, 0, K, acc) })
}

// gemmT sets columns [k0, k1) of dx(T, K) = dy(T, N) · W(N, K), over tiles of
// W's rows, accumulating in dx.
func gemmT(w weights, dx, dy []float32, T, k0, k1 int, acc bool) {
	N, K := w.shape()
	kw := k1 - k0
	nb := max(16, gemmTileBytes/(4*kw)&^15)
	s := tensor.GetScratch(min(nb, N) * kw)
	defer tensor.PutScratch(s)
	for a := 0; a < N; a += nb {
		b := min(a+nb, N)
		tile := (*s)[:(b-a)*kw]
		w.dequantTile(tile, kw, a, b, k0, k1)
		beta := float32(1)
		if a == 0 && !acc {
			beta = 0
		}
		sgemmNN(T, kw, b-a, dy[a:], N, tile, kw, dx[k0:], K, beta)
	}
}

// roundedCopy sets dst to src rounded to bf16 and returns it.
func roundedCopy(dst, src []float32) []float32 {
	copy(dst, src)
	roundBF16(dst)
	return dst
}

// bf16Tiles is a worker's scratch for the bf16 products: a tile of n
// weights as bf16 and the GEMM's pack.
type bf16Tiles struct{ h, pack *[]float32 }

func getBF16Tiles(n int) bf16Tiles {
	return bf16Tiles{tensor.GetScratch((n + 1) / 2), tensor.GetScratch(tensor.BF16PackLen() / 2)}
}

func (b bf16Tiles) put() {
	tensor.PutScratch(b.h)
	tensor.PutScratch(b.pack)
}

// tile dequantises rows [n0, n1), columns [k0, k1) of w straight into bf16
// (its weights rounded to bf16), kw = k1-k0 per row. Only NF4 weights round
// (roundsBF16), so only they come here.
func (b bf16Tiles) tile(w weights, n0, n1, k0, k1 int) []uint16 {
	kw := k1 - k0
	h := tensor.AsU16(*b.h)[:(n1-n0)*kw]
	nf4DequantTileBF16(h, kw, w.(nf4Weights).q, n0, n1, k0, k1)
	return h
}

// matMulBF16 is matMul on AVX-512 BF16: x rounded once, each worker
// dequantising tiles of W's rows (rounded to bf16) for the GEMM.
func matMulBF16(w weights, out, x []float32, T int) {
	N, K := w.shape()
	xb, kp, xs := tensor.BF16RowsOf(x, T, K)
	defer tensor.PutScratch(xs)
	rows := func(out []float32, xb []uint16, T, n0, n1 int) {
		nb := max(16, gemmTileBytes/(4*K)&^15)
		b := getBF16Tiles(min(nb, n1-n0) * K)
		defer b.put()
		for a := n0; a < n1; a += nb {
			e := min(a+nb, n1)
			tensor.GemmBF16(out[a:], N, xb, kp, b.tile(w, a, e, 0, K), K, T, e-a, K, false, false, tensor.AsU16(*b.pack))
		}
	}
	if tensor.BF16SplitRows(N, T) {
		tensor.ParallelChunks(T, 1, 1, func(lo, hi int) { rows(out[lo*N:hi*N], xb[lo*kp:hi*kp], hi-lo, 0, N) })
		return
	}
	tensor.ParallelChunks(N, 16, 16, func(lo, hi int) { rows(out, xb, T, lo, hi) })
}

// matMulTBF16 is matMulTAcc on AVX-512 BF16: dy rounded once, each worker
// owning columns of dx and dequantising those columns of every tile of W's
// rows, which the GEMM reads as b(k = rows, n = columns).
func matMulTBF16(w weights, dx, dy []float32, T int, acc bool) {
	N, K := w.shape()
	yb, np, ys := tensor.BF16RowsOf(dy, T, N)
	defer tensor.PutScratch(ys)
	cols := func(dx []float32, yb []uint16, T, k0, k1 int) {
		kw := k1 - k0
		nb := max(16, gemmTileBytes/(4*kw)&^15)
		b := getBF16Tiles(min(nb, N) * kw)
		defer b.put()
		for a := 0; a < N; a += nb {
			e := min(a+nb, N)
			tensor.GemmBF16(dx[k0:], K, yb[a:], np, b.tile(w, a, e, k0, k1), kw, T, kw, e-a, true, acc || a > 0,
				tensor.AsU16(*b.pack))
		}
	}
	al := w.colAlign()
	if K/al >= tensor.Threads || T < tensor.Threads {
		tensor.ParallelChunks(K, al, al, func(k0, k1 int) { cols(dx, yb, T, k0, k1) })
		return
	}
	tensor.ParallelChunks(T, 1, 1, func(lo, hi int) { cols(dx[lo*K:hi*K], yb[lo*np:hi*np], hi-lo, 0, K) })
}
