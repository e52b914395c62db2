package tensor

import "unsafe"

// BF16ProductsFast says whether CPU.BF16Products runs on AVX-512 BF16 here
// (otherwise it rounds the inputs and runs at f32's speed).
func BF16ProductsFast() bool { return haveBF16Dot && kernelLevel() >= levelAVX512 }

// roundsBF16 says whether a product with w multiplies bf16-rounded inputs,
// bf16 being the backend's BF16Products.
func roundsBF16(w *Tensor, bf16 bool) bool { return bf16 && w.DType == BF16 }

// asU16 views a float32 scratch as twice as many uint16.
func asU16(s []float32) []uint16 {
	return unsafe.Slice((*uint16)(unsafe.Pointer(unsafe.SliceData(s))), 2*len(s))
}

// u16Bytes views bf16 values as their bytes (a Tensor's Data layout).
func u16Bytes(s []uint16) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s))), 2*len(s))
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
		gemmBF16(out[n0:], N, xb, kp, w.Data[n0*K*2:], K, T, n1-n0, K, false, false, asU16(*ps))
	}
	if N < 64*Threads && T >= 2*Threads {
		parallelChunks(T, 1, 1, func(lo, hi int) { cols(out[lo*N:hi*N], xb[lo*kp:hi*kp], hi-lo, 0, N) })
		return
	}
	parallelChunks(N, 64, 64, func(lo, hi int) { cols(out, xb, T, lo, hi) })
}

// matMulTAddBF16 is MatMulTAdd on the bf16 products: dy rounded to bf16 once
// (rows padded to an even length), then dx(T, K) += dy · W with W read as
// b(k = N, n = K); the columns of dx — or its rows, when W has few columns —
// are split over the workers.
func matMulTAddBF16(dx, dy []float32, w *Tensor, T int) {
	N, K := w.Rows(), w.Cols()
	np := (N + 1) &^ 1
	ys := getScratch((T*np + 1) / 2)
	defer putScratch(ys)
	yb := asU16(*ys)[:T*np]
	parallelFor(T, max(1, 65536/np), func(lo, hi int) {
		bf16Rows(yb[lo*np:hi*np], np, dy[lo*N:hi*N], N, hi-lo, N)
	})
	cols := func(dx []float32, yb []uint16, T, k0, k1 int) {
		ps := getScratch(bf16PackLen / 2)
		defer putScratch(ps)
		gemmBF16(dx[k0:], K, yb, np, w.Data[k0*2:], K, T, k1-k0, N, true, true, asU16(*ps))
	}
	if K < 64*Threads && T >= 2*Threads {
		parallelChunks(T, 1, 1, func(lo, hi int) { cols(dx[lo*K:hi*K], yb[lo*np:hi*np], hi-lo, 0, K) })
		return
	}
	parallelChunks(K, 64, 64, func(lo, hi int) { cols(dx, yb, T, lo, hi) })
}
