package train

import (
	"fmt"

	"distill/core/model"
	"distill/core/tensor"
)

// layerGrads are one layer's weight gradients in full fine-tuning (nil when
// the layer has no such weight).
type layerGrads struct {
	AttnNorm, MLPNorm, QNorm, KNorm []float32
	Q, K, V, O, Gate, Up, Down      []float32
	QBias, KBias, VBias, OBias      []float32
}

// fullGrads mirror every base weight for full fine-tuning.
type fullGrads struct {
	Embed, Norm, LMHead []float32 // LMHead aliases Embed when tied
	Layers              []layerGrads
}

// NewFullNet makes every weight of m trainable in f32: the weights are
// copied into one parameter buffer (m's tensors are rebound to views of it,
// so m itself is what trains), and gradients mirror it. Meant for small
// models — it costs 16 bytes per parameter with AdamW.
func NewFullNet(be tensor.Backend, m *model.Model) (*Net, error) {
	type slot struct {
		name  string
		n     int
		shape []int
		bind  func(buf, grad []float32)
	}
	fg := &fullGrads{Layers: make([]layerGrads, len(m.Layers))}
	var slots []slot
	matrix := func(name string, t **tensor.Tensor, g *[]float32) {
		w := *t
		slots = append(slots, slot{name, w.Elems(), w.Shape, func(buf, grad []float32) {
			tensor.ToF32(buf, w.DType, w.Data)
			*t = tensor.FromF32(w.Name, buf, w.Shape...)
			*g = grad
		}})
	}
	var notDense error
	projection := func(name string, w *tensor.Matrix, g *[]float32) {
		t, ok := (*w).(*tensor.Tensor)
		if !ok {
			notDense = fmt.Errorf("full fine-tuning needs an unquantized base, but %s is %T (load the model with --quant none)", name, *w)
			return
		}
		matrix(name, &t, g)
		slots[len(slots)-1].bind = func(bind func(buf, grad []float32)) func(buf, grad []float32) {
			return func(buf, grad []float32) { bind(buf, grad); *w = t }
		}(slots[len(slots)-1].bind)
	}
	vector := func(name string, v *[]float32, g *[]float32) {
		if *v == nil {
			return
		}
		old := *v
		slots = append(slots, slot{name, len(old), []int{len(old)}, func(buf, grad []float32) {
			copy(buf, old)
			*v, *g = buf, grad
		}})
	}
	tied := m.LMHead == m.Embed
	matrix("model.embed_tokens.weight", &m.Embed, &fg.Embed)
	vector("model.norm.weight", &m.Norm, &fg.Norm)
	if !tied {
		matrix("lm_head.weight", &m.LMHead, &fg.LMHead)
	}
	for l := range m.Layers {
		L, G := &m.Layers[l], &fg.Layers[l]
		p := fmt.Sprintf("model.layers.%d.", l)
		vector(p+"input_layernorm.weight", &L.AttnNorm, &G.AttnNorm)
		vector(p+"post_attention_layernorm.weight", &L.MLPNorm, &G.MLPNorm)
		projection(p+"self_attn.q_proj.weight", &L.Q, &G.Q)
		projection(p+"self_attn.k_proj.weight", &L.K, &G.K)
		projection(p+"self_attn.v_proj.weight", &L.V, &G.V)
		projection(p+"self_attn.o_proj.weight", &L.O, &G.O)
		vector(p+"self_attn.q_proj.bias", &L.QBias, &G.QBias)
		vector(p+"self_attn.k_proj.bias", &L.KBias, &G.KBias)
		vector(p+"self_attn.v_proj.bias", &L.VBias, &G.VBias)
		vector(p+"self_attn.o_proj.bias", &L.OBias, &G.OBias)
		vector(p+"self_attn.q_norm.weight", &L.QNorm, &G.QNorm)
		vector(p+"self_attn.k_norm.weight", &L.KNorm, &G.KNorm)
		projection(p+"mlp.gate_proj.weight", &L.Gate, &G.Gate)
		projection(p+"mlp.up_proj.weight", &L.Up, &G.Up)
		projection(p+"mlp.down_proj.weight", &L.Down, &G.Down)
	}
	if notDense != nil {
		return nil, notDense
	}
	total := 0
	for _, s := range slots {
		total += s.n
	}
	nt := &Net{M: m, Be: be, Params: make([]float32, total), Grads: make([]float32, total), full: fg}
	off := 0
	for _, s := range slots {
		s.bind(nt.Params[off:off+s.n:off+s.n], nt.Grads[off:off+s.n:off+s.n])
		nt.fullNames = append(nt.fullNames, paramSpan{s.name, off, s.n, s.shape})
		off += s.n
	}
	if tied {
		m.LMHead = m.Embed
		fg.LMHead = fg.Embed
	}
	return nt, nil
}

// paramSpan names a range of Params (full fine-tuning), for saving and tests.
type paramSpan struct {
	Name     string
	Off, Len int
	Shape    []int
}

// Weights returns the trained weights of a full fine-tuning net as HF-named
// tensors viewing Params (f32), ready for model.WriteSafetensors.
func (nt *Net) Weights() []*tensor.Tensor {
	var out []*tensor.Tensor
	for _, sp := range nt.fullNames {
		out = append(out, tensor.FromF32(sp.Name, nt.Params[sp.Off:sp.Off+sp.Len], sp.Shape...))
	}
	return out
}
