package quant

import (
	"fmt"

	"distill/core/model"
	"distill/core/tensor"
)

// TensorReport is one quantised projection's size and error.
type TensorReport struct {
	Name         string
	BitsPerParam float64
	MaxAbs, RMS  float64 // dequantised − original
}

// ModelReport summarises quantising a model's projections.
type ModelReport struct {
	Format  string
	Params  int64
	Bytes   int64
	Tensors []TensorReport // filled when errors were asked for
}

// BitsPerParam over all quantised projections.
func (r ModelReport) BitsPerParam() float64 { return 8 * float64(r.Bytes) / float64(r.Params) }

// QuantizeModel replaces every linear projection of m by its quantised form,
// layer by layer, as bitsandbytes does (embeddings, norms and the LM head
// stay as they are). Each source tensor's pages are dropped from memory once
// quantised, so the full-precision base is resident one layer at a time.
// withErrors also measures each tensor's quantisation error (one more pass).
func QuantizeModel(m *model.Model, format string, doubleQuant, withErrors bool) (ModelReport, error) {
	rep := ModelReport{Format: format}
	if format == "none" || format == "" {
		return rep, nil
	}
	if doubleQuant && format != "nf4" {
		return rep, fmt.Errorf("double quantisation applies to nf4 only, not %s", format)
	}
	for l := range m.Layers {
		L := &m.Layers[l]
		for _, slot := range []*tensor.Matrix{&L.Q, &L.K, &L.V, &L.O, &L.Gate, &L.Up, &L.Down} {
			w, ok := (*slot).(*tensor.Tensor)
			if !ok {
				return rep, fmt.Errorf("layer %d: projection already quantised (%T)", l, *slot)
			}
			q, err := Quantize(w, format, doubleQuant)
			if err != nil {
				return rep, fmt.Errorf("quantise %s: %w", w.Name, err)
			}
			if withErrors {
				mx, rms := q.Q.QuantError(w)
				rep.Tensors = append(rep.Tensors, TensorReport{Name: w.Name, BitsPerParam: q.Q.BitsPerParam(), MaxAbs: mx, RMS: rms})
			}
			rep.Params += int64(w.Elems())
			rep.Bytes += q.Bytes()
			*slot = q
			model.EvictPages(w.Data)
		}
	}
	return rep, nil
}
