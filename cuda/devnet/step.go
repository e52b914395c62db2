//go:build cuda

package devnet

import (
	"fmt"
	"time"

	"distill/core/train"
	"distill/cuda"
)

// pass is one Step's device work: its buffers (from the device's caching
// pool, so a second Step of the same size allocates nothing) and its first
// error. Calls after an error still run on valid buffers and are discarded;
// the layer loops check err to stop early.
type pass struct {
	nt    *Net
	d     *cuda.Device
	err   error
	bufs  []*cuda.Buffer
	arena *arena // where take carves its buffers; nil: the pool
	taken int    // bytes taken, each rounded up as the arena rounds it

	n, maxPos  int
	drop       train.DropoutMask
	dropKeys   *cuda.Buffer // u64 a dropout site: a recorded pass's keys, read on the device (step_graph.go)
	adapterOff bool         // the base alone (DPO's reference policy)
	recompute  bool         // layerFwd is the backward's recomputation: it stops at what the backward reads
	selective  bool         // each layer's attention side kept, the MLP side one set recomputed (Net.KeepAttention)
	deferGA    bool         // linB leaves the adapter's dA out (loraGradA adds it, once its x is written; or its group's, lora_group.go)
	duAt       int          // the slot of s.du linB's du takes: a group's members side by side
	deferDX    bool         // under LoRA dropout linB leaves the adapter's dx term out (its group's, lora_dropout.go)
	half       *halfDy      // the dy linB's next projection reads in bf16 (gate's, up's: mlp_dy_bf16.go), its f32 one unwritten
	uReady     uint8        // modules whose u their group's batch set (loraU hands it out once)
	compact    bool         // every layer's activations kept, compact (compactReady): see acts
	sharedH1   bool         // compact, or selective under compactReady: h1 one set, written again in the backward
	spans      []span       // decoding: the rows' caches on the device, in row order (decode.go)
	phase      string       // profiling: the phase in progress and its start
	phaseT     time.Time
	dropBuf    *cuda.Buffer // the adapter's dropped input (n, in)
	dropHeld   dropHold     // what dropBuf's first n·in floats hold, for reuse (lora_dropout.go)
	ids, pos   *cuda.Buffer // i32 (n)
	cos, sin   *cuda.Buffer // RoPE tables (maxPos+1, hd/2)
	attn       cuda.AttnShape
	flash      bool // attention by the flash kernels
	// One decoded token by the fused kernels (layerDecode), its hidden
	// state and new key and value rows written straight into stage, the
	// one buffer the host copies down (decode.go's download).
	fused bool
	stage *cuda.Buffer
	// The pass is recorded as a graph for any position (decode_graph.go):
	// attention takes the whole mirror as its key range (each row's own
	// range comes from the device).
	graphed bool
	rows    *rowTables // a batched decode step's per-row caches (decode_rows.go)
	// A decoded token's attention split into chunks (decode_split.go): the
	// chunks' partial results; nil, the flash kernels attend it.
	splitPart *cuda.Buffer
	// Branched decoding (Decoder.ForwardBranches): every row's attention
	// over its cache's prefix, apart from its branch's, into attPre, lsePre.
	prefix         cuda.AttnShape
	attPre, lsePre *cuda.Buffer

	xs           []*cuda.Buffer // layer inputs (the checkpoints) and the last output
	hf, dhf, dx  *cuda.Buffer   // (n, D)
	rstdF        *cuda.Buffer   // (n)
	xb           *cuda.Buffer   // bf16 staging of a GEMM's activation operand
	kx           int            // columns beside xb's rows for the adapter's u (r rounded up to 8, fused; else 0)
	stackQKV     bool           // xb, the tile and du hold q, k and v's backward stacked (linQKVB)
	tile         *cuda.Buffer   // bf16 dequantised NF4 projection
	a            *acts          // the layer in progress's activations: one of layerActs
	layerActs    []acts         // one set, or one a layer: KeepActivations (no recomputation), KeepAttention (their MLP sides one set)
	s            scratch
	hb, dhb      *cuda.Buffer // (HeadRows, D)
	hbb          *cuda.Buffer // bf16 (HeadRows, D)
	logits, lgb  *cuda.Buffer // (HeadRows, V) f32 and bf16
	loss         *cuda.Buffer // (targeted rows)
	idx, targets *cuda.Buffer // i32 (targeted rows)
}

type acts struct {
	h1, h2, rstd1, rstd2     *cuda.Buffer
	u                        [nMod]*cuda.Buffer
	uGroup                   [2]*cuda.Buffer // q's, k's and v's u in one block; gate's and up's (lora_group.go); nil unless every member is targeted
	qPre, kPre, rstdQ, rstdK *cuda.Buffer
	q, k, v, att, lse, xMid  *cuda.Buffer
	g, up, a                 *cuda.Buffer
	// gb, ub: g and up in bf16, kept per layer when every layer's
	// activations are, compact (pass.compact); g, up and a are then one f32
	// set all layers share as scratch, a written again by the SwiGLU
	// backward from gb and ub, and so are h1 and h2, written again in the
	// backward by the norms from the kept layer input, xMid and rstds.
	gb, ub *cuda.Buffer
}

type scratch struct {
	dA, dG, dUp, dH, dAtt, dQ, dK, dV, dQPre, dKPre, du *cuda.Buffer
}

// mark ends the phase in progress and starts next (profiling only: it
// waits for the device so the phase's time is its kernels' time).
func (p *pass) mark(next string) {
	prof := p.nt.Profile
	if prof == nil {
		return
	}
	p.do(p.d.Sync())
	now := time.Now()
	if p.phase != "" {
		prof[p.phase] += now.Sub(p.phaseT)
	}
	p.phase, p.phaseT = next, now
}

func (p *pass) do(err error) {
	if p.err == nil && err != nil {
		p.err = err
	}
}

func (p *pass) take(k cuda.Kind, n int) *cuda.Buffer {
	if p.err != nil {
		return nil
	}
	b, err := p.alloc(k, n)
	if err != nil {
		p.err = fmt.Errorf("devnet: workspace: %w", err)
		return nil
	}
	p.bufs = append(p.bufs, b)
	return b
}

// alloc is a buffer of n elements of kind k from the pass's arena, or from
// the pool.
func (p *pass) alloc(k cuda.Kind, n int) (*cuda.Buffer, error) {
	p.taken += arenaBytes(k, n)
	if p.arena != nil {
		return p.arena.take(k, n)
	}
	return p.d.Alloc(k, n)
}

func (p *pass) up(k cuda.Kind, v []int32) *cuda.Buffer {
	b := p.take(k, len(v))
	if b != nil {
		p.do(cuda.Write(b, 0, v))
	}
	return b
}

func (p *pass) free() {
	for _, b := range p.bufs {
		b.Free()
	}
	p.attn.Scratch.Free()
}

// passKind is what a pass does, and so what it allocates.
type passKind int

const (
	passTrain      passKind = iota // forward, the loss head, backward
	passTrainGraph                 // passTrain kept between steps and recorded (step_graph.go)
	passScore                      // forward and the loss head's losses only
	passHidden                     // forward to the final norm only
	passToken                      // one decoded token by the fused kernels (no GEMM staging, no dequantised tile)
)

func (k passKind) trains() bool { return k == passTrain || k == passTrainGraph }

// newPass validates b and lays out the workspace a pass of kind needs:
// the packed segments attend within themselves.
func (nt *Net) newPass(b *train.Batch, drop train.DropoutMask, kind passKind) (*pass, error) {
	if err := b.Validate(nt.M.Config.VocabSize); err != nil {
		return nil, err
	}
	n := b.Len()
	ids, pos, lo, hi := make([]int32, n), make([]int32, n), make([]int32, n), make([]int32, n)
	for i := range n {
		ids[i], pos[i], lo[i], hi[i] = int32(b.IDs[i]), int32(b.Pos[i]), int32(b.SegStart[i]), int32(i+1)
	}
	return nt.layout(ids, pos, lo, hi, n, b.Targets, drop, kind, nil)
}

// layout lays out a pass over n tokens (ids at positions pos) whose row i
// attends keys [lo[i], hi[i]) of nk: the batch's own (nk = n) or, decoding,
// a device cache's. targets (−1: none) are the loss head's. ar, when not
// nil, holds the buffers (a recorded step's, step_graph.go); else the pool.
func (nt *Net) layout(ids, pos, lo, hi []int32, nk int, targets []int, drop train.DropoutMask, kind passKind, ar *arena) (*pass, error) {
	if nt.rowsHeld {
		return nil, errRowsHeld
	}
	if kind != passTrainGraph {
		nt.dropStepGraph() // its kept workspace goes back to the pool first
	}
	c := &nt.M.Config
	p := &pass{nt: nt, d: nt.D, n: len(ids), drop: drop, arena: ar}
	maxSeg := 0
	for i := range p.n {
		p.maxPos = max(p.maxPos, int(pos[i]))
		maxSeg = max(maxSeg, int(hi[i]-lo[i]))
	}
	if err := nt.M.CheckContext(p.maxPos + 1); err != nil {
		return nil, err
	}
	n, D, F, V := p.n, c.HiddenSize, c.IntermediateSize, c.VocabSize
	H, KV, hd, r := c.NumHeads, c.NumKVHeads, c.HeadDim, 0
	if nt.A != nil {
		r = nt.A.Config.R
	}
	qO, kvO := H*hd, KV*hd
	p.ids, p.pos = p.up(cuda.I32, ids), p.up(cuda.I32, pos)
	var err error
	p.cos, p.sin, err = nt.rope(p.maxPos + 1)
	p.do(err)
	split := kind.trains() && splitKVReady() // the backward's (its scratch is in the plan)
	p.attn = cuda.AttnShape{NQ: n, NK: nk, NH: H, NKV: KV, HD: hd, MaxLen: maxSeg,
		Lo: p.up(cuda.I32, lo), Hi: p.up(cuda.I32, hi), Scale: float32(1 / sqrt(float64(hd))),
		AsyncTiles: kind.trains() && asyncTilesReady(), // a training pass's (its scratch is in the plan)
		HeavyFirst: heavyFirstReady(), PrefetchStats: prefetchReady(), FusedDQ: fusedDQReady(),
		SplitKV: split, SplitDQ: split, DKVOccupancy: dkvOccupancyReady(), Stages3: stages3Ready()}
	p.flash = nt.flashAttention()
	if kind == passTrainGraph && p.flash { // a recording may not allocate: its scratch now
		var err error
		if p.attn.Scratch, err = cuda.NewFlashScratch(p.attn, p.alloc); err != nil {
			p.free()
			return nil, fmt.Errorf("devnet: workspace: %w", err)
		}
	}

	training := kind.trains()
	p.xs = make([]*cuda.Buffer, len(nt.layers)+1)
	for l := range p.xs { // the layers' inputs are kept for backward only
		if training || l == len(nt.layers) {
			p.xs[l] = p.take(cuda.F32, n*D)
		}
	}
	hfRows := n
	if kind == passTrainGraph {
		hfRows++ // a row past the last: the loss head's padding rows read it (zeroed by the recording)
	}
	p.hf, p.rstdF = p.take(cuda.F32, hfRows*D), p.take(cuda.F32, n)
	if training {
		p.dhf, p.dx = p.take(cuda.F32, hfRows*D), p.take(cuda.F32, n*D)
	}
	if kind != passToken { // the fused kernels read f32 and NF4 as they are
		// A projection and its adapter as one GEMM (linFused): r columns
		// beside the operand's rows, the stride rounded up to 8 (16 bytes:
		// the vector dequantisation's and cuBLAS's rows).
		p.kx = nt.fusedKX()
		// A training pass that can run q, k and v's backward as one GEMM
		// (linQKVB) sizes xb and the tile for them stacked: K = qO +
		// 2·kvO + 3r columns (3r fewer under dropout), rows of D
		// (core/train's DevicePlan alike).
		stack := 0
		if p.stackQKV = training && r > 0 && p.kx == r && qkvStackReady() &&
			anyTargeted(nt, mQ) && anyTargeted(nt, mK) && anyTargeted(nt, mV); p.stackQKV {
			stack = qO + 2*kvO + 3*r
		}
		p.xb = p.take(cuda.BF16, n*max(max(D, F, qO)+p.kx, stack))
		p.tile = p.take(cuda.BF16, max(1, nt.tileSize+p.kx*nt.tileDim, stack*D))
	}
	if drop != nil && training { // one module's masked input, or q's, k's and v's side by side (loraGroup)
		p.dropBuf = p.take(cuda.F32, n*max(D, F, qO, 3*D))
	}
	sets := 1
	switch {
	case training && nt.KeepActivations:
		sets, p.compact = len(nt.layers), compactReady()
	case training && nt.KeepAttention && keepAttentionReady():
		sets, p.selective, p.sharedH1 = len(nt.layers), true, compactReady()
	}
	p.sharedH1 = p.sharedH1 || p.compact
	p.layerActs = make([]acts, sets)
	// shared is layer 0's buffer for field f where every layer uses one
	// (the norms' outputs, written again in the backward), else a layer's
	// own.
	shared := func(i int, on bool, f func(*acts) *cuda.Buffer, k cuda.Kind, size int) *cuda.Buffer {
		if on && i > 0 {
			return f(&p.layerActs[0])
		}
		return p.take(k, size)
	}
	for i := range p.layerActs {
		a := &p.layerActs[i]
		a.h1, a.rstd1 = shared(i, p.sharedH1, func(a *acts) *cuda.Buffer { return a.h1 }, cuda.F32, n*D), p.take(cuda.F32, n)
		a.uGroup[0] = p.takeU(a, attnMods[:], qkvGroup, n*r)
		if nt.layers[len(nt.layers)-1].qNorm != nil { // the last: the first may be the host's (Net.from)
			a.qPre, a.kPre, a.rstdQ, a.rstdK = p.take(cuda.F32, n*qO), p.take(cuda.F32, n*kvO), p.take(cuda.F32, n*H), p.take(cuda.F32, n*KV)
		}
		a.q, a.k, a.v = p.take(cuda.F32, n*qO), p.take(cuda.F32, n*kvO), p.take(cuda.F32, n*kvO)
		a.att, a.lse, a.xMid = p.take(cuda.F32, n*qO), p.take(cuda.F32, n*H), p.take(cuda.F32, n*D)
		if p.selective && i > 0 { // the MLP side: one set, recomputed for each layer's backward
			a.h2, a.rstd2, a.g, a.up, a.a = p.layerActs[0].h2, p.layerActs[0].rstd2, p.layerActs[0].g, p.layerActs[0].up, p.layerActs[0].a
			for _, m := range mlpMods {
				a.u[m] = p.layerActs[0].u[m]
			}
			a.uGroup[1] = p.layerActs[0].uGroup[1]
			continue
		}
		a.h2, a.rstd2 = shared(i, p.compact, func(a *acts) *cuda.Buffer { return a.h2 }, cuda.F32, n*D), p.take(cuda.F32, n)
		a.uGroup[1] = p.takeU(a, mlpMods[:], gateUpGroup, n*r)
		if p.compact {
			a.gb, a.ub = p.take(cuda.BF16, n*F), p.take(cuda.BF16, n*F)
			if i > 0 {
				a.g, a.up, a.a = p.layerActs[0].g, p.layerActs[0].up, p.layerActs[0].a
				continue
			}
		}
		a.g, a.up, a.a = p.take(cuda.F32, n*F), p.take(cuda.F32, n*F), p.take(cuda.F32, n*F)
	}
	p.a = &p.layerActs[0]
	if training {
		s := &p.s
		// SwiGLU's backward writes its gradients over g and up (element by
		// element, after reading them), which nothing reads again: the
		// layer's own (layerBwd points them at the layer's set).
		s.dA, s.dG, s.dUp, s.dH = p.take(cuda.F32, n*F), p.a.g, p.a.up, p.take(cuda.F32, n*D)
		s.dAtt, s.dQ, s.dK, s.dV = p.take(cuda.F32, n*qO), p.take(cuda.F32, n*qO), p.take(cuda.F32, n*kvO), p.take(cuda.F32, n*kvO)
		du := n * r // one module's at a time, or q's, k's and v's side by side (linQKVB, a group's dA, dropout's dx terms)
		if p.stackQKV || loraGroupReady() || (drop != nil && dropDXReady()) {
			du *= 3
		}
		s.dQPre, s.dKPre, s.du = p.take(cuda.F32, n*qO), p.take(cuda.F32, n*kvO), p.take(cuda.F32, du)
	}

	var rows, tg []int32
	for i, t := range targets {
		if t >= 0 {
			rows, tg = append(rows, int32(i)), append(tg, int32(t))
		}
	}
	if kind.trains() || kind == passScore {
		k := len(rows)
		if kind == passTrainGraph {
			k = n // any batch's targeted rows
		}
		R := min(max(1, nt.HeadRows), max(1, k))
		p.hb, p.hbb, p.logits = p.take(cuda.F32, R*D), p.take(cuda.BF16, R*D), p.take(cuda.F32, R*V)
		if training {
			p.dhb, p.lgb = p.take(cuda.F32, R*D), p.take(cuda.BF16, R*V)
		}
		switch {
		case kind == passTrainGraph: // the rows written before each replay, padded to whole chunks
			k = (k + R - 1) / R * R
			p.idx, p.targets, p.loss = p.take(cuda.I32, k), p.take(cuda.I32, k), p.take(cuda.F32, k)
		case k > 0:
			p.loss = p.take(cuda.F32, k)
			p.idx, p.targets = p.up(cuda.I32, rows), p.up(cuda.I32, tg)
		default:
			p.loss = p.take(cuda.F32, 1)
		}
	}
	if p.err != nil {
		p.free()
		return nil, p.err
	}
	return p, nil
}

// takeU takes the u buffers (size each) of mods targeted in any layer, a
// group's members — when every one is targeted — as views of one block,
// which it returns (loraUGroup's output; else nil).
func (p *pass) takeU(a *acts, mods, group []int, size int) *cuda.Buffer {
	var block *cuda.Buffer
	whole := true
	for _, m := range group {
		whole = whole && anyTargeted(p.nt, m)
	}
	if whole && size > 0 {
		if block = p.take(cuda.F32, len(group)*size); block != nil {
			for j, m := range group {
				a.u[m] = block.View(j*size, size)
			}
		}
	}
	for _, m := range mods {
		if a.u[m] == nil && anyTargeted(p.nt, m) {
			a.u[m] = p.take(cuda.F32, size)
		}
	}
	return block
}

func anyTargeted(nt *Net, i int) bool {
	for l := range nt.lay.dev {
		if nt.lay.dev[l][i][0] >= 0 {
			return true
		}
	}
	return false
}

// baseOnly makes the pass run the base alone (DPO's reference policy, a
// KD teacher's hidden states): no adapter, so no room beside the operands'
// rows either (the base's GEMMs as an adapter-free model runs them).
func (p *pass) baseOnly() { p.adapterOff, p.kx = true, 0 }

// Step runs forward and backward on b with the SFT objective (masked
// cross-entropy), adds d(loss)/d(params) to Grads, and returns the summed
// token loss, as core/train's Net.Step: gradients are of Σ loss / denom.
// drop keys the LoRA dropout masks (nil: none). Wanting device memory, it
// fails with model.ErrAcceleratorFull (core/train then recomputes the
// activations it kept).
func (nt *Net) Step(b *train.Batch, denom int, drop train.DropoutMask) (loss float64, err error) {
	defer func() { err = full(err) }()
	if loss, done, err := nt.stepGraphed(b, denom, drop, nil); done {
		return loss, err
	}
	start := time.Now()
	p, err := nt.newPass(b, drop, passTrain)
	if err != nil {
		return 0, err
	}
	defer p.free()
	x := p.forward()
	p.mark("head")
	p.head(headMode{grad: true, scale: 1 / float32(denom)})
	p.backward(x)
	return p.lossAfter(start), p.failed()
}

// lossAfter is the summed loss of a step whose work is all launched (the
// backward never touches p.loss): read once the device is done, so no
// synchronisation in the middle of a step leaves the device idle while the
// host launches the backward's first kernels. LastIssue gets the host's
// time from start to here.
func (p *pass) lossAfter(start time.Time) float64 {
	p.nt.LastIssue = time.Since(start)
	return sum(p.losses())
}

// StepRows runs forward and backward on b for an objective of the targeted
// rows' log-probabilities: grad receives log p(target) of each row that
// carries a target (in row order) and returns d loss / d log p for each;
// those gradients flow back to Grads. DPO is one such objective.
func (nt *Net) StepRows(b *train.Batch, drop train.DropoutMask, grad func(logp []float64) ([]float64, error)) (err error) {
	defer func() { err = full(err) }()
	if done, err := nt.rowsGraphed(b, drop, grad); done {
		return err
	}
	p, err := nt.newPass(b, drop, passTrain)
	if err != nil {
		return err
	}
	defer p.free()
	x := p.forward()
	p.mark("head")
	// One pass of the head: the rows' log-probs and their gradients at
	// scale 1 (the gradient at hf is linear in each row's scale), scaled
	// by the host's row gradients after it — not a second pass over the
	// vocabulary once they are known.
	k := 0
	if p.idx != nil {
		k = p.idx.Len
	}
	var rowScale *cuda.Buffer
	if k > 0 {
		ones := make([]float32, k)
		for i := range ones {
			ones[i] = 1
		}
		if rowScale = p.take(cuda.F32, k); rowScale != nil {
			p.do(cuda.Write(rowScale, 0, ones))
		}
	}
	p.head(headMode{grad: true, rowScale: rowScale})
	logp := p.logProbs()
	if p.err != nil {
		return p.failed()
	}
	g, err := grad(logp)
	if err != nil {
		return err
	}
	if len(g) != len(logp) {
		return fmt.Errorf("devnet: %d row gradients for %d rows", len(g), len(logp))
	}
	if k > 0 {
		p.do(cuda.Write(rowScale, 0, negated(g)))
		p.do(p.d.ScaleRows(p.dhf, p.idx, rowScale, k, p.nt.M.Config.HiddenSize))
	}
	p.backward(x)
	return p.failed()
}

// negated is −g in f32: d loss / d logits = g·(onehot − softmax) =
// (−g)·(softmax − onehot), the cross-entropy gradient's row scale.
func negated(g []float64) []float32 {
	s := make([]float32, len(g))
	for i, v := range g {
		s[i] = float32(-v)
	}
	return s
}

// LogProbs is log p(target) of each row of b that carries a target, in row
// order, forward only (no gradient is touched): with the adapter, or
// without it (adapterOff: the base alone, DPO's reference policy).
func (nt *Net) LogProbs(b *train.Batch, adapterOff bool) (logp []float64, err error) {
	defer func() { err = full(err) }()
	if logp, done, err := nt.scoreGraphed(b, adapterOff); done { // on a kept step's pass, if any
		return logp, err
	}
	p, err := nt.newPass(b, nil, passScore)
	if err != nil {
		return nil, err
	}
	defer p.free()
	if adapterOff {
		p.baseOnly()
	}
	p.forward()
	p.head(headMode{})
	return p.logProbs(), p.failed()
}

func (p *pass) failed() error {
	if p.err != nil {
		return fmt.Errorf("%w: %d tokens: %w", errStep, p.n, p.err)
	}
	return nil
}

func sum(v []float64) float64 {
	var t float64
	for _, x := range v {
		t += x
	}
	return t
}

// forward runs the decoder, keeping every layer's input, and the final
// norm into hf; it returns the last layer's output.
func (p *pass) forward() *cuda.Buffer {
	nt := p.nt
	nL := len(nt.layers)
	c := &nt.M.Config
	n, D := p.n, c.HiddenSize
	p.mark("elementwise")
	x := p.xs[nL]
	if nt.from == 0 { // else x holds the host layers' output already
		p.do(p.d.EmbedFwd(x, nt.embed, p.ids, n, D, c.VocabSize))
	}
	for l := nt.from; l < nL && p.err == nil; l++ {
		if p.xs[l] != nil { // kept for backward
			p.do(x.CopyTo(p.xs[l]))
		}
		p.a = p.acts(l)
		p.layerFwd(l, x)
	}
	p.do(p.d.RMSNormFwd(p.hf, p.rstdF, x, nt.norm, n, D, float32(c.RMSNormEps)))
	return x
}

// acts is layer l's activations: its own set when the pass keeps them (all,
// or its attention side with the MLP side's fields shared), else the one
// set every layer shares (backward recomputes them).
func (p *pass) acts(l int) *acts {
	if len(p.layerActs) > 1 {
		return &p.layerActs[l]
	}
	return &p.layerActs[0]
}

// backward carries dhf (the gradient at the final norm's output) back
// through the norm and the layers, recomputing all but the last layer's
// activations (none with KeepActivations), into the adapter's gradients. x
// is the last layer's output.
func (p *pass) backward(x *cuda.Buffer) {
	nt := p.nt
	nL := len(nt.layers)
	c := &nt.M.Config
	n, D := p.n, c.HiddenSize
	p.mark("elementwise")
	p.do(p.dx.Zero())
	p.do(p.d.RMSNormBwd(p.dx, nil, p.dhf, x, nt.norm, p.rstdF, n, D))
	kept := len(p.layerActs) > 1 && !p.selective
	for l := nL - 1; l >= 0 && p.err == nil; l-- {
		p.a = p.acts(l)
		switch {
		case l == nL-1: // the forward left its activations
		case p.selective: // the MLP side from the kept xMid, up to what the backward reads
			p.recompute = true
			p.mlpFwd(l, nil)
			p.recompute = false
		case !kept:
			p.mark("elementwise")
			p.do(p.xs[l].CopyTo(p.hf)) // hf is free now: the recomputation's scratch
			p.recompute = trimReady()
			p.layerFwd(l, p.hf)
			p.recompute = false
		}
		p.s.dG, p.s.dUp = p.a.g, p.a.up // SwiGLU's backward overwrites them
		p.layerBwd(l, p.dx, p.xs[l])
	}
	p.mark("")
}

// headMode is what the loss head does after forming a chunk's logits.
type headMode struct {
	grad     bool         // turn the logits into their gradient and carry it into dhf
	scale    float32      // the gradient's scale (SFT: 1/denom)
	rowScale *cuda.Buffer // or a scale per targeted row (f32)
	kd       *kdHead      // or logit distillation against a teacher
}

// kdHead is a KD step's teacher side: its final hidden states for the batch
// and its LM head, with scratch for one chunk of its logits.
type kdHead struct {
	hidden, head     *cuda.Buffer // (n, Dt) f32; (V, Dt) bf16
	dt               int
	divergence       string
	tau, alpha, beta float32
	th, thb, logits  *cuda.Buffer // (R, Dt) f32 and bf16; (R, V) f32
}

// head forms the logits of the rows that carry a target, HeadRows at a
// time, and their losses into p.loss: −log p(target), or the KD loss. With
// m.grad it turns each row's logits into its gradient — m.scale·(softmax −
// onehot), per row by m.rowScale, or the KD loss's — and carries it back
// through the LM head into dhf.
func (p *pass) head(m headMode) {
	nt, d := p.nt, p.d
	c := &nt.M.Config
	V, D := c.VocabSize, c.HiddenSize
	if m.grad {
		p.do(p.dhf.Zero())
	}
	if p.idx == nil {
		return
	}
	k := p.idx.Len
	R := p.hb.Len / D
	for r0 := 0; r0 < k && p.err == nil; r0 += R {
		kk := min(R, k-r0)
		idx, loss, tg := p.idx.View(r0, kk), p.loss.View(r0, kk), p.targets.View(r0, kk)
		p.do(d.GatherRows(p.hb, p.hf, idx, kk, D))
		p.do(d.ToBF16(p.hbb, p.hb, kk*D))
		p.do(d.GemmBF16(false, true, kk, V, D, 1, p.hbb, D, nt.head, D, 0, p.logits, V))
		switch {
		case !m.grad:
			p.do(d.CrossEntropy(loss, p.logits, tg, kk, V, 0, false))
			continue
		case m.kd != nil:
			t := m.kd
			p.do(d.GatherRows(t.th, t.hidden, idx, kk, t.dt))
			p.do(d.ToBF16(t.thb, t.th, kk*t.dt))
			p.do(d.GemmBF16(false, true, kk, V, t.dt, 1, t.thb, t.dt, t.head, t.dt, 0, t.logits, V))
			if m.rowScale != nil { // a recorded step's (step_graph.go)
				p.do(d.KDRowsScaled(loss, p.logits, t.logits, tg, m.rowScale.View(r0, kk), kk, V, t.divergence, t.tau, t.alpha, t.beta))
			} else {
				p.do(d.KDRows(loss, p.logits, t.logits, tg, kk, V, t.divergence, t.tau, t.alpha, t.beta, m.scale))
			}
		case m.rowScale != nil:
			p.do(d.CrossEntropyRows(loss, p.logits, tg, m.rowScale.View(r0, kk), kk, V))
		default:
			p.do(d.CrossEntropy(loss, p.logits, tg, kk, V, m.scale, true))
		}
		p.do(d.ToBF16(p.lgb, p.logits, kk*V))
		p.do(d.GemmBF16(false, false, kk, D, V, 1, p.lgb, V, nt.head, D, 0, p.dhb, D))
		p.do(d.ScatterRows(p.dhf, p.dhb, idx, kk, D))
	}
}

// losses downloads the targeted rows' losses (the one host
// synchronisation of a Step).
func (p *pass) losses() []float64 {
	if p.idx == nil {
		return nil
	}
	losses := make([]float32, p.idx.Len)
	p.do(cuda.Read(p.loss, 0, losses))
	out := make([]float64, len(losses))
	for i, v := range losses {
		out[i] = float64(v)
	}
	return out
}

// logProbs is log p(target) of the targeted rows: −losses of the
// cross-entropy head.
func (p *pass) logProbs() []float64 {
	out := p.losses()
	for i := range out {
		out[i] = -out[i]
	}
	return out
}
