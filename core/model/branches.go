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
	if a := m.accelerated(); a != nil {
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
			qs, rows := nH*hd, T*kvOut
			one := func(b0, b1 int) (out, qb []float32) { return att[b0*qs : b1*qs], q[b0*qs : b1*qs] }
			if !c.BF16() { // k and v are the cache's rows already
				if tensor.AttentionBF16(be) { // as the backend rounds rows it is handed: once, before they move
					tensor.RoundBF16(k)
					tensor.RoundBF16(v)
				}
				s := tensor.GetScratch(2 * rows)
				defer tensor.PutScratch(s)
				eachBranch(c.K[l], c.V[l], pos0, kvOut, branchStart, *s, func(b0, b1 int) {
					out, qb := one(b0, b1)
					be.Attention(out, qb, c.K[l], c.V[l], b1-b0, pos0, nH, nKV, hd, scale)
				})
				return
			}
			c.store(l, pos0, k, v)
			s := tensor.GetScratch(rows) // 2·rows bf16
			defer tensor.PutScratch(s)
			eachBranch(c.K16[l], c.V16[l], pos0, kvOut, branchStart, tensor.AsU16(*s), func(b0, b1 int) {
				out, qb := one(b0, b1)
				tensor.AttentionBF16Cache(out, qb, c.K16[l], c.V16[l], b1-b0, pos0, nH, nKV, hd, scale)
			})
		})
}

// eachBranch calls attend(b0, b1) for every branch — rows [b0, b1) of the
// pass, whose keys and values sit at rows pos0+b0 .. pos0+b1 of k and v
// (rows of kvOut values) — with its rows moved to pos0.., right after the
// prefix, so the backend's own attention (its blocked GEMMs for a long
// branch) serves it: query t attends to the prefix and to its branch's
// rows up to itself, never to another branch. The first branch's rows are
// there already; saved (2·T·kvOut values) keeps every branch's rows, put
// back in branch order once all have run.
func eachBranch[E float32 | uint16](k, v []E, pos0, kvOut int, branchStart []int, saved []E, attend func(b0, b1 int)) {
	T := len(branchStart)
	lo, hi := pos0*kvOut, (pos0+T)*kvOut
	ks, vs := saved[:hi-lo], saved[hi-lo:2*(hi-lo)]
	copy(ks, k[lo:hi])
	copy(vs, v[lo:hi])
	for b0 := 0; b0 < T; {
		b1 := b0 + 1
		for b1 < T && branchStart[b1] == b0 {
			b1++
		}
		if b0 > 0 {
			n := (b1 - b0) * kvOut
			copy(k[lo:lo+n], ks[b0*kvOut:b1*kvOut])
			copy(v[lo:lo+n], vs[b0*kvOut:b1*kvOut])
		}
		attend(b0, b1)
		b0 = b1
	}
	copy(k[lo:hi], ks)
	copy(v[lo:hi], vs)
}
