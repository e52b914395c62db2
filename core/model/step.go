package model

import (
	"errors"
	"fmt"
	"math"

	"distill/core/tensor"
)

// ForwardStep feeds one new token to each of B sequences, each with its own
// KV cache, in one pass over the weights: the projections run as (B, ·)
// GEMMs, and each row attends over its own cache at its own position. It
// appends every row's key and value to its cache (c.Len grows by one) and
// returns the final-normed hidden states (B, hidden). scratch holds the
// pass's activations and the new keys and values, in f32 in its workspace
// with bf16 caches, before they are copied (rounded) into the caches (on
// the host; an accelerator's step does not touch it); make it with
// NewCache(B) or larger and reuse it across steps. For B = 1 it computes
// exactly what Forward does for one token.
func (m *Model) ForwardStep(be tensor.Backend, ids []int, caches []*Cache, scratch *Cache) ([]float32, error) {
	cfg := &m.Config
	B := len(ids)
	if B != len(caches) {
		return nil, fmt.Errorf("forward step: %d ids for %d caches", B, len(caches))
	}
	if B == 0 {
		return nil, nil
	}
	if scratch.Cap < B {
		return nil, fmt.Errorf("forward step: scratch cache holds %d rows, the step needs %d", scratch.Cap, B)
	}
	for b, c := range caches {
		if c.Len+1 > c.Cap {
			return nil, fmt.Errorf("context of %d tokens exceeds the KV cache's %d", c.Len+1, c.Cap)
		}
		if err := m.CheckContext(c.Len + 1); err != nil {
			return nil, err
		}
		if ids[b] < 0 || ids[b] >= cfg.VocabSize {
			return nil, fmt.Errorf("token id %d of sequence %d is outside the vocabulary [0, %d)", ids[b], b, cfg.VocabSize)
		}
	}
	from := 0 // the first layer the host pass runs
	if a := m.accelerated(); a != nil {
		x := m.stepLayers(be, ids, caches, scratch, 0, m.CPULayers) // --cpu-offload's layers on the host first
		out, err := a.ForwardStep(ids, x, caches, make([]float32, B*cfg.HiddenSize))
		if err == nil {
			for _, c := range caches {
				c.Len++
			}
			return out, nil
		}
		if !errors.Is(err, ErrAcceleratorFull) {
			return nil, err
		}
		from, be = m.CPULayers, tensor.CPU{} // the host goes on from their output (be may be the full device's)
	}
	x := m.stepLayers(be, ids, caches, scratch, from, len(m.Layers))
	for _, c := range caches {
		c.Len++
	}
	out := make([]float32, B*cfg.HiddenSize)
	be.RMSNorm(out, x, m.Norm, float32(cfg.RMSNormEps))
	return out, nil
}

// stepLayers runs ForwardStep's decoder layers [from, to) on the host,
// each row's key and value into its own cache, and returns the residual
// stream (B, hidden) after them, in scratch's workspace (the input of
// layer from when from > 0; nil when from == to == 0). It leaves each
// cache's Len as it is.
func (m *Model) stepLayers(be tensor.Backend, ids []int, caches []*Cache, scratch *Cache, from, to int) []float32 {
	if from == 0 && to == 0 {
		return nil
	}
	cfg := &m.Config
	hd, nH, nKV := cfg.HeadDim, cfg.NumHeads, cfg.NumKVHeads
	kvOut, qs := nKV*hd, nH*hd
	scale := float32(1 / math.Sqrt(float64(hd)))
	maxPos := 0
	for _, c := range caches {
		maxPos = max(maxPos, c.Len)
	}
	cos, sin := m.rope.upTo(maxPos + 1)
	return m.decode(be, scratch, ids, 0, from, to,
		func(be tensor.Backend, q, k []float32) {
			for b, c := range caches { // each row at its own sequence's position
				be.RoPE(q[b*qs:(b+1)*qs], 1, nH, hd, c.Len, cos, sin)
				be.RoPE(k[b*kvOut:(b+1)*kvOut], 1, nKV, hd, c.Len, cos, sin)
			}
		},
		func(be tensor.Backend, l int, att, q, k, v []float32) {
			for b, c := range caches {
				p := c.Len
				kb, vb := k[b*kvOut:(b+1)*kvOut], v[b*kvOut:(b+1)*kvOut]
				if c.BF16() {
					c.store(l, p, kb, vb)
					tensor.AttentionBF16Cache(att[b*qs:(b+1)*qs], q[b*qs:(b+1)*qs], c.K16[l], c.V16[l], 1, p, nH, nKV, hd, scale)
					continue
				}
				copy(c.K[l][p*kvOut:(p+1)*kvOut], kb)
				copy(c.V[l][p*kvOut:(p+1)*kvOut], vb)
				be.Attention(att[b*qs:(b+1)*qs], q[b*qs:(b+1)*qs], c.K[l], c.V[l], 1, p, nH, nKV, hd, scale)
			}
		})
}
