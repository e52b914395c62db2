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
	// MatMulCPU sets out(T, Rows) = x(T, Cols) · Wᵀ, with bf16 as
	// CPU.BF16Products asks (where the format has a bf16 form).
	MatMulCPU(out, x []float32, T int, bf16 bool)
	// MatMulTAddCPU adds dy(T, Rows) · W to dx(T, Cols), bf16 likewise.
	MatMulTAddCPU(dx, dy []float32, T int, bf16 bool)
}

// Bytes is the size of the tensor's data.
func (t *Tensor) Bytes() int64 { return int64(len(t.Data)) }

func (c CPU) MatMul(out, x []float32, w Matrix, T int) {
	switch w := w.(type) {
	case *Tensor:
		matMul(out, x, w, T, c.BF16Products)
	case CPUMatrix:
		w.MatMulCPU(out, x, T, c.BF16Products)
	default:
		panic(fmt.Sprintf("tensor: the cpu backend cannot multiply by %T", w))
	}
}

func (c CPU) MatMulTAdd(dx, dy []float32, w Matrix, T int) {
	switch w := w.(type) {
	case *Tensor:
		matMulTAdd(dx, dy, w, T, c.BF16Products)
	case CPUMatrix:
		w.MatMulTAddCPU(dx, dy, T, c.BF16Products)
	default:
		panic(fmt.Sprintf("tensor: the cpu backend cannot multiply by %T", w))
	}
}

// NF4Parts is the storage of an NF4 matrix in core/quant's layout
// (bitsandbytes' quantize_4bit, block 64, high nibble first, optionally
// double-quantised absmaxes; see quant.NF4 for the meaning of each field),
// for backends that dequantise it on their own device. The slices are the
// matrix's own: read-only.
type NF4Parts struct {
	Rows, Cols int
	Codes      []byte
	Absmax     []float32 // nil under double quantisation
	QAbsmax    []byte
	Absmax2    []float32
	Offset     float32
	Map2       *[256]float32
}

// NF4Matrix is a Matrix that can hand out its NF4 storage; ok is false when
// it holds another format.
type NF4Matrix interface {
	Matrix
	NF4() (p NF4Parts, ok bool)
}
