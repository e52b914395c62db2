package quant

import (
	"fmt"

	"distill/core/tensor"
)

// Quantized is what the engine holds for a quantised projection: it
// satisfies tensor.CPUMatrix, so the model's forward, training's backward
// and LoRA run over it exactly as over a dense weight.
type Quantized struct {
	Q interface {
		Linear
		Bytes() int
		BitsPerParam() float64
		QuantError(w *tensor.Tensor) (maxAbs, rms float64)
	}
	w weights // the same matrix, for the accumulating transpose product
}

func (f *Quantized) Rows() int    { r, _ := f.Q.Shape(); return r }
func (f *Quantized) Cols() int    { _, c := f.Q.Shape(); return c }
func (f *Quantized) Bytes() int64 { return int64(f.Q.Bytes()) }

// MatMulCPU sets out(T, N) = x(T, K)·Wᵀ with fused dequantisation; with
// bf16 (the CPU backend's bf16 products) NF4 multiplies its weights rounded
// to bf16 by x rounded to bf16 (Q8 stays f32).
func (f *Quantized) MatMulCPU(out, x []float32, T int, bf16 bool) {
	matMul(f.w.withBF16(bf16), out, x, T)
}

// MatMulTAddCPU adds dy(T, N)·W to dx(T, K), dequantising tiles of W (with
// bf16 as MatMulCPU, dy rounded).
func (f *Quantized) MatMulTAddCPU(dx, dy []float32, T int, bf16 bool) {
	matMulTAcc(f.w.withBF16(bf16), dx, dy, T, true)
}

var _ tensor.CPUMatrix = (*Quantized)(nil)

// NF4 hands out the NF4 storage for device backends (ok false for Q8).
func (f *Quantized) NF4() (tensor.NF4Parts, bool) {
	q, ok := f.Q.(*NF4)
	if !ok {
		return tensor.NF4Parts{}, false
	}
	return tensor.NF4Parts{Rows: q.Rows, Cols: q.Cols, Codes: q.Codes, Absmax: q.Absmax, QAbsmax: q.QAbsmax,
		Absmax2: q.Absmax2, Offset: q.Offset, Map2: q.Map2}, true
}

var _ tensor.NF4Matrix = (*Quantized)(nil)

// Quantize quantises w to format ("nf4" or "q8"); doubleQuant applies to NF4.
func Quantize(w *tensor.Tensor, format string, doubleQuant bool) (*Quantized, error) {
	switch format {
	case "nf4":
		q, err := QuantizeNF4(w, doubleQuant)
		if err != nil {
			return nil, err
		}
		return &Quantized{Q: q, w: nf4Weights{q: q}}, nil
	case "q8":
		q, err := QuantizeQ8(w)
		if err != nil {
			return nil, err
		}
		return &Quantized{Q: q, w: q8Weights{q}}, nil
	}
	return nil, fmt.Errorf("unknown quantisation %q (nf4, q8 or none)", format)
}
