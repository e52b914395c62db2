package quant

import (
	"fmt"

	"distill/core/tensor"
)

// Linear is a frozen weight W (N, K) that the engine multiplies by: a plain
// tensor at its stored dtype (Dense) or a quantised matrix (*NF4, *Q8). The
// engine's layers hold Linear for their projections so that LoRA wraps any
// of them alike.
type Linear interface {
	// Shape returns (N, K).
	Shape() (rows, cols int)
	// MatMul computes out(T, N) = x(T, K) · Wᵀ (the forward pass).
	MatMul(out, x []float32, T int)
	// MatMulT computes dx(T, K) = dy(T, N) · W (the backward pass to the
	// input; W itself gets no gradient).
	MatMulT(dx, dy []float32, T int)
	// DequantizeRows writes rows [r0, r1) of W in f32 into dst
	// ((r1-r0)·K floats): what a merge or an export reads a tile at a time.
	DequantizeRows(r0, r1 int, dst []float32)
}

var (
	_ Linear = (*NF4)(nil)
	_ Linear = (*Q8)(nil)
	_ Linear = Dense{}
)

// Dense is a Linear over a tensor (F32, F16 or BF16, viewed as W.Rows() ×
// W.Cols()): MatMul is the CPU backend's; MatMulT widens tiles of rows
// (f32 weights are used in place) and calls sgemm.
type Dense struct{ W *tensor.Tensor }

func (d Dense) Shape() (rows, cols int) { return d.W.Rows(), d.W.Cols() }

func (d Dense) MatMul(out, x []float32, T int) { tensor.CPU{}.MatMul(out, x, d.W, T) }

func (d Dense) MatMulT(dx, dy []float32, T int) {
	if d.W.DType == tensor.F32 && haveBLAS {
		N, K := d.Shape()
		if T < 0 || len(dy) < T*N || len(dx) < T*K {
			panic(fmt.Sprintf("quant: MatMulT of %s %v with T=%d needs dy of %d floats (have %d) and dx of %d (have %d)",
				d.W.Name, d.W.Shape, T, T*N, len(dy), T*K, len(dx)))
		}
		if T == 0 || K == 0 {
			return
		}
		if N == 0 {
			clear(dx[:T*K])
			return
		}
		w := d.W.F32s()
		tensor.ParallelChunks(K, 64, 16, func(k0, k1 int) { sgemmNN(T, k1-k0, N, dy, N, w[k0:], K, dx[k0:], K, 0) })
		return
	}
	matMulT(denseWeights{d.W}, dx, dy, T)
}

func (d Dense) DequantizeRows(r0, r1 int, dst []float32) {
	K := d.W.Cols()
	es := d.W.DType.Size()
	if r0 < 0 || r1 > d.W.Rows() || r0 > r1 || len(dst) < (r1-r0)*K {
		panic(fmt.Sprintf("quant: DequantizeRows(%d, %d) of %s %v into %d floats", r0, r1, d.W.Name, d.W.Shape, len(dst)))
	}
	tensor.ToF32(dst[:(r1-r0)*K], d.W.DType, d.W.Data[r0*K*es:r1*K*es])
}

// denseWeights adapts a 16-bit tensor to matMulT's tiling.
type denseWeights struct{ w *tensor.Tensor }

func (w denseWeights) name() string          { return w.w.Name }
func (w denseWeights) shape() (int, int)     { return w.w.Rows(), w.w.Cols() }
func (w denseWeights) fused() bool           { return false }
func (w denseWeights) roundsBF16() bool      { return false } // Dense is the f32 reference
func (w denseWeights) withBF16(bool) weights { return w }
func (w denseWeights) colAlign() int         { return 16 }
func (w denseWeights) rowBytes() int         { return w.w.Cols() * w.w.DType.Size() }
func (w denseWeights) prepLen(K int) int     { return 0 }
func (w denseWeights) prep(xp, x []float32)  {}
func (w denseWeights) matvec(out, xp []float32, n0, n1 int) {
	panic("quant: denseWeights has no fused matvec")
}
func (w denseWeights) dequantTile(dst []float32, ldd, n0, n1, k0, k1 int) {
	K, es := w.w.Cols(), w.w.DType.Size()
	for n := n0; n < n1; n++ {
		o := n*K + k0
		tensor.ToF32(dst[(n-n0)*ldd:(n-n0)*ldd+k1-k0], w.w.DType, w.w.Data[o*es:(o+k1-k0)*es])
	}
}
