package model

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"distill/core/tensor"
)

// ForwardBranches runs several continuations of the cached prefix at once:
// branch b's tokens sit at positions c.Len, c.Len+1, … and attend to the
// prefix and to their own earlier tokens only, never to another branch.
// All branches share one pass over the weights — what lets classification
// score every label for little more than the prompt's prefill. It returns
// the final-normed hidden states, (Σ len(branch), hidden) in branch order,
// and leaves c.Len unchanged: the branches' keys and values are left in c's
// rows from Len on, in branch order — scratch the next pass overwrites,
// which a caller may copy first (batched prefill gives each branch's to its
// own sequence's cache).
func (m *Model) ForwardBranches(be tensor.Backend, branches [][]int, c *Cache) ([]float32, error) {
	cfg := &m.Config
	pos0 := c.Len
	ids, pos, branchStart := branchRows(branches, pos0)
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
	from := 0 // the first layer the host pass runs
	// A bf16 cache (made before Accelerate) stays on the host: a device
	// mirrors f32 rows.
	if a := m.accelerated(); a != nil && !c.BF16() {
		x := m.branchLayers(be, ids, pos, branchStart, c, 0, m.CPULayers) // --cpu-offload's layers on the host first
		h, err := a.ForwardBranches(branches, x, c)
		if err == nil {
			return h, nil
		}
		if !errors.Is(err, ErrAcceleratorFull) {
			return nil, err
		}
		from, be = m.CPULayers, tensor.CPU{} // the host goes on from their output (be may be the full device's)
	}
	x := m.branchLayers(be, ids, pos, branchStart, c, from, len(m.Layers))
	D := cfg.HiddenSize
	out := make([]float32, T*D)
	be.RMSNorm(out, x, m.Norm, float32(cfg.RMSNormEps))
	return out, nil
}

// branchRows lays the branches out as one pass's rows after a prefix of
// pos0: their ids concatenated, each row's position, and the row its
// branch starts at.
func branchRows(branches [][]int, pos0 int) (ids, pos, branchStart []int) {
	for _, br := range branches {
		for i, id := range br {
			ids = append(ids, id)
			pos = append(pos, pos0+i)
			branchStart = append(branchStart, len(ids)-1-i)
		}
	}
	return ids, pos, branchStart
}

// branchLayers runs ForwardBranches' decoder layers [from, to) on the host
// over ids (the branches' concatenation, row t at position pos[t] after
// c's prefix, its branch starting at row branchStart[t]) and returns the
// residual stream after them, in c's workspace (the input of layer from
// when from > 0; nil when from == to == 0).
func (m *Model) branchLayers(be tensor.Backend, ids, pos, branchStart []int, c *Cache, from, to int) []float32 {
	if from == 0 && to == 0 {
		return nil
	}
	cfg := &m.Config
	T, pos0 := len(ids), c.Len
	hd, nH, nKV := cfg.HeadDim, cfg.NumHeads, cfg.NumKVHeads
	kvOut := nKV * hd
	scale := float32(1 / math.Sqrt(float64(hd)))
	cos, sin := m.rope.upTo(slices.Max(pos) + 1)
	return m.decode(be, c, ids, pos0, from, to,
		func(be tensor.Backend, q, k []float32) {
			for t := 0; t < T; t++ { // each row at its own position
				be.RoPE(q[t*nH*hd:(t+1)*nH*hd], 1, nH, hd, pos[t], cos, sin)
				be.RoPE(k[t*kvOut:(t+1)*kvOut], 1, nKV, hd, pos[t], cos, sin)
			}
		},
		func(be tensor.Backend, l int, att, q, k, v []float32) {
			if !c.BF16() {
				branchAttention(att, q, c.K[l], c.V[l], pos0, branchStart, nH, nKV, hd, scale, tensor.AttentionBF16(be))
				return
			}
			// A bf16 cache's rows widened (exactly) for branchAttention's
			// f32 loops: its cost beside the branches' is small.
			c.store(l, pos0, k, v)
			n := (pos0 + T) * kvOut
			s := tensor.GetScratch(2 * n)
			defer tensor.PutScratch(s)
			kf, vf := (*s)[:n], (*s)[n:2*n]
			tensor.WidenBF16(kf, c.K16[l][:n])
			tensor.WidenBF16(vf, c.V16[l][:n])
			branchAttention(att, q, kf, vf, pos0, branchStart, nH, nKV, hd, scale, true)
		})
}

// branchAttention: query t (stored at row pos0+t of k/v) attends to the
// prefix rows [0, pos0) and to rows pos0+branchStart[t] .. pos0+t. With
// bf16 it rounds as the backend's attention does (tensor.CPU's
// BF16Attention): the branches' rows of k and v in place, q and the
// softmax's weights.
func branchAttention(out, q, k, v []float32, pos0 int, branchStart []int, nH, nKV, hd int, scale float32, bf16 bool) {
	group := nH / nKV
	qs, ks := nH*hd, nKV*hd
	if T := len(branchStart); bf16 {
		tensor.RoundBF16(k[pos0*ks : (pos0+T)*ks])
		tensor.RoundBF16(v[pos0*ks : (pos0+T)*ks])
		q = append([]float32(nil), q[:T*qs]...)
		tensor.RoundBF16(q)
	}
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
				if bf16 {
					w = tensor.RoundBF16Value(w)
				}
				vp := v[p*ks+kh*hd : p*ks+(kh+1)*hd]
				for j := range o {
					o[j] += w * vp[j]
				}
			}
		}
	})
}
