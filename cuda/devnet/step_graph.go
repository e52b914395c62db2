//go:build cuda

package devnet

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"distill/core/train"
	"distill/cuda"
)

// An SFT step is a few thousand launches (≈ 3,300 at Qwen2.5-1.5B), each
// some microseconds of the host's time (cgo, the driver, cuBLAS's own
// bookkeeping), and at a small model's widths the device's kernels are
// shorter than that: session 5 found the 0.5B step bound by the host's
// launches. So steps are recorded as CUDA graphs and replayed: the host
// then uploads the batch and launches once.
//
// A recording replays the same launches with the same arguments, so what
// changes between steps lives in device memory the kernels read: token ids,
// positions and attention ranges (the pass's buffers), the targeted rows and
// their targets, each targeted row's gradient scale (1/denom: the loss head
// runs CrossEntropyRows, the same kernel as CrossEntropy's scale), and LoRA
// dropout's keys (DropoutKeyed). The shapes are fixed by padding:
//   - packed batches vary in length (no padding tokens are spent eagerly),
//     so a batch of n tokens runs as a bucket of n rounded up to 64: the
//     padding rows are token 0 at position 0, each attending only itself,
//     never targeted, so they reach no real row and their gradients are
//     exact zeros (at most 63 tokens' work wasted a step);
//   - the pass is laid out for any positions below the bucket and segments
//     up to it (the attention reads each row's own range);
//   - the loss head takes any number of targeted rows padded to whole
//     chunks of HeadRows — one recording per count of chunks — whose
//     padding rows read a zeroed row past hf's last at gradient scale 0.
//
// Every bucket's pass is carved from one arena laid out for the largest
// bucket seen (the eager pass's memory at that length: the plan's); their
// buffers overlap, which is safe since the steps run one after another and
// nothing a recording reads survives between steps (all of it is uploaded,
// or written before it is read, the spare row included). The arena is kept
// between steps; scoring passes (validation, DPO's references) run on its
// passes (step_graph_score.go), and any other pass of this net (decoding,
// a scoring pass longer than the arena) frees it first (layout), so two of
// its workspaces are never
// held — but a KD step runs its teacher's pass (the teacher's own net)
// beside it. The first step of a configuration runs eagerly, so a one-off
// step never lays out an arena; a recording that fails leaves the net
// stepping eagerly.
//
// SFT's steps (Step), logit distillation's (StepKD) and DPO's (StepRows,
// step_graph_rows.go) are recorded.
//
// Gated (stepGraphsReady) until a GPU has run it.

// stepBucket is the granularity of the recorded lengths.
const stepBucket = train.StepGraphBucket

// maxStepGraphs bounds the recordings held (each bucket's forward and
// backward, each bucket and chunk count's head and DPO's row scaling):
// past it they are all dropped and recorded again as needed.
const maxStepGraphs = 48

// stepGraphsVerified: SFT steps replayed as CUDA graphs. Written without a
// GPU (session 13, 2026-11-27): on the emulated device the replayed steps
// give the eager steps' losses and gradients (TestStepGraphsMatchEager),
// with dropout, kept activations, padded buckets and the head's padding;
// not yet run on a GPU, where cuBLAS records its GEMMs into the graph (a
// recording that fails leaves the net stepping eagerly) and the gain is
// unmeasured: devcheck's STEP_VARIANTS="graphs graphs-keep".
const stepGraphsVerified = false

// DISTILL_CUDA_STEP_GRAPHS=0 or 1 overrides the gate either way.
func stepGraphsReady() bool { return gateOpen("DISTILL_CUDA_STEP_GRAPHS", stepGraphsVerified) }

// recordFault, set by tests, fails every recording as a capture can fail.
var recordFault error

// Replayed steps, recordings made and failed, and the last failure (tests).
var (
	stepReplays, stepRecordings, stepRecordFailures atomic.Int64
	lastStepGraphErr                                atomic.Pointer[error]
)

// stepKey is what a recording depends on beyond the batch.
type stepKey struct {
	headRows          int
	dropout           bool
	thresh            uint64 // LoRA dropout's, the same at every site
	keep              float32
	keepAct, keepAttn bool
	gates             uint32 // the gated paths the layout and the layers take
	// Logit distillation's (StepKD): the teacher on the device and its
	// settings; nil for SFT.
	teacher          *Net
	divergence       string
	tau, alpha, beta float32
}

// stepGraph is the kept arena of one stepKey, laid out for up to cap
// tokens, and the passes carved from it.
type stepGraph struct {
	key     stepKey
	cap     int
	arena   *arena
	buckets map[int]*bucketPass
	held    int // recordings, all buckets
	// Upload staging, reused.
	ids32, pos32, lo32, hi32, idx32, tg32 []int32
	scale32                               []float32
	keys                                  []uint64
}

// bucketPass is the pass for batches of n tokens (a bucket) and its
// recordings by count of the head's chunks.
type bucketPass struct {
	p                         *pass
	idx, targets, loss, scale *cuda.Buffer // the head's rows, padded to whole chunks
	kd                        *kdHead      // KD's: hidden holds the teacher's states, copied in before each replay, and a spare row
	// A step is three recordings launched in turn — the forward, the loss
	// head over a count of chunks, the backward (DPO's four: the head's
	// gradients scaled by the host's row gradients before the backward) —
	// so lengths and counts of targeted rows add recordings rather than
	// multiply them.
	graphs map[recording]*cuda.Graph
	x      *cuda.Buffer // the last layer's output: the forward's, the backward's input
	// warm: a step with targeted rows ran on this pass uncaptured, every
	// kernel and GEMM shape a recording launches then loaded and set up
	// outside a capture (a module loaded lazily, or cuBLAS's first call for
	// a shape, inside one can fail it). Every head chunk has the same rows.
	warm bool
}

func (sg *stepGraph) free() {
	sg.dropGraphs()
	for _, bp := range sg.buckets {
		bp.p.free()
	}
	sg.buckets = nil
	sg.arena.buf.Free()
}

// recording names one of a bucket's recordings: a phase, and for the
// head's phases the count of chunks (0 for the others).
type recording struct{ phase, chunks int }

func (sg *stepGraph) dropGraphs() {
	for _, bp := range sg.buckets {
		for _, g := range bp.graphs {
			g.Free()
		}
		bp.graphs = map[recording]*cuda.Graph{}
	}
	sg.held = 0
}

// dropStepGraph frees the kept arena and its recordings, if any.
func (nt *Net) dropStepGraph() {
	if nt.sg != nil {
		nt.sg.free()
		nt.sg = nil
	}
}

// gateBits is every gate a recording's launches depend on: a process that
// turns one records again rather than replay the other path.
func gateBits() uint32 {
	var g uint32
	for i, open := range []bool{loraFusedReady(), qkvStackReady(), asyncTilesReady(), heavyFirstReady(),
		prefetchReady(), trimReady(), betaZeroReady(), keepAttentionReady(), compactReady(),
		halfDyReady(), halfGUReady(), swigluUReady(), loraGroupReady(), dropDXReady(), normBF16Ready(),
		fusedDQReady(), dropReuseReady(), swigluDAReady(), rowsDBReady(), colDAReady(), rowSumsReady(),
		splitKVReady(), dkvOccupancyReady(), stages3Ready()} {
		if open {
			g |= 1 << i
		}
	}
	return g
}

// stepKeyOf is b's key and bucket, and false when the recorded layout
// cannot take b: a position past its bucket, a bucket past the model's
// context, attention not by the flash kernels, dropout whose rate differs
// between sites.
func (nt *Net) stepKeyOf(b *train.Batch, drop train.DropoutMask) (stepKey, int, bool) {
	n := b.Len()
	nb := (n + stepBucket - 1) / stepBucket * stepBucket
	if nt.M.CheckContext(nb) != nil { // a sliding window between n and its bucket: n itself
		nb = n
	}
	k := stepKey{headRows: nt.HeadRows, keepAct: nt.KeepActivations, keepAttn: nt.KeepAttention, gates: gateBits()}
	if n == 0 || !nt.flashAttention() || nt.M.CheckContext(nb) != nil || b.Validate(nt.M.Config.VocabSize) != nil {
		return k, nb, false
	}
	for _, p := range b.Pos[:n] {
		if p >= nb {
			return k, nb, false
		}
	}
	if drop != nil {
		_, k.thresh, k.keep = drop(0)
		k.dropout = true
		for site := range len(nt.layers) * nMod {
			if _, t, kp := drop(site); t != k.thresh || kp != k.keep {
				return k, nb, false
			}
		}
	}
	return k, nb, true
}

// graphStep is a step in the kept arena: its bucket's pass with the batch
// uploaded, k targeted rows in chunks of the head.
type graphStep struct {
	nt        *Net
	sg        *stepGraph
	bp        *bucketPass
	k, chunks int
	replay    bool // by recordings; else eagerly, the bucket's warm-up
	start     time.Time
}

// graphStep lays out (or finds) b's pass in the kept arena and uploads b,
// each targeted row's gradient scale 1/denom; nil with a nil error leaves
// the step to the eager pass (graphs off, a profiled or benchmark-skipping
// net, the first step of its configuration, a batch the layout cannot
// take, a failed recording). With kd, the step is StepKD's: the teacher's
// pass runs eagerly (its own net's), its hidden states copied into the
// kept pass.
func (nt *Net) graphStep(b *train.Batch, denom int, drop train.DropoutMask, kd *train.KD) (*graphStep, error) {
	if !stepGraphsReady() || nt.Profile != nil || len(nt.skip) > 0 || nt.A == nil {
		return nil, nil
	}
	if nt.sgStats.steps++; nt.sgBroken {
		return nil, nil
	}
	start := time.Now()
	key, nb, fits := nt.stepKeyOf(b, drop)
	if !fits {
		nt.sgStats.untaken++
		return nil, nil
	}
	var teacher *Net
	if kd != nil {
		var err error
		if teacher, err = nt.teacher(kd); err != nil {
			return nil, nil // the eager step says why
		}
		key.teacher, key.divergence = teacher, kd.Divergence
		key.tau, key.alpha, key.beta = float32(kd.Temperature), float32(kd.Alpha), float32(kd.Beta)
	}
	if nt.sgFull != nil && *nt.sgFull == key && nb >= nt.sgFullCap {
		nt.sgStats.full++
		return nil, nil
	}
	if nt.sg == nil || nt.sg.key != key || nb > nt.sg.cap {
		seen := nt.lastStep == key
		nt.lastStep = key
		if !seen {
			return nil, nil
		}
		nt.dropStepGraph() // another configuration, or a longer batch: the arena grows
		sg, err := nt.newStepGraph(key, nb)
		if err != nil {
			nt.stepGraphFailed(key, nb, err)
			return nil, nil
		}
		nt.sg = sg
	}
	sg := nt.sg
	bp, ok := nt.bucketOf(nb)
	if !ok {
		return nil, nil
	}
	k, chunks, err := sg.upload(bp, b, denom, drop)
	if err != nil {
		return nil, err
	}
	if teacher != nil {
		// The teacher's pass beside the kept arena: more than the plan,
		// which counts it beside the student's step or its hidden states
		// alone. Where that does not fit, the net goes back to eager steps.
		hidden, err := teacher.Hidden(b)
		if err != nil {
			nt.dropStepGraph()
			nt.stepGraphFailed(key, nb, fmt.Errorf("kd teacher beside the kept step: %w", err))
			return nil, nil
		}
		err = hidden.CopyTo(bp.kd.hidden) // on the stream before the replay: freeing it after is safe
		hidden.Free()
		if err != nil {
			return nil, fmt.Errorf("%w: %d tokens: kd teacher: %w", errStep, nb, err)
		}
	}
	return &graphStep{nt: nt, sg: sg, bp: bp, k: k, chunks: chunks, replay: bp.warm, start: start}, nil
}

// bucketOf is the kept arena's pass for nb tokens, false (the arena
// dropped) when it cannot be laid out or the RoPE tables its recordings
// read are no longer the net's.
func (nt *Net) bucketOf(nb int) (*bucketPass, bool) {
	bp, err := nt.sg.bucket(nt, nb)
	if err != nil {
		key := nt.sg.key
		nt.dropStepGraph()
		nt.stepGraphFailed(key, nb, err)
		return nil, false
	}
	// Every path that replaces the tables drops the arena first; should
	// one not, lay out again.
	if cos, _, err := nt.rope(1); err != nil || cos != bp.p.cos {
		nt.dropStepGraph()
		return nil, false
	}
	return bp, true
}

// recorded returns the step's recordings of phases, made where missing;
// nil (the arena dropped, the run told) when one cannot be made.
func (gs *graphStep) recorded(phases ...int) []*cuda.Graph {
	graphs, err := gs.sg.recordings(gs.bp, gs.chunks, phases...)
	if err != nil {
		key, nb := gs.sg.key, gs.bp.p.n
		gs.nt.dropStepGraph()
		gs.nt.stepGraphFailed(key, nb, err)
		return nil
	}
	return graphs
}

// run launches phases of the step: eagerly on a warm-up, else graphs (the
// matching recordings).
func (gs *graphStep) run(graphs []*cuda.Graph, phases ...int) error {
	if !gs.replay {
		for _, ph := range phases {
			gs.bp.phase(gs.chunks, ph)
		}
		if err := gs.bp.p.failed(); err != nil {
			gs.nt.dropStepGraph() // its pass is spent
			return err
		}
		return nil
	}
	for _, g := range graphs {
		if err := g.Launch(); err != nil {
			return fmt.Errorf("%w: %d tokens: %w", errStep, gs.bp.p.n, err)
		}
	}
	return nil
}

// done counts the step: replayed, or the bucket's warm-up (every kernel and
// GEMM shape its recordings launch now loaded outside a capture, when a
// targeted row ran the head).
func (gs *graphStep) done() {
	if gs.replay {
		stepReplays.Add(1)
		gs.nt.sgStats.replays++
		return
	}
	gs.bp.warm = gs.chunks > 0
}

// losses downloads the step's k targeted rows' losses.
func (gs *graphStep) losses() ([]float32, error) {
	losses := make([]float32, gs.k)
	if err := cuda.Read(gs.bp.loss, 0, losses); err != nil {
		return nil, fmt.Errorf("%w: %d tokens: %w", errStep, gs.bp.p.n, err)
	}
	return losses, nil
}

// stepGraphed runs Step (StepKD with kd) by a recording when it can; done
// false leaves the step to the eager pass.
func (nt *Net) stepGraphed(b *train.Batch, denom int, drop train.DropoutMask, kd *train.KD) (loss float64, done bool, err error) {
	gs, err := nt.graphStep(b, denom, drop, kd)
	if gs == nil {
		return 0, err != nil, err
	}
	phases := []int{phaseForward, phaseHead, phaseBackward}
	var graphs []*cuda.Graph
	if gs.replay {
		if graphs = gs.recorded(phases...); graphs == nil {
			return 0, false, nil
		}
	}
	if err := gs.run(graphs, phases...); err != nil {
		return 0, true, err
	}
	gs.done()
	nt.LastIssue = time.Since(gs.start)
	losses, err := gs.losses()
	if err != nil {
		return 0, true, err
	}
	for _, v := range losses {
		loss += float64(v)
	}
	return loss, true, nil
}

// stepGraphFailed leaves the net stepping eagerly for good, and tells the
// run why — or, when the device had no room for a recorded step of key at
// bucket nb, only for key's batches of that bucket or longer (the run
// holding fewer activations, after a shed, is another key: it records
// again).
func (nt *Net) stepGraphFailed(key stepKey, nb int, err error) {
	if errors.Is(err, cuda.ErrOutOfMemory) {
		nt.sgFull, nt.sgFullCap = &key, nb
		nt.notes.add(fmt.Sprintf("CUDA step graphs: no room on the device for a recorded step of %d tokens; such steps run eagerly (same results) while the run holds its activations this way: %v", nb, err))
		return
	}
	nt.sgBroken = true
	nt.sgStats.failed = err
	stepRecordFailures.Add(1)
	lastStepGraphErr.Store(&err)
	nt.notes.add(fmt.Sprintf("CUDA step graphs off for the rest of the run, every step now eager (same results; DISTILL_CUDA_STEP_GRAPHS=0 skips trying): %v", err))
}

// newStepGraph allocates the arena for key's passes up to capacity
// tokens: as many bytes as that bucket's pass takes from the pool (laid
// out once to count them, and freed).
func (nt *Net) newStepGraph(key stepKey, capacity int) (*stepGraph, error) {
	if err := nt.D.ReserveBLASWorkspace(); err != nil {
		return nil, err
	}
	sg := &stepGraph{key: key, cap: capacity, buckets: map[int]*bucketPass{}}
	bp, err := sg.layout(nt, capacity, nil)
	if err != nil {
		return nil, err
	}
	bytes := bp.p.taken
	bp.p.free()
	// Its blocks, and the eager steps' before it, would stay cached in the
	// pool beside the arena, twice the workspace held: back to the device.
	if err := nt.D.Pool.Trim(); err != nil {
		return nil, fmt.Errorf("devnet: step arena: %w", err)
	}
	buf, err := nt.D.AllocExact(cuda.U8, bytes) // one block for as long as the run steps this way: no size class's eighth
	if err != nil {
		return nil, fmt.Errorf("devnet: step arena of %d bytes: %w", bytes, err)
	}
	nt.sgStats.arena = max(nt.sgStats.arena, int64(bytes))
	sg.arena = &arena{buf: buf}
	return sg, nil
}

// bucket is the pass for nb tokens, carved from the arena the first time.
func (sg *stepGraph) bucket(nt *Net, nb int) (*bucketPass, error) {
	if bp := sg.buckets[nb]; bp != nil {
		return bp, nil
	}
	sg.arena.off = 0 // every bucket's pass from the start: they overlap
	bp, err := sg.layout(nt, nb, sg.arena)
	if err != nil {
		return nil, err
	}
	sg.buckets[nb] = bp
	return bp, nil
}

// layout lays out the pass for n tokens — positions 0..n−1 and segments up
// to n bound its RoPE tables and attention, its head takes up to n
// targeted rows — from ar, or from the pool (nil: to count its bytes).
func (sg *stepGraph) layout(nt *Net, n int, ar *arena) (*bucketPass, error) {
	key := sg.key
	ids, pos, lo, hi := make([]int32, n), make([]int32, n), make([]int32, n), make([]int32, n)
	for i := range n {
		pos[i], hi[i] = int32(i), int32(i+1)
	}
	var drop train.DropoutMask
	if key.dropout {
		drop = func(int) (uint64, uint64, float32) { return 0, key.thresh, key.keep } // keys: p.dropKeys
	}
	p, err := nt.layout(ids, pos, lo, hi, n, nil, drop, passTrainGraph, ar)
	if err != nil {
		return nil, err
	}
	bp := &bucketPass{p: p, idx: p.idx, targets: p.targets, loss: p.loss, graphs: map[recording]*cuda.Graph{}}
	bp.scale = p.take(cuda.F32, p.idx.Len)
	if t := key.teacher; t != nil {
		c, tc := &nt.M.Config, &t.M.Config
		R, Dt := p.hb.Len/c.HiddenSize, tc.HiddenSize
		bp.kd = &kdHead{hidden: p.take(cuda.F32, (n+1)*Dt), head: t.head, dt: Dt, divergence: key.divergence,
			tau: key.tau, alpha: key.alpha, beta: key.beta,
			th: p.take(cuda.F32, R*Dt), thb: p.take(cuda.BF16, R*Dt), logits: p.take(cuda.F32, R*c.VocabSize)}
	}
	if key.dropout {
		p.dropKeys = p.take(cuda.U64, len(nt.layers)*nMod)
	}
	if err := p.failed(); err != nil {
		p.free()
		return nil, err
	}
	return bp, nil
}

// upload writes b into bp's buffers, padded to its bucket: k targeted rows,
// padded to chunks whole chunks of the head.
func (sg *stepGraph) upload(bp *bucketPass, b *train.Batch, denom int, drop train.DropoutMask) (k, chunks int, err error) {
	p := bp.p
	n, nb, D := b.Len(), p.n, p.nt.M.Config.HiddenSize
	sg.ids32, sg.pos32, sg.lo32, sg.hi32 = sg.ids32[:0], sg.pos32[:0], sg.lo32[:0], sg.hi32[:0]
	for i := range nb {
		if i < n {
			sg.ids32, sg.pos32 = append(sg.ids32, int32(b.IDs[i])), append(sg.pos32, int32(b.Pos[i]))
			sg.lo32, sg.hi32 = append(sg.lo32, int32(b.SegStart[i])), append(sg.hi32, int32(i+1))
			continue
		}
		// Padding: token 0 at position 0, attending itself alone.
		sg.ids32, sg.pos32, sg.lo32, sg.hi32 = append(sg.ids32, 0), append(sg.pos32, 0), append(sg.lo32, int32(i)), append(sg.hi32, int32(i+1))
	}
	sg.idx32, sg.tg32, sg.scale32 = sg.idx32[:0], sg.tg32[:0], sg.scale32[:0]
	scale := 1 / float32(denom) // as Step's head: bit for bit
	for i, t := range b.Targets[:n] {
		if t >= 0 {
			sg.idx32, sg.tg32, sg.scale32 = append(sg.idx32, int32(i)), append(sg.tg32, int32(t)), append(sg.scale32, scale)
		}
	}
	k = len(sg.idx32)
	R := p.hb.Len / D
	chunks = (k + R - 1) / R
	for len(sg.idx32) < chunks*R { // padding: the spare row past the last, target 0, scale 0
		sg.idx32, sg.tg32, sg.scale32 = append(sg.idx32, int32(nb)), append(sg.tg32, 0), append(sg.scale32, 0)
	}
	errs := []error{cuda.Write(p.ids, 0, sg.ids32), cuda.Write(p.pos, 0, sg.pos32),
		cuda.Write(p.attn.Lo, 0, sg.lo32), cuda.Write(p.attn.Hi, 0, sg.hi32),
		cuda.Write(bp.idx, 0, sg.idx32), cuda.Write(bp.targets, 0, sg.tg32), cuda.Write(bp.scale, 0, sg.scale32)}
	if drop != nil {
		sg.keys = sg.keys[:0]
		for site := range len(p.nt.layers) * nMod {
			base, _, _ := drop(site)
			sg.keys = append(sg.keys, base)
		}
		errs = append(errs, cuda.Write(p.dropKeys, 0, sg.keys))
	}
	if err := errors.Join(errs...); err != nil {
		return 0, 0, fmt.Errorf("%w: %d tokens: upload: %w", errStep, nb, err)
	}
	return k, chunks, nil
}

// The parts of a recorded step.
const (
	phaseForward = iota
	phaseHead
	phaseBackward
	phaseLogProbs // the head without gradients (scoring passes on the kept pass)
	phaseRowScale // DPO's (StepRows): the head's gradients scaled by the host's row gradients
)

// phase launches one part of bp's step: the forward (the spare rows its
// padding reads zeroed first), the loss head over chunks chunks of rows
// (phaseLogProbs: their losses alone), or the backward.
func (bp *bucketPass) phase(chunks, which int) {
	p := bp.p
	D := p.nt.M.Config.HiddenSize
	switch which {
	case phaseForward:
		// The spare row the head's padding reads, zeroed each step (another
		// bucket's pass may have written over it): a NaN there would stay
		// in the padding's own rows, but a step's NaN then always means a
		// real one.
		p.do(p.hf.View(p.n*D, D).Zero())
		if bp.kd != nil { // the teacher's spare row, read by the same padding
			p.do(bp.kd.hidden.View(p.n*bp.kd.dt, bp.kd.dt).Zero())
		}
		bp.x = p.forward()
	case phaseHead, phaseLogProbs:
		rows := chunks * (p.hb.Len / D)
		if chunks == 0 {
			p.idx, p.targets = nil, nil // no targeted row: the head only zeroes dhf, as Step's
		} else {
			p.idx, p.targets = bp.idx.View(0, rows), bp.targets.View(0, rows)
		}
		p.loss = bp.loss.View(0, max(rows, 1))
		if which == phaseLogProbs {
			p.head(headMode{})
			return
		}
		p.head(headMode{grad: true, rowScale: bp.scale, kd: bp.kd})
	case phaseRowScale:
		if rows := chunks * (p.hb.Len / D); rows > 0 {
			p.do(p.d.ScaleRows(p.dhf, bp.idx.View(0, rows), bp.scale.View(0, rows), rows, D))
		}
	case phaseBackward:
		p.backward(bp.x)
	}
}

// recordings are bp's recordings of phases (the heads' over chunks
// chunks), in order, made where missing.
func (sg *stepGraph) recordings(bp *bucketPass, chunks int, phases ...int) ([]*cuda.Graph, error) {
	keys := make([]recording, len(phases))
	need := 0
	for i, ph := range phases {
		keys[i] = recording{phase: ph}
		if ph == phaseHead || ph == phaseLogProbs || ph == phaseRowScale {
			keys[i].chunks = chunks
		}
		if bp.graphs[keys[i]] == nil {
			need++
		}
	}
	if sg.held+need > maxStepGraphs {
		sg.dropGraphs()
	}
	graphs := make([]*cuda.Graph, len(phases))
	for i, key := range keys {
		if bp.graphs[key] == nil {
			g, err := bp.record(chunks, key.phase)
			if err != nil {
				return nil, err
			}
			bp.graphs[key] = g
			sg.held++
		}
		graphs[i] = bp.graphs[key]
	}
	return graphs, nil
}

// record captures one part of bp's step.
func (bp *bucketPass) record(chunks, which int) (*cuda.Graph, error) {
	p := bp.p
	err := recordFault
	var g *cuda.Graph
	if err == nil {
		g, err = p.d.Capture(func() error {
			bp.phase(chunks, which)
			return p.failed()
		})
	}
	if err != nil {
		return nil, fmt.Errorf("devnet: recording a step of %d tokens: %w", p.n, err)
	}
	stepRecordings.Add(1)
	p.nt.sgStats.recordings++
	return g, nil
}

// arena is one allocation that passes carve their buffers from, each
// rounded up to 256 bytes (cudaMalloc's alignment).
type arena struct {
	buf *cuda.Buffer // u8
	off int
}

func arenaBytes(k cuda.Kind, n int) int { return (max(1, n*k.Size()) + 255) &^ 255 }

func (a *arena) take(k cuda.Kind, n int) (*cuda.Buffer, error) {
	b, err := a.buf.Carve(k, a.off, n)
	if err != nil {
		return nil, fmt.Errorf("devnet: step arena: %w", err)
	}
	a.off += arenaBytes(k, n)
	return b, nil
}
