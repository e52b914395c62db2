package train

import (
	"math"

	"distill/core/lora"
	"distill/core/model"
	"distill/core/tensor"
)

// acts are one layer's saved activations for n tokens.
type acts struct {
	n            int
	h1, h2       []float32    // (n, D) normed inputs of attention and MLP
	rstd1, rstd2 []float32    // (n)
	u            [7][]float32 // (n, r) per module: x·Aᵀ, the adapter's inner activation
	qPre, kPre   []float32    // (n, H·hd), (n, KV·hd) before q/k norm (Qwen3)
	rstdQ, rstdK []float32    // (n·H), (n·KV)
	q, k, v      []float32    // after norm and RoPE
	att          []float32    // (n, H·hd) attention output, o_proj's input
	lse          []float32    // (n, H)
	xMid         []float32    // (n, D) residual after attention
	g, up        []float32    // (n, F) gate and up projections
	a            []float32    // (n, F) silu(g)·up, down_proj's input
}

func newActs(ar *arena, c *model.Config, n, r int, targeted [7]bool, qkNorm bool) *acts {
	D, F := c.HiddenSize, c.IntermediateSize
	qO, kvO := c.NumHeads*c.HeadDim, c.NumKVHeads*c.HeadDim
	a := &acts{n: n,
		h1: ar.take(n * D), h2: ar.take(n * D), rstd1: ar.take(n), rstd2: ar.take(n),
		q: ar.take(n * qO), k: ar.take(n * kvO), v: ar.take(n * kvO),
		att: ar.take(n * qO), lse: ar.take(n * c.NumHeads), xMid: ar.take(n * D),
		g: ar.take(n * F), up: ar.take(n * F), a: ar.take(n * F),
	}
	for i := range a.u {
		if targeted[i] {
			a.u[i] = ar.take(n * r)
		}
	}
	if qkNorm {
		a.qPre, a.kPre = ar.take(n*qO), ar.take(n*kvO)
		a.rstdQ, a.rstdK = ar.take(n*c.NumHeads), ar.take(n*c.NumKVHeads)
	}
	return a
}

// Module indices into acts.u and the adapter's per-layer pairs.
const (
	mQ = iota
	mK
	mV
	mO
	mGate
	mUp
	mDown
)

// linearFwd: y(n, out) = x(n, in)·Wᵀ + bias + s·(x·Aᵀ)·Bᵀ, saving u = x·Aᵀ.
func (nt *Net) linearFwd(y, x []float32, n int, w tensor.Matrix, bias []float32, p *lora.Pair, u []float32, site int) {
	nt.Be.MatMul(y, x, w, n)
	if bias != nil {
		nt.Be.AddBias(y, bias)
	}
	if p != nil {
		nt.adapterIn(u, x, n, p, site)
		tensor.Gemm(false, true, n, p.Out, nt.rank(), nt.Adapter.Config.Scaling(), u, nt.rank(), p.B, nt.rank(), 1, y, p.Out)
	}
}

// adapterIn sets u(n, r) = x·Aᵀ, the adapter's inner activation, on x with
// dropout applied when training with it (PEFT drops the adapter's input only).
func (nt *Net) adapterIn(u, x []float32, n int, p *lora.Pair, site int) {
	if nt.dropping() {
		x = nt.dropout(nt.ws.drop[:n*p.In], x[:n*p.In], site)
	}
	tensor.LoRAIn(u, x, p.A, n, p.In, nt.rank())
}

// linearBwd adds to dx(n, in) the gradient through W and the adapter, and to
// the adapter's gradients gp: du = s·dy·B, dB += s·dyᵀ·u, dA += duᵀ·x,
// dx += dy·W + du·A. In full fine-tuning gw (out, in) += dyᵀ·x and gb += Σ dy.
func (nt *Net) linearBwd(dx, dy, x []float32, n int, w tensor.Matrix, p, gp *lora.Pair, u, du, gw, gb []float32, site int) {
	nt.Be.MatMulTAdd(dx, dy, w, n)
	if gw != nil {
		out, in := w.Rows(), w.Cols()
		tensor.Gemm(true, false, out, in, n, 1, dy, out, x, in, 1, gw, in)
		if gb != nil {
			for t := 0; t < n; t++ {
				for j, v := range dy[t*out : (t+1)*out] {
					gb[j] += v
				}
			}
		}
	}
	if p == nil {
		return
	}
	r := nt.rank()
	tensor.LoRAOutGrad(du, gp.B, dy, p.B, u, nt.Adapter.Config.Scaling(), n, p.Out, r)
	if !nt.dropping() {
		tensor.LoRAInGrad(gp.A, dx, du, x, p.A, n, p.In, r, true)
		return
	}
	buf := nt.ws.drop[:n*p.In]
	xd := nt.dropout(buf, x[:n*p.In], site)                      // the adapter saw x∘mask/(1−p)
	tensor.LoRAInGrad(gp.A, buf, du, xd, p.A, n, p.In, r, false) // buf: xd, then du·A
	nt.dropoutAdd(dx[:n*p.In], buf, site)                        // dx += (du·A)∘mask/(1−p)
}

// layerFwd runs decoder layer l on x(n, D) in place (x becomes the layer's
// output), saving activations into a.
func (nt *Net) layerFwd(l int, x []float32, b *Batch, a *acts) {
	nt.layerActs(l, x, b, a)
	n, D := b.Len(), nt.M.Config.HiddenSize
	P, _ := nt.pairs(l)
	nt.linearFwd(x, a.a, n, nt.M.Layers[l].Down, nil, P[mDown], a.u[mDown], l*7+mDown)
	for i := range x[:n*D] {
		x[i] += a.xMid[i]
	}
}

// layerRecompute is checkpointing's second forward through layer l, from its
// input x (left unchanged). Backward needs the activations, not the layer's
// output, so the down projection's base product and the residual are
// skipped: of the down projection only its adapter's u = a·Aᵀ is formed.
// That is one of the seven base products a layer recomputes, and the
// gradients stay bit-identical.
func (nt *Net) layerRecompute(l int, x []float32, b *Batch, a *acts) {
	nt.layerActs(l, x, b, a)
	P, _ := nt.pairs(l)
	if p := P[mDown]; p != nil {
		nt.adapterIn(a.u[mDown], a.a, b.Len(), p, l*7+mDown)
	}
}

// layerActs runs layer l on its input x up to the down projection's input
// a.a, saving the activations into a; x is only read.
func (nt *Net) layerActs(l int, x []float32, b *Batch, a *acts) {
	c := &nt.M.Config
	L := &nt.M.Layers[l]
	P, _ := nt.pairs(l)
	n, D := b.Len(), c.HiddenSize
	nH, nKV, hd := c.NumHeads, c.NumKVHeads, c.HeadDim
	eps := float32(c.RMSNormEps)
	cos, sin := nt.M.Rope(maxPos(b) + 1)

	rmsNormFwd(a.h1, a.rstd1, x, L.AttnNorm, eps)
	q, k := a.q, a.k
	if L.QNorm != nil {
		q, k = a.qPre, a.kPre
	}
	nt.linearFwd(q, a.h1, n, L.Q, L.QBias, P[mQ], a.u[mQ], l*7+mQ)
	nt.linearFwd(k, a.h1, n, L.K, L.KBias, P[mK], a.u[mK], l*7+mK)
	nt.linearFwd(a.v, a.h1, n, L.V, L.VBias, P[mV], a.u[mV], l*7+mV)
	if L.QNorm != nil {
		rmsNormFwd(a.q, a.rstdQ, a.qPre, L.QNorm, eps)
		rmsNormFwd(a.k, a.rstdK, a.kPre, L.KNorm, eps)
	}
	ropeAt(a.q, n, nH, hd, b.Pos, cos, sin, false)
	ropeAt(a.k, n, nKV, hd, b.Pos, cos, sin, false)
	attnFwd(a.att, a.lse, a.q, a.k, a.v, nt.attnShape(b))

	o := a.xMid // o_proj output, then the residual sum in place
	nt.linearFwd(o, a.att, n, L.O, L.OBias, P[mO], a.u[mO], l*7+mO)
	for i := range o[:n*D] {
		o[i] += x[i]
	}
	rmsNormFwd(a.h2, a.rstd2, a.xMid, L.MLPNorm, eps)
	nt.linearFwd(a.g, a.h2, n, L.Gate, nil, P[mGate], a.u[mGate], l*7+mGate)
	nt.linearFwd(a.up, a.h2, n, L.Up, nil, P[mUp], a.u[mUp], l*7+mUp)
	swigluFwd(a.a, a.g, a.up)
}

// scratch holds backward's temporaries for one layer.
type scratch struct {
	dA, dG, dUp  []float32 // (n, F)
	dH           []float32 // (n, D)
	dAtt, dQ     []float32 // (n, H·hd)
	dK, dV       []float32 // (n, KV·hd)
	dQPre, dKPre []float32
	du           []float32 // (n, r)
}

func newScratch(ar *arena, c *model.Config, n, r int) *scratch {
	D, F := c.HiddenSize, c.IntermediateSize
	qO, kvO := c.NumHeads*c.HeadDim, c.NumKVHeads*c.HeadDim
	return &scratch{
		dA: ar.take(n * F), dG: ar.take(n * F), dUp: ar.take(n * F),
		dH: ar.take(n * D), dAtt: ar.take(n * qO), dQ: ar.take(n * qO),
		dK: ar.take(n * kvO), dV: ar.take(n * kvO),
		dQPre: ar.take(n * qO), dKPre: ar.take(n * kvO),
		du: ar.take(n * r),
	}
}

// layerBwd turns dx (n, D), the gradient at layer l's output, into the
// gradient at its input (in place), accumulating adapter gradients. xIn is
// the layer's input and a its saved activations.
func (nt *Net) layerBwd(l int, dx, xIn []float32, b *Batch, a *acts, s *scratch) {
	c := &nt.M.Config
	L := &nt.M.Layers[l]
	P, G := nt.pairs(l)
	W := nt.layerGrads(l)
	n, D := b.Len(), c.HiddenSize
	nH, nKV, hd := c.NumHeads, c.NumKVHeads, c.HeadDim
	cos, sin := nt.M.Rope(maxPos(b) + 1)

	// MLP: out = xMid + down(silu(g)·up(h2)); dx is d out.
	clear(s.dA)
	nt.linearBwd(s.dA, dx, a.a, n, L.Down, P[mDown], G[mDown], a.u[mDown], s.du, W.Down, nil, l*7+mDown)
	swigluBwd(s.dG, s.dUp, s.dA, a.g, a.up)
	clear(s.dH[:n*D])
	nt.linearBwd(s.dH, s.dG, a.h2, n, L.Gate, P[mGate], G[mGate], a.u[mGate], s.du, W.Gate, nil, l*7+mGate)
	nt.linearBwd(s.dH, s.dUp, a.h2, n, L.Up, P[mUp], G[mUp], a.u[mUp], s.du, W.Up, nil, l*7+mUp)
	rmsNormBwd(dx, W.MLPNorm, s.dH, a.xMid, L.MLPNorm, a.rstd2) // dx is now d xMid

	// Attention: xMid = xIn + o(attn(q, k, v)).
	clear(s.dAtt)
	nt.linearBwd(s.dAtt, dx, a.att, n, L.O, P[mO], G[mO], a.u[mO], s.du, W.O, W.OBias, l*7+mO)
	attnBwd(s.dQ, s.dK, s.dV, s.dAtt, a.q, a.k, a.v, a.att, a.lse, nt.attnShape(b))
	ropeAt(s.dQ, n, nH, hd, b.Pos, cos, sin, true)
	ropeAt(s.dK, n, nKV, hd, b.Pos, cos, sin, true)
	dq, dk := s.dQ, s.dK
	if L.QNorm != nil {
		clear(s.dQPre)
		clear(s.dKPre)
		rmsNormBwd(s.dQPre, W.QNorm, s.dQ, a.qPre, L.QNorm, a.rstdQ)
		rmsNormBwd(s.dKPre, W.KNorm, s.dK, a.kPre, L.KNorm, a.rstdK)
		dq, dk = s.dQPre, s.dKPre
	}
	clear(s.dH[:n*D])
	nt.linearBwd(s.dH, dq, a.h1, n, L.Q, P[mQ], G[mQ], a.u[mQ], s.du, W.Q, W.QBias, l*7+mQ)
	nt.linearBwd(s.dH, dk, a.h1, n, L.K, P[mK], G[mK], a.u[mK], s.du, W.K, W.KBias, l*7+mK)
	nt.linearBwd(s.dH, s.dV, a.h1, n, L.V, P[mV], G[mV], a.u[mV], s.du, W.V, W.VBias, l*7+mV)
	rmsNormBwd(dx, W.AttnNorm, s.dH, xIn, L.AttnNorm, a.rstd1) // dx is now d xIn
}

func (nt *Net) attnShape(b *Batch) attnShape {
	c := &nt.M.Config
	return attnShape{n: b.Len(), nH: c.NumHeads, nKV: c.NumKVHeads, hd: c.HeadDim, segStart: b.SegStart,
		scale: float32(1 / math.Sqrt(float64(c.HeadDim))), scratch: nt.ws.attn, acc: nt.ws.attnAcc, mode: nt.attnMode(),
		rounded: nt.ws.attnRounded, roundedB: nt.ws.attnRoundedB, work: nt.ws.attnWork}
}

// attnMode is attention's arithmetic: bf16 where the backend's attention is
// (--cpu-bf16), on the bf16 GEMM where the CPU has it.
func (nt *Net) attnMode() attnMode {
	switch cpu, ok := nt.Be.(tensor.CPU); {
	case !ok || !cpu.BF16Attention:
		return attnF32
	case tensor.BF16ProductsFast():
		return attnBF16Fast
	}
	return attnBF16
}

func maxPos(b *Batch) int {
	m := 0
	for _, p := range b.Pos {
		m = max(m, p)
	}
	return m
}
