package quant

import (
	"fmt"

	"distill/core/tensor"
)

// Q8BlockSize is the number of consecutive elements sharing one Q8 scale.
const Q8BlockSize = 32

// Q8 is a matrix quantised to symmetric 8 bits per block of 32, with the
// numbers of ggml's Q8_0 reference quantiser (quantize_row_q8_0_ref) except
// that the scale stays in f32:
//
//	Qs      n int8: element e of the flattened row-major tensor (n = Rows·Cols),
//	Scales  ceil(n/32) f32: d of block b = elements [32b, 32b+32), the last
//	        block possibly shorter,
//
// where amax = max |w| over the block, d = amax/127 (f32) and q = round(w·(1/d))
// half away from zero (0 when d = 0; w/d when 1/d overflows, for blocks of
// subnormals, where ggml's reference would cast Inf to int8). Element e
// dequantises to f32(Qs[e])·Scales[e/32]: every |error| ≤ d/2. The codes are
// ggml's; its block_q8_0 stores d rounded to f16, which flushes blocks with
// amax below about 8e-6 and coarsens those below 8e-3, so the f32 scale
// costs half a bit more (9 bits per parameter) for none of that.
type Q8 struct {
	Name       string
	Rows, Cols int
	Qs         []int8
	Scales     []float32
}

// QuantizeQ8 quantises w (F32, F16 or BF16, as a w.Rows() × w.Cols() matrix)
// to Q8 in parallel. Errors as QuantizeNF4.
func QuantizeQ8(w *tensor.Tensor) (*Q8, error) {
	if err := checkQuantizable(w, "Q8"); err != nil {
		return nil, err
	}
	n := w.Elems()
	nb := (n + Q8BlockSize - 1) / Q8BlockSize
	q := &Q8{Name: w.Name, Rows: w.Rows(), Cols: w.Cols(), Qs: make([]int8, n), Scales: make([]float32, nb)}
	bad := quantizeParallel(nb, func(b0, b1 int) int { return q8Quantize(q.Qs, q.Scales, w.Data, w.DType, n, b0, b1) })
	if bad >= 0 {
		return nil, nonFinite(w, bad)
	}
	return q, nil
}

// Shape returns (Rows, Cols).
func (q *Q8) Shape() (rows, cols int) { return q.Rows, q.Cols }

// Bytes is the storage of the quantised weight.
func (q *Q8) Bytes() int { return len(q.Qs) + 4*len(q.Scales) }

// BitsPerParam is 9 (8 + 32/32) for whole blocks.
func (q *Q8) BitsPerParam() float64 { return 8 * float64(q.Bytes()) / float64(q.Rows*q.Cols) }

// Dequantize writes all Rows·Cols values into dst, in parallel.
func (q *Q8) Dequantize(dst []float32) {
	n := q.Rows * q.Cols
	if len(dst) < n {
		panic(fmt.Sprintf("quant: Dequantize of %s (%d×%d) into %d floats", q.Name, q.Rows, q.Cols, len(dst)))
	}
	tensor.ParallelChunks(n, 1<<16, Q8BlockSize, func(lo, hi int) { q8Dequant(dst[lo:hi], q, lo, hi) })
}

// DequantizeRows writes rows [r0, r1) into dst ((r1-r0)·Cols floats).
func (q *Q8) DequantizeRows(r0, r1 int, dst []float32) {
	if r0 < 0 || r1 > q.Rows || r0 > r1 || len(dst) < (r1-r0)*q.Cols {
		panic(fmt.Sprintf("quant: DequantizeRows(%d, %d) of %s (%d×%d) into %d floats", r0, r1, q.Name, q.Rows, q.Cols, len(dst)))
	}
	q8Dequant(dst, q, r0*q.Cols, r1*q.Cols)
}

// QuantError is as NF4's.
func (q *Q8) QuantError(w *tensor.Tensor) (maxAbs, rms float64) { return quantError(q, w) }

// MatMul computes out(T, N) = x(T, K) · W(N, K)ᵀ as NF4's does (fused kernel
// when K is a multiple of 32).
func (q *Q8) MatMul(out, x []float32, T int) { matMul(q8Weights{q}, out, x, T) }

// MatMulT computes dx(T, K) = dy(T, N) · W(N, K).
func (q *Q8) MatMulT(dx, dy []float32, T int) { matMulT(q8Weights{q}, dx, dy, T) }

type q8Weights struct{ q *Q8 }

// Q8 keeps f32 products under the bf16 products: its kernels scale a
// block's dot product, not each weight, so there is no weight to round.
func (w q8Weights) roundsBF16() bool      { return false }
func (w q8Weights) withBF16(bool) weights { return w }

func (w q8Weights) name() string                         { return w.q.Name }
func (w q8Weights) shape() (int, int)                    { return w.q.Rows, w.q.Cols }
func (w q8Weights) fused() bool                          { return w.q.Cols%Q8BlockSize == 0 }
func (w q8Weights) colAlign() int                        { return Q8BlockSize }
func (w q8Weights) rowBytes() int                        { return w.q.Cols + w.q.Cols/Q8BlockSize*4 }
func (w q8Weights) prepLen(K int) int                    { return K }
func (w q8Weights) prep(xp, x []float32)                 { copy(xp, x) }
func (w q8Weights) matvec(out, xp []float32, n0, n1 int) { q8Matvec(out, w.q, xp, n0, n1) }
func (w q8Weights) dequantTile(dst []float32, ldd, n0, n1, k0, k1 int) {
	q8DequantTile(dst, ldd, w.q, n0, n1, k0, k1)
}
