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
// launches. So a step whose shape repeats is recorded once as a CUDA graph
// and replayed: the host then uploads the batch and launches once.
//
// A recording replays the same launches with the same arguments, so what
// changes between steps lives in device memory the kernels read: token ids,
// positions and attention ranges (the pass's buffers), the targeted rows and
// their targets, each targeted row's gradient scale (1/denom: the loss head
// runs CrossEntropyRows, the same kernel as CrossEntropy's scale), and LoRA
// dropout's keys (DropoutKeyed). The shapes do not change: the pass is laid
// out for n tokens with positions below n and segments of up to n (the
// attention reads each row's own range; n only bounds them), and the head
// for any number of targeted rows padded to whole chunks of HeadRows — one
// recording per count of chunks — whose padding rows read a zero row kept
// past hf's last at gradient scale 0 and scatter zeros there.
//
// The kept pass holds the step's workspace between steps. Any other pass
// (validation, DPO's or KD's steps, decoding) frees it first (layout), so
// no two workspaces are held at once and memory is the plan's; a shape seen
// only once runs eagerly, so batches of varying length never record. A
// recording that fails leaves the net stepping eagerly.
//
// Gated (stepGraphsReady) until a GPU has run it.

// stepGraphsVerified: SFT steps replayed as CUDA graphs. Written without a
// GPU (session 13, 2026-11-27): on the emulated device the replayed steps
// give the eager steps' losses and gradients (TestStepGraphsMatchEager),
// with dropout, kept activations and the head's padding; not yet run on a
// GPU, where cuBLAS must record its GEMMs without allocating (it does with
// its default workspace) and the gain is unmeasured: devcheck's
// STEP_VARIANTS=graphs.
const stepGraphsVerified = false

// DISTILL_CUDA_STEP_GRAPHS=0 or 1 overrides the gate either way.
func stepGraphsReady() bool { return gateOpen("DISTILL_CUDA_STEP_GRAPHS", stepGraphsVerified) }

// Replayed steps, recordings made and failed, and the last failure (tests).
var (
	stepReplays, stepRecordings, stepRecordFailures atomic.Int64
	lastStepGraphErr                                atomic.Pointer[error]
)

// stepKey is what a recording depends on beyond the batch's contents.
type stepKey struct {
	n, headRows       int
	dropout           bool
	thresh            uint64 // LoRA dropout's, the same at every site
	keep              float32
	keepAct, keepAttn bool
	gates             uint16 // the gated paths the layout and the layers take
}

// stepGraph is the kept pass of one stepKey and its recordings.
type stepGraph struct {
	key                       stepKey
	p                         *pass
	idx, targets, loss, scale *cuda.Buffer // the head's rows padded to whole chunks
	graphs                    map[int]*cuda.Graph
	ids32, pos32, lo32, hi32  []int32 // upload staging, reused
	idx32, tg32               []int32
	scale32                   []float32
	keys                      []uint64
}

func (sg *stepGraph) free() {
	for _, g := range sg.graphs {
		g.Free()
	}
	sg.graphs = nil
	sg.p.free()
}

// dropStepGraph frees the kept pass and its recordings, if any.
func (nt *Net) dropStepGraph() {
	if nt.sg != nil {
		nt.sg.free()
		nt.sg = nil
	}
}

func gateBits() uint16 {
	var g uint16
	for i, open := range []bool{loraFusedReady(), qkvStackReady(), asyncTilesReady(), heavyFirstReady(),
		prefetchReady(), trimReady(), betaZeroReady(), keepAttentionReady()} {
		if open {
			g |= 1 << i
		}
	}
	return g
}

// stepKeyOf is b's key, and false when the recorded layout cannot take b:
// a position past n, a context the model refuses, attention not by the
// flash kernels, dropout whose rate differs between sites.
func (nt *Net) stepKeyOf(b *train.Batch, drop train.DropoutMask) (stepKey, bool) {
	n := b.Len()
	k := stepKey{n: n, headRows: nt.HeadRows, keepAct: nt.KeepActivations, keepAttn: nt.KeepAttention, gates: gateBits()}
	if n == 0 || !nt.flashAttention() || nt.M.CheckContext(n) != nil || b.Validate(nt.M.Config.VocabSize) != nil {
		return k, false
	}
	for _, p := range b.Pos[:n] {
		if p >= n {
			return k, false
		}
	}
	if drop != nil {
		_, k.thresh, k.keep = drop(0)
		k.dropout = true
		for site := range len(nt.layers) * nMod {
			if _, t, kp := drop(site); t != k.thresh || kp != k.keep {
				return k, false
			}
		}
	}
	return k, true
}

// stepGraphed runs Step by a recording when it can; done false leaves the
// step to the eager pass (graphs off, a profiled or benchmark-skipping
// net, a shape not seen twice in a row, a batch the layout cannot take, a
// failed recording).
func (nt *Net) stepGraphed(b *train.Batch, denom int, drop train.DropoutMask) (loss float64, done bool, err error) {
	if !stepGraphsReady() || nt.Profile != nil || len(nt.skip) > 0 || nt.A == nil || nt.sgBroken {
		return 0, false, nil
	}
	key, fits := nt.stepKeyOf(b, drop)
	if !fits {
		return 0, false, nil
	}
	if nt.sg == nil || nt.sg.key != key {
		seen := nt.lastStep == key
		nt.lastStep = key
		if !seen {
			return 0, false, nil
		}
		nt.dropStepGraph()
		sg, err := nt.newStepGraph(key)
		if err != nil {
			nt.stepGraphFailed(err)
			return 0, false, nil
		}
		nt.sg = sg
	}
	start := time.Now()
	sg := nt.sg
	k, chunks, err := sg.upload(b, denom, drop)
	if err != nil {
		return 0, true, err
	}
	g := sg.graphs[chunks]
	if g == nil {
		if g, err = sg.record(chunks); err != nil {
			nt.dropStepGraph()
			nt.stepGraphFailed(err)
			return 0, false, nil
		}
		sg.graphs[chunks] = g
	}
	if err := g.Launch(); err != nil {
		return 0, true, fmt.Errorf("%w: %d tokens: %w", errStep, key.n, err)
	}
	stepReplays.Add(1)
	nt.LastIssue = time.Since(start)
	losses := make([]float32, k)
	if err := cuda.Read(sg.loss, 0, losses); err != nil {
		return 0, true, fmt.Errorf("%w: %d tokens: %w", errStep, key.n, err)
	}
	for _, v := range losses {
		loss += float64(v)
	}
	return loss, true, nil
}

func (nt *Net) stepGraphFailed(err error) {
	nt.sgBroken = true
	stepRecordFailures.Add(1)
	lastStepGraphErr.Store(&err)
}

// newStepGraph lays out the kept pass for key: positions 0..n−1 and
// segments up to n bound its RoPE tables and attention, and the head
// takes up to n targeted rows.
func (nt *Net) newStepGraph(key stepKey) (*stepGraph, error) {
	n := key.n
	ids, pos, lo, hi := make([]int32, n), make([]int32, n), make([]int32, n), make([]int32, n)
	for i := range n {
		pos[i], hi[i] = int32(i), int32(i+1)
	}
	var drop train.DropoutMask
	if key.dropout {
		drop = func(int) (uint64, uint64, float32) { return 0, key.thresh, key.keep } // keys: p.dropKeys
	}
	p, err := nt.layout(ids, pos, lo, hi, n, nil, drop, passTrainGraph)
	if err != nil {
		return nil, err
	}
	sg := &stepGraph{key: key, p: p, idx: p.idx, targets: p.targets, loss: p.loss, graphs: map[int]*cuda.Graph{},
		ids32: ids, pos32: pos, lo32: lo, hi32: hi}
	sg.scale = p.take(cuda.F32, p.idx.Len)
	if key.dropout {
		p.dropKeys = p.take(cuda.U64, len(nt.layers)*nMod)
		sg.keys = make([]uint64, len(nt.layers)*nMod)
	}
	if err := p.failed(); err != nil {
		p.free()
		return nil, err
	}
	return sg, nil
}

// upload writes b into the kept pass's buffers: k targeted rows, padded to
// chunks whole chunks of the head.
func (sg *stepGraph) upload(b *train.Batch, denom int, drop train.DropoutMask) (k, chunks int, err error) {
	p := sg.p
	n, D := p.n, p.nt.M.Config.HiddenSize
	for i := range n {
		sg.ids32[i], sg.pos32[i], sg.lo32[i], sg.hi32[i] = int32(b.IDs[i]), int32(b.Pos[i]), int32(b.SegStart[i]), int32(i+1)
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
	for len(sg.idx32) < chunks*R { // padding: the zero row past the last, target 0, scale 0
		sg.idx32, sg.tg32, sg.scale32 = append(sg.idx32, int32(n)), append(sg.tg32, 0), append(sg.scale32, 0)
	}
	if drop != nil {
		for site := range sg.keys {
			sg.keys[site], _, _ = drop(site)
		}
	}
	errs := []error{cuda.Write(p.ids, 0, sg.ids32), cuda.Write(p.pos, 0, sg.pos32),
		cuda.Write(p.attn.Lo, 0, sg.lo32), cuda.Write(p.attn.Hi, 0, sg.hi32),
		cuda.Write(sg.idx, 0, sg.idx32), cuda.Write(sg.targets, 0, sg.tg32), cuda.Write(sg.scale, 0, sg.scale32)}
	if drop != nil {
		errs = append(errs, cuda.Write(p.dropKeys, 0, sg.keys))
	}
	if err := errors.Join(errs...); err != nil {
		return 0, 0, fmt.Errorf("%w: %d tokens: upload: %w", errStep, n, err)
	}
	return k, chunks, nil
}

// record captures the step's forward, loss head over chunks chunks of rows
// and backward.
func (sg *stepGraph) record(chunks int) (*cuda.Graph, error) {
	p := sg.p
	rows := chunks * (p.hb.Len / p.nt.M.Config.HiddenSize)
	if chunks == 0 {
		p.idx, p.targets = nil, nil // no targeted row: the head only zeroes dhf, as Step's
	} else {
		p.idx, p.targets = sg.idx.View(0, rows), sg.targets.View(0, rows)
	}
	p.loss = sg.loss.View(0, max(rows, 1))
	g, err := p.d.Capture(func() error {
		x := p.forward()
		p.head(headMode{grad: true, rowScale: sg.scale})
		p.backward(x)
		return p.failed()
	})
	if err != nil {
		return nil, fmt.Errorf("devnet: recording a step of %d tokens: %w", p.n, err)
	}
	stepRecordings.Add(1)
	return g, nil
}
