package tensor

import "fmt"

// Matrix is a frozen (Rows, Cols) weight in any storage: a dense *Tensor at
// the checkpoint's dtype, or a quantized matrix (core/quant). Backends
// dispatch on the concrete type.
type Matrix interface {
	Rows() int
	Cols() int
	Bytes() int64 // as held in memory
}

// CPUMatrix is a Matrix that carries its own CPU kernels — the quantized
// formats, whose decode must fuse dequantisation with the dot product.
type CPUMatrix interface {
	Matrix
	// MatMulCPU sets out(T, Rows) = x(T, Cols) · Wᵀ.
	MatMulCPU(out, x []float32, T int)
	// MatMulTAddCPU adds dy(T, Rows) · W to dx(T, Cols).
	MatMulTAddCPU(dx, dy []float32, T int)
}

// Bytes is the size of the tensor's data.
func (t *Tensor) Bytes() int64 { return int64(len(t.Data)) }

func (CPU) MatMul(out, x []float32, w Matrix, T int) {
	switch w := w.(type) {
	case *Tensor:
		matMul(out, x, w, T)
	case CPUMatrix:
		w.MatMulCPU(out, x, T)
	default:
		panic(fmt.Sprintf("tensor: the cpu backend cannot multiply by %T", w))
	}
}

func (CPU) MatMulTAdd(dx, dy []float32, w Matrix, T int) {
	switch w := w.(type) {
	case *Tensor:
		MatMulTAdd(dx, dy, w, T)
	case CPUMatrix:
		w.MatMulTAddCPU(dx, dy, T)
	default:
		panic(fmt.Sprintf("tensor: the cpu backend cannot multiply by %T", w))
	}
}
