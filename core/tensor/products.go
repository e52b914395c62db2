package tensor

import "unsafe"

// BF16ProductsFast says whether CPU.BF16Products runs on AVX-512 BF16 here
// (otherwise it rounds the inputs and runs at f32's speed).
func BF16ProductsFast() bool { return haveBF16Dot && kernelLevel() >= levelAVX512 }

// BF16SplitRows says whether a bf16 GEMM of T rows and n columns splits its
// rows over the workers rather than its columns: where the columns are too
// few to share, and the rows enough — with AMX, whole blocks of 32 rows a
// worker, the tiles' unit (fewer run on vdpbf16ps).
func BF16SplitRows(n, T int) bool {
	per := 2
	if haveAMX && amxActive() {
		per = 32
	}
	return n < 64*Threads && T >= per*Threads
}

// AMX says whether the bf16 products' GEMM runs on AMX tiles here (Xeons
// from Sapphire Rapids on): several times vdpbf16ps's rate.
func AMX() bool { return BF16ProductsFast() && haveAMX }

// roundsBF16 says whether a product with w multiplies bf16-rounded inputs,
// bf16 being the backend's BF16Products.
func roundsBF16(w *Tensor, bf16 bool) bool { return bf16 && w.DType == BF16 }

// roundedInto sets dst to the first len(dst) values of src rounded to bf16
// (the f32 path of the bf16 products) and returns it.
func roundedInto(dst, src []float32) []float32 {
	for i, v := range src[:len(dst)] {
		dst[i] = roundBF16(v)
	}
	return dst
}

// asU16 views a float32 scratch as twice as many uint16.
func asU16(s []float32) []uint16 {
	return unsafe.Slice((*uint16)(unsafe.Pointer(unsafe.SliceData(s))), 2*len(s))
}

// u16Bytes views bf16 values as their bytes (a Tensor's Data layout).
func u16Bytes(s []uint16) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s))), 2*len(s))
}

// matMulBF16 is matMulGEMM on the bf16 products.
func matMulBF16(out, x []float32, w *Tensor, T int) {
	productsBF16(out, x, w, T, w.Rows(), w.Cols(), false, false)
}

// matMulTAddBF16 is matMulTAdd on the bf16 products: dx(T, K) += dy · W,
// W read as b(k = N, n = K).
func matMulTAddBF16(dx, dy []float32, w *Tensor, T int) {
	productsBF16(dx, dy, w, T, w.Cols(), w.Rows(), true, true)
}

// productsBF16 sets c(T, n) = bf16(a)(T, k) · op(W), or adds it with acc:
// op(W) is Wᵀ (W (n, k)), or with bkn W itself (W (k, n)). a is rounded to
// bf16 once; the columns of c — or its rows, when c has few columns — are
// split over the workers, each packing strips of W into its own scratch.
func productsBF16(c, a []float32, w *Tensor, T, n, k int, bkn, acc bool) {
	ab, kp, as := BF16RowsOf(a, T, k)
	defer putScratch(as)
	part := func(c []float32, ab []uint16, T, j0, j1 int) {
		ps := getScratch(bf16PackLen / 2)
		defer putScratch(ps)
		off := j0 * k // W's rows j0…
		if bkn {
			off = j0 // …or its columns
		}
		gemmBF16(c[j0:], n, ab, kp, w.Data[2*off:], w.Cols(), T, j1-j0, k, bkn, acc, asU16(*ps))
	}
	if BF16SplitRows(n, T) {
		parallelChunks(T, 1, 1, func(lo, hi int) { part(c[lo*n:hi*n], ab[lo*kp:hi*kp], hi-lo, 0, n) })
		return
	}
	parallelChunks(n, 64, 64, func(lo, hi int) { part(c, ab, T, lo, hi) })
}
