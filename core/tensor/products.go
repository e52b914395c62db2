package tensor

import (
	"sync/atomic"
	"unsafe"
)

// bf16Products says whether MatMul multiplies BF16 weights by the
// activations rounded to bf16 — the products of two bf16, exact in f32 —
// rather than by the f32 activations. Every sum stays f32. Where the CPU
// has AVX-512 BF16, prefill's GEMMs then run on its dot products, twice
// f32's arithmetic per instruction; elsewhere, and in decode's matvec, x is
// rounded and the f32 kernels run, so that every path and batch size
// multiplies the same values (but for subnormals, which vdpbf16ps reads as
// zero). It is what llama.cpp's BF16 kernels and GPU
// bf16 GEMMs compute; off (the default), the CPU backend is the f32
// reference. Training's backward products (MatMulTAdd) stay f32 either way.
var bf16Products atomic.Bool

// SetBF16Products turns the bf16 products on or off.
func SetBF16Products(on bool) { bf16Products.Store(on) }

// BF16Products says whether the bf16 products are on.
func BF16Products() bool { return bf16Products.Load() }

// BF16ProductsFast says whether the bf16 products run on AVX-512 BF16 here
// (otherwise they round x and run at f32's speed).
func BF16ProductsFast() bool { return haveBF16Dot && kernelLevel() >= levelAVX512 }

// roundsBF16 says whether a product with w multiplies bf16-rounded x.
func roundsBF16(w *Tensor) bool { return w.DType == BF16 && bf16Products.Load() }

// asU16 views a float32 scratch as twice as many uint16.
func asU16(s []float32) []uint16 {
	return unsafe.Slice((*uint16)(unsafe.Pointer(unsafe.SliceData(s))), 2*len(s))
}

// matMulBF16 is matMulGEMM on the bf16 products: x is rounded to bf16 once
// (rows padded to an even length), then the columns of out — or its rows,
// when W has few — are split over the workers, each packing strips of W
// into its own scratch.
func matMulBF16(out, x []float32, w *Tensor, T int) {
	N, K := w.Rows(), w.Cols()
	kp := (K + 1) &^ 1
	xs := getScratch((T*kp + 1) / 2)
	defer putScratch(xs)
	xb := asU16(*xs)[:T*kp]
	parallelFor(T, max(1, 65536/kp), func(lo, hi int) {
		bf16Rows(xb[lo*kp:hi*kp], kp, x[lo*K:hi*K], K, hi-lo, K)
	})
	cols := func(out []float32, xb []uint16, T, n0, n1 int) {
		ps := getScratch(bf16PackLen / 2)
		defer putScratch(ps)
		gemmBF16NT(out[n0:], N, xb, kp, w.Data[n0*K*2:], K, T, n1-n0, K, asU16(*ps))
	}
	if N < 64*Threads && T >= 2*Threads {
		parallelChunks(T, 1, 1, func(lo, hi int) { cols(out[lo*N:hi*N], xb[lo*kp:hi*kp], hi-lo, 0, N) })
		return
	}
	parallelChunks(N, 64, 64, func(lo, hi int) { cols(out, xb, T, lo, hi) })
}
