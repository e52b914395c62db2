//go:build cuda

package devnet

import (
	"errors"
	"fmt"
	"sync/atomic"

	"distill/core/model"
	"distill/cuda"
)

// A decoded token by the fused kernels is still ~6 launches a layer, each a
// few microseconds of the host's time (cgo, the driver) against about a
// microsecond of the device's at a small model's widths. So the pass is
// recorded once per net and cache mirror as a CUDA graph and replayed: a
// token is then one upload (its id, position and attention range, which
// the kernels read from the device), one launch and the copy down of its
// results. Everything a recording refers to stays put between tokens: the
// net's token workspace (tokenPass), the mirror's layer buffers, the RoPE
// tables (a grown table is a new buffer: that net and mirror record again).
// The attention takes the mirror's whole capacity as its key range; each
// row reads only its own range. Gated with the fused kernels (fusedReady;
// DISTILL_CUDA_GRAPHS=0 turns the graphs off alone); a recording that fails
// leaves that net and mirror decoding eagerly.

// tokenPass is one net's workspace for a decoded token, kept between tokens.
type tokenPass struct {
	p      *pass
	args   *cuda.Buffer // i32 [id, position, lo, hi]: the pass's ids, pos and attention range are views of it
	graphs map[*kvMirror]*tokenGraph
}

type tokenGraph struct {
	g   *cuda.Graph  // nil: the recording failed; this pair decodes eagerly
	cos *cuda.Buffer // the RoPE table recorded
}

func (tp *tokenPass) free() {
	for _, tg := range tp.graphs {
		tg.g.Free()
	}
	tp.graphs = nil
	tp.p.free()
}

// Replays and failed recordings so far, and the last failure's error (the
// tests check a fused run replayed, and say why a recording failed).
var (
	graphReplays, graphFailures atomic.Int64
	lastGraphErr                atomic.Pointer[error]
)

// tokenLayout lays out a pass for one token by the fused kernels: no GEMM
// staging, and the stage the host copies down — the final norm's output,
// then each layer's new key and value row (download's layout) — written by
// the kernels themselves.
func (nt *Net) tokenLayout(ids, pos, lo, hi []int32, nk int) (*pass, error) {
	p, err := nt.layout(ids, pos, lo, hi, nk, nil, nil, passToken, nil)
	if err != nil {
		return nil, err
	}
	c := &nt.M.Config
	D, kvO := c.HiddenSize, c.NumKVHeads*c.HeadDim
	p.fused = true
	if p.stage = p.take(cuda.F32, D+2*(len(nt.layers)-nt.from)*kvO); p.stage != nil {
		p.hf = p.stage.View(0, D)
	}
	p.splitPart = p.takeSplit(1) // its attention split, when the gate is open (decode_split.go)
	if err := p.failed(); err != nil {
		p.free()
		return nil, err
	}
	return p, nil
}

// runGraph decodes one token through its net and mirror's graph (recording
// it first when there is none) when the pass is one: one token, fused,
// flash attention. x, when the host runs the first layers, is their output,
// written into the pass's residual stream before each replay. done is false when the token is for the eager pass (not
// such a pass, the recording failed, or the workspace did not fit: the
// eager pass makes room first).
func (dc *Decoder) runGraph(nt *Net, ids []int, x []float32, sp []span, out []float32, branches [][]int) (h []float32, done bool, err error) {
	if !dc.graphs || len(ids) != 1 || branches != nil || !nt.flashAttention() { // the others size buffers by the key range
		return nil, false, nil
	}
	s := sp[0]
	tp, err := dc.tokenPass(nt)
	if err != nil {
		return nil, false, nil // the eager pass retries after dropping other mirrors and idle adapters
	}
	kvO := dc.M.Config.NumKVHeads * dc.M.Config.HeadDim
	capRows := s.mir.rows(kvO)
	cos, sin, err := nt.rope(capRows)
	if err != nil {
		return nil, false, nil // the eager pass needs tables to its position only
	}
	tg := tp.graphs[s.mir]
	if tg != nil && tg.cos != cos {
		tg.g.Free()
		tg = nil
	}
	if tg == nil {
		p := tp.p
		p.err, p.cos, p.sin, p.maxPos = nil, cos, sin, capRows-1
		p.spans = []span{{mir: s.mir, n: 1}} // no host cache: the workspace must not keep one alive
		tg = &tokenGraph{cos: cos}
		tg.g, err = p.d.Capture(func() error { p.forward(); return p.err })
		p.spans = nil
		if err != nil {
			tg.g = nil
			graphFailures.Add(1)
			lastGraphErr.Store(&err)
		}
		tp.graphs[s.mir] = tg
	}
	if tg.g == nil {
		return nil, false, nil
	}
	if s.pos >= capRows { // the kernels would write nothing: fail as the eager pass does
		return nil, true, fmt.Errorf("devnet: decoding position %d past the device cache (%d rows)", s.pos, capRows)
	}
	if err := cuda.Write(tp.args, 0, []int32{int32(ids[0]), int32(s.pos), 0, int32(s.pos + 1)}); err != nil {
		return nil, true, err
	}
	if x != nil {
		if err := cuda.Write(tp.p.xs[len(tp.p.xs)-1], 0, x); err != nil {
			return nil, true, err
		}
	}
	if err := tg.g.Launch(); err != nil {
		return nil, true, err
	}
	graphReplays.Add(1)
	if out == nil {
		out = make([]float32, dc.M.Config.HiddenSize)
	}
	out = out[:dc.M.Config.HiddenSize]
	if err := dc.readStage(tp.p.stage, sp, out); err != nil {
		return nil, true, err
	}
	s.c.DevLen = s.pos + 1
	return out, true, nil
}

// flashAttention says nt's passes attend with the flash kernels: its head
// size takes them, and no other attention was asked for (comparisons).
func (nt *Net) flashAttention() bool {
	return !nt.SimpleAttention && !nt.GemmAttention && model.FlashAttention(nt.M.Config.HeadDim)
}

// tokenPass is nt's token workspace, laid out on first use.
func (dc *Decoder) tokenPass(nt *Net) (*tokenPass, error) {
	if tp, ok := dc.tok[nt]; ok {
		return tp, nil
	}
	one := []int32{0}
	p, err := nt.tokenLayout(one, one, one, []int32{1}, 1)
	if err != nil {
		return nil, err
	}
	tp := &tokenPass{p: p, graphs: map[*kvMirror]*tokenGraph{}}
	if tp.args = p.take(cuda.I32, 4); tp.args == nil {
		p.free()
		return nil, errors.Join(errors.New("devnet: token workspace"), p.err)
	}
	p.ids, p.pos, p.attn.Lo, p.attn.Hi = tp.args.View(0, 1), tp.args.View(1, 1), tp.args.View(2, 1), tp.args.View(3, 1)
	p.graphed = true
	if dc.tok == nil {
		dc.tok = map[*Net]*tokenPass{}
	}
	dc.tok[nt] = tp
	return tp, nil
}

// forgetNet frees nt's token workspace and graphs (nt is going).
func (dc *Decoder) forgetNet(nt *Net) {
	if tp, ok := dc.tok[nt]; ok {
		tp.free()
		delete(dc.tok, nt)
	}
}

// forgetMirror frees the graphs recorded over m (it is going).
func (dc *Decoder) forgetMirror(m *kvMirror) {
	for _, tp := range dc.tok {
		if tg, ok := tp.graphs[m]; ok {
			tg.g.Free()
			delete(tp.graphs, m)
		}
	}
}
