//go:build !cgo

package quant

import (
	"math"

	"distill/core/tensor"
)

// Without cgo the kernels are the plain-Go references of ref.go, and the
// tiles go through a naive sgemm.
const haveBLAS = false

const (
	levelScalar = 0
	levelAVX2   = 1
	levelAVX512 = 2
)

func kernelLevel() int       { return levelScalar }
func setKernelLevel(int) int { return levelScalar }

func kernelTables() (code, mid [16]float32) {
	copy(mid[:], nf4Mid[:])
	mid[15] = 2
	return NF4Code, mid
}

func nf4Quantize(codes []byte, absmax []float32, src []byte, dt tensor.DType, n, b0, b1 int) int {
	return nf4QuantizeRef(codes, absmax, src, dt, n, b0, b1)
}

func nf4Dequant(dst []float32, q *NF4, e0, e1 int) { nf4DequantRef(dst, q, e0, e1) }

func nf4DequantTile(dst []float32, ldd int, q *NF4, n0, n1, k0, k1 int, bw bool) {
	nf4DequantTileRef(dst, ldd, q, n0, n1, k0, k1)
	if bw {
		for n := 0; n < n1-n0; n++ {
			roundBF16(dst[n*ldd : n*ldd+k1-k0])
		}
	}
}

func nf4DequantTileBF16(dst []uint16, ldd int, q *NF4, n0, n1, k0, k1 int) {
	f := make([]float32, k1-k0)
	for n := n0; n < n1; n++ {
		nf4DequantTile(f, k1-k0, q, n, n+1, k0, k1, true)
		for i, v := range f {
			dst[(n-n0)*ldd+i] = uint16(math.Float32bits(v) >> 16) // exact: v is bf16
		}
	}
}

func nf4XPLen(K int) int      { return K }
func nf4Prep(xp, x []float32) { copy(xp, x) }

func nf4Matvec(out []float32, q *NF4, xp []float32, n0, n1 int, bw bool) {
	if !bw {
		nf4MatvecRef(out, q, xp, n0, n1)
		return
	}
	row := make([]float32, q.Cols)
	for n := n0; n < n1; n++ {
		nf4DequantTile(row, q.Cols, q, n, n+1, 0, q.Cols, true)
		var s float32
		for k, w := range row {
			s += w * xp[k]
		}
		out[n] = s
	}
}

func q8Quantize(qs []int8, scales []float32, src []byte, dt tensor.DType, n, b0, b1 int) int {
	return q8QuantizeRef(qs, scales, src, dt, n, b0, b1)
}

func q8Dequant(dst []float32, q *Q8, e0, e1 int) { q8DequantRef(dst, q, e0, e1) }

func q8DequantTile(dst []float32, ldd int, q *Q8, n0, n1, k0, k1 int) {
	q8DequantTileRef(dst, ldd, q, n0, n1, k0, k1)
}

func q8Matvec(out []float32, q *Q8, x []float32, n0, n1 int) { q8MatvecRef(out, q, x, n0, n1) }

func sgemmNT(m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	sgemmNTRef(m, n, k, a, lda, b, ldb, c, ldc)
}

func sgemmNN(m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int, beta float32) {
	sgemmNNRef(m, n, k, a, lda, b, ldb, c, ldc, beta)
}
