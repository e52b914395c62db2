package model

import (
	"fmt"
	"math"

	"distill/core/tensor"
)

// ForwardBranches runs several continuations of the cached prefix at once:
// branch b's tokens sit at positions c.Len, c.Len+1, … and attend to the
// prefix and to their own earlier tokens only, never to another branch.
// All branches share one pass over the weights — what lets classification
// score every label for little more than the prompt's prefill. It returns
// the final-normed hidden states, (Σ len(branch), hidden) in branch order,
// and leaves c.Len unchanged (the branches' keys are scratch).
func (m *Model) ForwardBranches(be tensor.Backend, branches [][]int, c *Cache) ([]float32, error) {
	cfg := &m.Config
	pos0 := c.Len
	var ids, pos, branchStart []int
	for _, br := range branches {
		for i, id := range br {
			ids = append(ids, id)
			pos = append(pos, pos0+i)
			branchStart = append(branchStart, len(ids)-1-i)
		}
	}
	T := len(ids)
	if T == 0 {
		return nil, nil
	}
	if pos0+T > c.Cap {
		return nil, fmt.Errorf("branches of %d tokens after %d exceed the KV cache's %d", T, pos0, c.Cap)
	}
	maxPos := 0
	for _, p := range pos {
		maxPos = max(maxPos, p)
	}
	if err := m.CheckContext(maxPos + 1); err != nil {
		return nil, err
	}
	for i, id := range ids {
		if id < 0 || id >= cfg.VocabSize {
			return nil, fmt.Errorf("token id %d in branch position %d is outside the vocabulary [0, %d)", id, i, cfg.VocabSize)
		}
	}
	D, hd, nH, nKV, F := cfg.HiddenSize, cfg.HeadDim, cfg.NumHeads, cfg.NumKVHeads, cfg.IntermediateSize
	kvOut := nKV * hd
	eps := float32(cfg.RMSNormEps)
	scale := float32(1 / math.Sqrt(float64(hd)))
	cos, sin := m.rope.upTo(maxPos + 1)
	x, xn := make([]float32, T*D), make([]float32, T*D)
	q, att, o := make([]float32, T*nH*hd), make([]float32, T*nH*hd), make([]float32, T*D)
	gate, up := make([]float32, T*F), make([]float32, T*F)
	be.Embed(x, m.Embed, ids)
	for l := range m.Layers {
		L := &m.Layers[l]
		k := c.K[l][pos0*kvOut : (pos0+T)*kvOut] // scratch rows after the prefix
		v := c.V[l][pos0*kvOut : (pos0+T)*kvOut]
		be.RMSNorm(xn, x, L.AttnNorm, eps)
		be.MatMul(q, xn, L.Q, T)
		be.MatMul(k, xn, L.K, T)
		be.MatMul(v, xn, L.V, T)
		if d := m.Delta; d != nil {
			d.Apply(l, ModQ, q, xn, T)
			d.Apply(l, ModK, k, xn, T)
			d.Apply(l, ModV, v, xn, T)
		}
		if L.QBias != nil {
			be.AddBias(q, L.QBias)
			be.AddBias(k, L.KBias)
			be.AddBias(v, L.VBias)
		}
		if L.QNorm != nil {
			be.RMSNorm(q, q, L.QNorm, eps)
			be.RMSNorm(k, k, L.KNorm, eps)
		}
		for t := 0; t < T; t++ { // each row at its own position
			be.RoPE(q[t*nH*hd:(t+1)*nH*hd], 1, nH, hd, pos[t], cos, sin)
			be.RoPE(k[t*kvOut:(t+1)*kvOut], 1, nKV, hd, pos[t], cos, sin)
		}
		branchAttention(att, q, c.K[l], c.V[l], pos0, branchStart, nH, nKV, hd, scale)
		be.MatMul(o, att, L.O, T)
		if d := m.Delta; d != nil {
			d.Apply(l, ModO, o, att, T)
		}
		if L.OBias != nil {
			be.AddBias(o, L.OBias)
		}
		be.Add(x, o)
		be.RMSNorm(xn, x, L.MLPNorm, eps)
		be.MatMul(gate, xn, L.Gate, T)
		be.MatMul(up, xn, L.Up, T)
		if d := m.Delta; d != nil {
			d.Apply(l, ModGate, gate, xn, T)
			d.Apply(l, ModUp, up, xn, T)
		}
		be.SwiGLU(gate, up)
		be.MatMul(o, gate, L.Down, T)
		if d := m.Delta; d != nil {
			d.Apply(l, ModDown, o, gate, T)
		}
		be.Add(x, o)
	}
	out := make([]float32, T*D)
	be.RMSNorm(out, x, m.Norm, eps)
	return out, nil
}

// branchAttention: query t (stored at row pos0+t of k/v) attends to the
// prefix rows [0, pos0) and to rows pos0+branchStart[t] .. pos0+t.
func branchAttention(out, q, k, v []float32, pos0 int, branchStart []int, nH, nKV, hd int, scale float32) {
	group := nH / nKV
	qs, ks := nH*hd, nKV*hd
	tensor.ParallelFor(len(branchStart)*nH, 1, func(lo, hi int) {
		scores := make([]float32, pos0+len(branchStart))
		var keys []int
		for idx := lo; idx < hi; idx++ {
			t, h := idx/nH, idx%nH
			kh := h / group
			qt := q[t*qs+h*hd : t*qs+(h+1)*hd]
			keys = keys[:0]
			for p := 0; p < pos0; p++ {
				keys = append(keys, p)
			}
			for s := branchStart[t]; s <= t; s++ {
				keys = append(keys, pos0+s)
			}
			m := float32(math.Inf(-1))
			for i, p := range keys {
				var s float32
				kp := k[p*ks+kh*hd : p*ks+(kh+1)*hd]
				for j := range qt {
					s += qt[j] * kp[j]
				}
				scores[i] = s * scale
				m = max(m, scores[i])
			}
			var sum float64
			for i := range keys {
				e := math.Exp(float64(scores[i] - m))
				scores[i] = float32(e)
				sum += e
			}
			o := out[t*qs+h*hd : t*qs+(h+1)*hd]
			clear(o)
			for i, p := range keys {
				w := scores[i] / float32(sum)
				vp := v[p*ks+kh*hd : p*ks+(kh+1)*hd]
				for j := range o {
					o[j] += w * vp[j]
				}
			}
		}
	})
}
