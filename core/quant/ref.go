package quant

import (
	"math"

	"distill/core/tensor"
)

// The reference kernels: plain Go, one obvious loop each, with the formats'
// f32 arithmetic. The C kernels (kernels.c) are tested against them, and a
// build without cgo runs them.

// nf4IndexRef is the NF4 code of x = w/absmax: the number of midpoints
// between consecutive code values that x exceeds. An x exactly on a midpoint
// takes the lower code; NaN exceeds none and takes code 0, as bitsandbytes'
// decision tree gives.
func nf4IndexRef(x float32) byte {
	var c byte
	for _, m := range nf4Mid {
		if x > m {
			c++
		}
	}
	return c
}

// nf4QuantizeRef quantises blocks [b0, b1) of src as q_nf4_quantize.
func nf4QuantizeRef(codes []byte, absmax []float32, src []byte, dt tensor.DType, n, b0, b1 int) int {
	es := dt.Size()
	var v [64]float32
	for b := b0; b < b1; b++ {
		e0, cnt := 64*b, min(64, n-64*b)
		v = [64]float32{}
		tensor.ToF32(v[:cnt], dt, src[e0*es:(e0+cnt)*es])
		var m float32
		for i, x := range v[:cnt] {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				return e0 + i
			}
			m = max(m, float32(math.Abs(float64(x))))
		}
		absmax[b] = m
		inv := 1 / m // +Inf for an all-zero block: 0·Inf = NaN → code 0
		for j := 0; j < (cnt+1)/2; j++ {
			codes[32*b+j] = nf4IndexRef(v[2*j]*inv)<<4 | nf4IndexRef(v[2*j+1]*inv)
		}
	}
	return -1
}

func nf4DequantRef(dst []float32, q *NF4, e0, e1 int) {
	for e := e0; e < e1; e++ {
		c := q.Codes[e/2]
		if e&1 == 0 {
			c >>= 4
		}
		dst[e-e0] = NF4Code[c&15] * q.blockScale(e/64)
	}
}

func nf4DequantTileRef(dst []float32, ldd int, q *NF4, n0, n1, k0, k1 int) {
	for n := n0; n < n1; n++ {
		nf4DequantRef(dst[(n-n0)*ldd:], q, n*q.Cols+k0, n*q.Cols+k1)
	}
}

// nf4MatvecRef dequantises each row and dots it with x.
func nf4MatvecRef(out []float32, q *NF4, x []float32, n0, n1 int) {
	row := make([]float32, q.Cols)
	for n := n0; n < n1; n++ {
		nf4DequantRef(row, q, n*q.Cols, (n+1)*q.Cols)
		var s float32
		for k, w := range row {
			s += w * x[k]
		}
		out[n] = s
	}
}

// q8QuantizeRef is ggml's quantize_row_q8_0_ref on blocks [b0, b1), the
// scale kept in f32, dividing by d when 1/d overflows.
func q8QuantizeRef(qs []int8, scales []float32, src []byte, dt tensor.DType, n, b0, b1 int) int {
	es := dt.Size()
	var v [32]float32
	for b := b0; b < b1; b++ {
		e0, cnt := 32*b, min(32, n-32*b)
		tensor.ToF32(v[:cnt], dt, src[e0*es:(e0+cnt)*es])
		var m float32
		for i, x := range v[:cnt] {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				return e0 + i
			}
			m = max(m, float32(math.Abs(float64(x))))
		}
		d := m / 127
		var id float32
		if d != 0 {
			id = 1 / d
		}
		for i, x := range v[:cnt] {
			if math.IsInf(float64(id), 0) {
				qs[e0+i] = int8(math.Round(float64(x / d)))
			} else {
				qs[e0+i] = int8(math.Round(float64(x * id))) // half away from zero
			}
		}
		scales[b] = d
	}
	return -1
}

func q8DequantRef(dst []float32, q *Q8, e0, e1 int) {
	for e := e0; e < e1; e++ {
		dst[e-e0] = float32(q.Qs[e]) * q.Scales[e/32]
	}
}

func q8DequantTileRef(dst []float32, ldd int, q *Q8, n0, n1, k0, k1 int) {
	for n := n0; n < n1; n++ {
		q8DequantRef(dst[(n-n0)*ldd:], q, n*q.Cols+k0, n*q.Cols+k1)
	}
}

func q8MatvecRef(out []float32, q *Q8, x []float32, n0, n1 int) {
	row := make([]float32, q.Cols)
	for n := n0; n < n1; n++ {
		q8DequantRef(row, q, n*q.Cols, (n+1)*q.Cols)
		var s float32
		for k, w := range row {
			s += w * x[k]
		}
		out[n] = s
	}
}

// sgemmNTRef: c(m, n) = a(m, k) · b(n, k)ᵀ.
func sgemmNTRef(m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float32
			for l := 0; l < k; l++ {
				s += a[i*lda+l] * b[j*ldb+l]
			}
			c[i*ldc+j] = s
		}
	}
}

// sgemmNNRef: c(m, n) = a(m, k) · b(k, n) + beta·c.
func sgemmNNRef(m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int, beta float32) {
	row := make([]float32, n)
	for i := 0; i < m; i++ {
		clear(row)
		for l := 0; l < k; l++ {
			av := a[i*lda+l]
			for j := range row {
				row[j] += av * b[l*ldb+j]
			}
		}
		for j, v := range row {
			if beta == 0 {
				c[i*ldc+j] = v
			} else {
				c[i*ldc+j] = beta*c[i*ldc+j] + v
			}
		}
	}
}

// roundBF16 rounds each value of v to the nearest bfloat16 (ties to even):
// the weights and inputs of the bf16 products.
func roundBF16(v []float32) {
	for i, f := range v {
		v[i] = tensor.BF16ToF32(tensor.F32ToBF16(f))
	}
}
