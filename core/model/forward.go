package model

import (
	"errors"
	"fmt"
	"math"

	"distill/core/tensor"
)

// Forward feeds ids at positions c.Len.. through the decoder, appends their
// keys and values to the cache, and writes the final-normed hidden states
// (T, hidden) into out (allocated when nil). With an accelerator attached
// (Accelerate) the pass runs on its device whenever it can, whatever be is. Logits are a separate step so
// callers choose which rows to project (decode: last; scoring: all, chunked).
func (m *Model) Forward(be tensor.Backend, ids []int, c *Cache, out []float32) ([]float32, error) {
	cfg := &m.Config
	T, pos0 := len(ids), c.Len
	if T == 0 {
		return out[:0], nil
	}
	if err := m.CheckContext(pos0 + T); err != nil {
		return nil, err
	}
	if pos0+T > c.Cap {
		return nil, fmt.Errorf("context of %d tokens exceeds the KV cache's %d", pos0+T, c.Cap)
	}
	for i, id := range ids {
		if id < 0 || id >= cfg.VocabSize {
			return nil, fmt.Errorf("token id %d at position %d is outside the vocabulary [0, %d)", id, pos0+i, cfg.VocabSize)
		}
	}
	from := 0 // the first layer the host pass runs
	if a := m.accelerated(); a != nil {
		x := m.forwardLayers(be, ids, c, 0, m.CPULayers) // --cpu-offload's layers on the host first
		h, err := a.Forward(ids, x, c, out)
		if err == nil {
			c.Len = pos0 + T
			return h, nil
		}
		if !errors.Is(err, ErrAcceleratorFull) {
			return nil, err
		}
		from, be = m.CPULayers, tensor.CPU{} // the host goes on from their output (be may be the full device's)
	}
	x := m.forwardLayers(be, ids, c, from, len(m.Layers))
	c.Len = pos0 + T
	if out == nil {
		out = make([]float32, T*cfg.HiddenSize)
	}
	be.RMSNorm(out[:T*cfg.HiddenSize], x, m.Norm, float32(cfg.RMSNormEps))
	return out[:T*cfg.HiddenSize], nil
}

// forwardLayers runs Forward's decoder layers [from, to) on the host over
// ids at positions c.Len.. and returns the residual stream after them, in
// c's workspace (the input of layer from when from > 0; nil when from ==
// to == 0). It leaves c.Len as it is.
func (m *Model) forwardLayers(be tensor.Backend, ids []int, c *Cache, from, to int) []float32 {
	if from == 0 && to == 0 {
		return nil
	}
	cfg := &m.Config
	T, pos0 := len(ids), c.Len
	hd, nH, nKV := cfg.HeadDim, cfg.NumHeads, cfg.NumKVHeads
	scale := float32(1 / math.Sqrt(float64(hd)))
	cos, sin := m.rope.upTo(pos0 + T)
	return m.decode(be, c, ids, pos0, from, to,
		func(be tensor.Backend, q, k []float32) {
			be.RoPE(q, T, nH, hd, pos0, cos, sin)
			be.RoPE(k, T, nKV, hd, pos0, cos, sin)
		},
		func(be tensor.Backend, l int, att, q, k, v []float32) {
			if c.BF16() {
				c.store(l, pos0, k, v)
				tensor.AttentionBF16Cache(att, q, c.K16[l], c.V16[l], T, pos0, nH, nKV, hd, scale)
				return
			}
			be.Attention(att, q, c.K[l], c.V[l], T, pos0, nH, nKV, hd, scale)
		})
}

// decode runs decoder layers [from, to) over the T = len(ids) new tokens,
// whose keys and values go to cache rows pos0.. (an f32 cache's computed
// there; a bf16 cache's in the workspace, which attend stores), and
// returns the residual
// stream (T, hidden) after them — before the final norm when to is the
// last — in c's workspace, which holds layer from's input when from > 0
// (an earlier call's output: the ids are embedded at from == 0 only).
// rope rotates a layer's q (T, heads·hd)
// and k (T, kv·hd); attend fills att from q and the layer's cache, given
// the new rows' k and v — the two places where a plain continuation and
// branched ones differ. A bf16 cache attends with bf16 attention (the
// values it holds) whatever the backend. Each layer
// runs on m.layerBackend(be, l), which rope and attend are given too.
func (m *Model) decode(be0 tensor.Backend, c *Cache, ids []int, pos0, from, to int, rope func(be tensor.Backend, q, k []float32), attend func(be tensor.Backend, l int, att, q, k, v []float32)) []float32 {
	cfg := &m.Config
	T := len(ids)
	D, hd, nH, nKV := cfg.HiddenSize, cfg.HeadDim, cfg.NumHeads, cfg.NumKVHeads
	kvOut := nKV * hd
	eps := float32(cfg.RMSNormEps)
	w := &c.ws
	w.ensure(T, cfg, c.BF16())
	x, xn, q, att, o := w.x[:T*D], w.xn[:T*D], w.q[:T*nH*hd], w.att[:T*nH*hd], w.o[:T*D]
	gate, up := w.gate[:T*cfg.IntermediateSize], w.up[:T*cfg.IntermediateSize]

	if from == 0 {
		m.layerBackend(be0, 0).Embed(x, m.Embed, ids)
	}
	for l := from; l < to; l++ {
		L, be := &m.Layers[l], m.layerBackend(be0, l)
		var k, v []float32 // (T, kv*hd)
		if c.BF16() {
			k, v = w.k[:T*kvOut], w.v[:T*kvOut]
		} else { // written in place
			k, v = c.K[l][pos0*kvOut:(pos0+T)*kvOut], c.V[l][pos0*kvOut:(pos0+T)*kvOut]
		}

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
		if L.QNorm != nil { // Qwen3: per-head norm before RoPE
			be.RMSNorm(q, q, L.QNorm, eps)
			be.RMSNorm(k, k, L.KNorm, eps)
		}
		rope(be, q, k)
		attend(be, l, att, q, k, v)
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
	return x
}

// layerBackend is the backend decoder layer l runs on: the CPU for the
// first CPULayers (--cpu-offload), be for the rest.
func (m *Model) layerBackend(be tensor.Backend, l int) tensor.Backend {
	if l < m.CPULayers {
		return tensor.CPU{}
	}
	return be
}

// Logits projects T hidden rows (T, hidden) to (T, vocab) into out: on the
// attached accelerator's device when there is one, else with be — on the
// CPU when that device is full (be may be an op-by-op backend on it).
func (m *Model) Logits(be tensor.Backend, out, hidden []float32, T int) {
	if m.accel != nil {
		err := m.accel.Logits(out, hidden, T)
		if err == nil {
			return
		}
		if errors.Is(err, ErrAcceleratorFull) {
			be = tensor.CPU{}
		}
	}
	be.MatMul(out[:T*m.Config.VocabSize], hidden[:T*m.Config.HiddenSize], m.LMHead, T)
}

// CheckContext refuses contexts the model cannot attend over exactly:
// Mistral's sliding window is not implemented, so longer sequences are an
// error rather than silently wrong.
func (m *Model) CheckContext(n int) error {
	if w := m.slidingWindow(); w > 0 && n > w {
		return fmt.Errorf("context of %d tokens exceeds the model's sliding_window %d, which this engine does not implement", n, w)
	}
	return nil
}

// slidingWindow is the window the model's config turns on, or 0.
func (m *Model) slidingWindow() int { return m.Config.Window }

// ContextLimit is the most positions a sequence may take: the config's
// max_position_embeddings, or its sliding window where that is shorter
// (CheckContext refuses past it); 0 when the config gives neither.
func (m *Model) ContextLimit() int {
	n := m.Config.MaxPositionEmbeddings
	if w := m.slidingWindow(); w > 0 && (n <= 0 || w < n) {
		n = w
	}
	return max(n, 0)
}
