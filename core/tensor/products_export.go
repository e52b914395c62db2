package tensor

// The bf16 products' kernels for the packages above: core/quant's
// dequantised tiles, core/train's attention, core/model's bf16 KV caches.

// RoundRowsBF16 sets the m rows of dst (ldd apart) to src's m rows of k
// (lds apart) rounded to bf16 (nearest even), zero from k up to ldd.
func RoundRowsBF16(dst []uint16, ldd int, src []float32, lds, m, k int) {
	bf16Rows(dst, ldd, src, lds, m, k)
}

// RoundColsBF16 sets the k rows of dst (ldd ≥ m apart) to src's m rows of
// k (lds apart) transposed and rounded to bf16, each row zero from m to
// ldd: the k-major operand a bf16 GEMM's a needs.
func RoundColsBF16(dst []uint16, ldd int, src []float32, lds, m, k int) {
	bf16Cols(dst, ldd, src, lds, m, k)
}

// TransposeF32 sets dst (cols, rows) = src (rows, cols)ᵀ.
func TransposeF32(dst, src []float32, rows, cols int) {
	if rows == 0 || cols == 0 {
		return
	}
	_, _ = dst[rows*cols-1], src[rows*cols-1]
	transposeF32(dst, src, rows, cols)
}

// RoundBF16 rounds v's values to bf16 precision in place (nearest even),
// as the bf16 products round their inputs: the f32 path over rounded values.
func RoundBF16(v []float32) { roundBF16InPlace(v) }

// WidenBF16 sets dst to the bf16 values src widened (exactly).
func WidenBF16(dst []float32, src []uint16) { widen(dst[:len(src)], BF16, u16Bytes(src)) }

// RoundBF16Value is x rounded to bf16 precision, as RoundBF16.
func RoundBF16Value(x float32) float32 { return roundBF16(x) }

// AttentionBF16 says whether be's attention rounds its operands to bf16
// (CPU.BF16Attention), for code that computes attention of its own shape
// and must multiply the same values.
func AttentionBF16(be Backend) bool {
	c, ok := be.(CPU)
	return ok && c.BF16Attention
}

// GemmBF16 sets c(m, n) = a(m, k) · op(b), or adds it to c with acc, on
// AVX-512 BF16 (BF16ProductsFast must hold): op(b) is b(n, k)ᵀ, or with bkn
// b(k, n). a's rows are lda (even) apart and finite past an odd k; pack is
// a scratch of BF16PackLen values.
func GemmBF16(c []float32, ldc int, a []uint16, lda int, b []uint16, ldb int, m, n, k int, bkn, acc bool, pack []uint16) {
	gemmBF16(c, ldc, a, lda, u16Bytes(b), ldb, m, n, k, bkn, acc, pack)
}

// BF16PackLen is the length of GemmBF16's pack scratch.
func BF16PackLen() int { return bf16PackLen }

// AsU16 views a float32 scratch (GetScratch) as twice as many uint16.
func AsU16(s []float32) []uint16 { return asU16(s) }

// BF16RowsOf rounds the T rows of v (n values each) to bf16 into a scratch,
// each row padded with a zero to an even length np; PutScratch(s) when done.
func BF16RowsOf(v []float32, T, n int) (vb []uint16, np int, s *[]float32) {
	np = (n + 1) &^ 1
	s = getScratch((T*np + 1) / 2)
	vb = asU16(*s)[:T*np]
	parallelFor(T, max(1, 65536/np), func(lo, hi int) {
		bf16Rows(vb[lo*np:hi*np], np, v[lo*n:hi*n], n, hi-lo, n)
	})
	return vb, np, s
}
