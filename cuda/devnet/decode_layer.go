//go:build cuda

package devnet

import (
	"fmt"
	"sync/atomic"

	"distill/cuda"
)

// fusedVerified: the fused decoding of one token (layerDecode) and its
// CUDA graphs passed TestMatVecFusedParity, TestDecodeQKVParity,
// TestGraphReplay, TestAttnRowsParity, TestDecoderParity and
// TestDecoderGraphsSurviveDrops on an H200 (2026-11-26; written blind in
// session 7). DISTILL_CUDA_FUSED=0 turns it off (comparisons): a token then
// takes the general pass, a prompt's GEMMs.
const fusedVerified = true

// DISTILL_CUDA_FUSED=0 or 1 overrides the gate either way.
func fusedReady() bool { return gateOpen("DISTILL_CUDA_FUSED", fusedVerified) }

// fusedPasses counts the passes layerDecode ran (for the tests: a fused run
// that silently fell back would compare the general pass with itself).
var fusedPasses atomic.Int64

// layerDecode is layerFwd for one decoded token with the fused kernels:
// five launches and the attention's a layer where the general pass takes
// twenty or more (a small model's decoded token is bound by the host's
// launch rate, not the weights' bytes) — the attention norm inside q/k/v's
// products, Qwen3's head norms, RoPE and the new key and value row (into
// the cache and the host's staging) in one kernel, the residual adds inside
// the o and down products, the MLP norm inside gate/up's, SwiGLU inside
// down's. The adapter's products (two small GEMMs a module) follow each
// product as in lin, on the normalised input the fused product writes out.
func (p *pass) layerDecode(l int, x *cuda.Buffer) {
	d, c, L, a := p.d, &p.nt.M.Config, &p.nt.layers[l], p.a
	D, F := c.HiddenSize, c.IntermediateSize
	H, KV, hd := c.NumHeads, c.NumKVHeads, c.HeadDim
	eps := float32(c.RMSNormEps)
	s := p.spans[0]
	capRows := s.mir.k[l].Len / (KV * hd)
	if !p.graphed && (s.pos >= capRows || s.pos > p.maxPos) { // a graph's position is checked before each replay
		p.do(fmt.Errorf("devnet: decoding position %d past the device cache (%d rows) or the RoPE tables (%d)", s.pos, capRows, p.maxPos+1))
		return
	}
	if l == p.nt.from {
		fusedPasses.Add(1)
	}

	p.mark("gemm")
	p.do(d.MatVecFused(x, D, cuda.Prologue{Kind: cuda.RMSNormPrologue, W: L.attnNorm, Out: a.h1, Eps: eps},
		p.mvOut(l, mQ, a.q, nil), p.mvOut(l, mK, a.k, nil), p.mvOut(l, mV, a.v, nil)))
	p.loraFwd(a.q, a.h1, l, mQ)
	p.loraFwd(a.k, a.h1, l, mK)
	p.loraFwd(a.v, a.h1, l, mV)
	p.mark("elementwise")
	kStage, vStage := p.stageKV(l)
	p.do(d.DecodeQKV(cuda.DecodeQKVArgs{Q: a.q, K: a.k, V: a.v, QNorm: L.qNorm, KNorm: L.kNorm, Eps: eps,
		Pos: p.pos, Cos: p.cos, Sin: p.sin, Tables: p.maxPos + 1, KCache: s.mir.k[l], VCache: s.mir.v[l],
		KStage: kStage, VStage: vStage, Cap: capRows, NH: H, NKV: KV, HD: hd}))
	p.mark("attention")
	p.attendSpans(l)
	p.mark("gemm")
	p.do(d.MatVecFused(a.att, H*hd, cuda.Prologue{}, p.mvOut(l, mO, a.xMid, x))) // xMid = x + o(att)
	p.loraFwd(a.xMid, a.att, l, mO)
	p.do(d.MatVecFused(a.xMid, D, cuda.Prologue{Kind: cuda.RMSNormPrologue, W: L.mlpNorm, Out: a.h2, Eps: eps},
		p.mvOut(l, mGate, a.g, nil), p.mvOut(l, mUp, a.up, nil)))
	p.loraFwd(a.g, a.h2, l, mGate)
	p.loraFwd(a.up, a.h2, l, mUp)
	// x = xMid + down(silu(g)·up); silu(g)·up written out for the adapter.
	p.do(d.MatVecFused(a.up, F, cuda.Prologue{Kind: cuda.SwiGLUPrologue, W: a.g, Out: a.a}, p.mvOut(l, mDown, x, a.xMid)))
	p.loraFwd(x, a.a, l, mDown)
	p.mark("elementwise")
}

// mvOut is module i of layer l as a fused product's output y, with its
// bias and the residual res added.
func (p *pass) mvOut(l, i int, y, res *cuda.Buffer) cuda.MatVecOut {
	w := p.nt.layers[l].w[i]
	return cuda.MatVecOut{NF4: w.nf4, Dense: w.dense, Rows: w.rows, Y: y, Bias: p.nt.layers[l].bias[i], Res: res}
}

// stageKV is where layer l's new key and value row go for the host: the
// staging buffer's rows after the hidden state (download's layout), or
// nils when the pass has none.
func (p *pass) stageKV(l int) (k, v *cuda.Buffer) {
	if p.stage == nil {
		return nil, nil
	}
	c := &p.nt.M.Config
	D, kvO := c.HiddenSize, c.NumKVHeads*c.HeadDim
	off := D + 2*(l-p.nt.from)*kvO
	return p.stage.View(off, kvO), p.stage.View(off+kvO, kvO)
}
