package lora

import (
	"distill/core/model"
	"distill/core/tensor"
)

// Apply implements model.Delta: y(T, out) += s · (x(T, in)·Aᵀ)·Bᵀ for the
// pair adapting layer l's module, so inference runs the adapter unmerged
// over a shared (possibly quantized) base.
func (a *Adapter) Apply(l int, mod model.Module, y, x []float32, T int) {
	p := a.Layers[l][mod]
	if p == nil {
		return
	}
	r := a.Config.R
	u := make([]float32, T*r) // (T, r): small next to the projection itself
	tensor.Gemm(false, true, T, r, p.In, 1, x, p.In, p.A, p.In, 0, u, r)
	tensor.Gemm(false, true, T, p.Out, r, a.Config.Scaling(), u, r, p.B, r, 1, y, p.Out)
}

var _ model.Delta = (*Adapter)(nil)
