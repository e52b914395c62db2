package app

import (
	"fmt"
	"os"

	"distill/core/tokenizer"
	"distill/core/tokenizer/chat"
	"distill/core/train"
)

// memoryLimitEnv caps what distill holds on a GPU (cuda's pool; whole
// numbers with KiB…GB): the free memory the fit sees is then the room
// left within it, and the messages say so.
const memoryLimitEnv = "DISTILL_CUDA_MEMORY"

// freeGB says free bytes as the fit's messages do, naming the limit when
// one is set.
func freeGB(free int64) string {
	if v := os.Getenv(memoryLimitEnv); v != "" {
		return fmt.Sprintf("%.2f GB free within %s=%s", float64(free)/1e9, memoryLimitEnv, v)
	}
	return fmt.Sprintf("%.2f GB free", float64(free)/1e9)
}

// raiseLimit is the fix to name beside freeing the device when a limit is
// set.
func raiseLimit() string {
	if os.Getenv(memoryLimitEnv) != "" {
		return " (or raise " + memoryLimitEnv + ")"
	}
	return ""
}

// fitMicroBatch finds the micro-batch a device can hold: the configured seq
// tokens divided by the smallest factor f whose step workspace,
// need(tokens), fits free bytes, and accumulation multiplied by f, so an
// optimizer step sees about as many tokens. ok is false when nothing of at
// least min(16, seq) tokens fits.
func fitMicroBatch(seq, accum int, free int64, need func(tokens int) int64) (tokens, newAccum int, ok bool) {
	floor := min(16, seq)
	for f := 1; ; f++ {
		n := (seq + f - 1) / f
		if n < floor {
			return 0, 0, false
		}
		if need(n) <= free {
			return n, accum * f, true
		}
		if n == floor { // nothing smaller is tried
			return 0, 0, false
		}
	}
}

// devicePlan is the run's GPU memory plan at n tokens per micro-batch,
// with logit KD's teacher when there is one.
func (j *TrainJob) devicePlan(n int) train.Plan {
	c := &j.Cfg
	if j.teacher != nil {
		return j.net.DeviceKDPlan(n, j.m.HeldBytes(), c.Quant == "nf4", j.teacher, j.teacher.HeldBytes(), c.KD.TeacherQuant == "nf4")
	}
	return j.net.DevicePlan(n, j.m.HeldBytes(), c.Quant == "nf4")
}

// deviceNeed is the device memory a micro-batch of n tokens takes from the
// pool by the plan: the pool rounds buffers up by ≤ 1/8; a KD teacher
// (uploaded at the first step) and the optimizer's moments when it runs on
// the device (at the first Train call) go through it too.
func (j *TrainJob) deviceNeed(n int) int64 {
	p := j.devicePlan(n)
	return (p.Optimizer + p.Activations + p.Workspace + p.Teacher) * 9 / 8
}

// fitCheckpointing: a GPU run asked to keep every layer's activations
// (grad_checkpointing: false: a forward less a step) recomputes them
// instead when keeping them would not fit the device's free memory at its
// micro-batch — keeping each layer's attention side where that fits and
// the device does it (keep_attention), else all of them — before the
// micro-batch itself is fitted, which would rather shrink it. With
// grad_checkpointing: auto it picks the fastest way that fits, with a
// margin (pickActivations).
func (j *TrainJob) fitCheckpointing() error {
	c := &j.Cfg
	free, ok := j.net.DeviceFree()
	if !ok || !c.OnGPU() {
		return nil
	}
	honoured := train.DeviceKeepsAttention == nil || train.DeviceKeepsAttention()
	if c.GradCheckpointing.Auto() {
		return j.pickActivations(free, honoured)
	}
	if j.net.Checkpoint {
		// Asked to keep the attention side (keep_attention): recompute
		// everything instead where that is all that fits at seq_len (rather
		// than shrink the micro-batch) or the device does not do it yet.
		if !j.net.KeepAttention {
			return nil
		}
		if !honoured {
			j.net.KeepAttention = false
			j.logf("keep_attention: %s does not keep the attention side (turned off: DISTILL_CUDA_KEEP_ATTN=0): recomputing every activation", c.Device)
		} else if need := j.deviceNeed(c.SeqLen); need > free {
			j.net.KeepAttention = false
			j.logf("keeping each layer's attention side needs %.2f GB on %s, %s: recomputing every activation instead",
				float64(need)/1e9, c.Device, freeGB(free))
		}
		return nil
	}
	need := j.deviceNeed(c.SeqLen)
	if need <= free {
		return nil
	}
	j.net.Checkpoint, j.net.KeepAttention = true, true
	if attn := j.deviceNeed(c.SeqLen); attn <= free && honoured {
		j.logf("keeping every layer's activations needs %.2f GB on %s, %s: keeping each layer's attention side (%.2f GB) and recomputing its MLP in the backward instead (keep_attention)",
			float64(need)/1e9, c.Device, freeGB(free), float64(attn)/1e9)
		return nil
	}
	j.net.KeepAttention = false
	j.logf("keeping every layer's activations needs %.2f GB on %s, %s: recomputing them in the backward instead (grad_checkpointing)",
		float64(need)/1e9, c.Device, freeGB(free))
	return nil
}

// pickActivations resolves grad_checkpointing: auto on a GPU, fastest
// first: keeping every layer's activations where that fits nine tenths of
// the free memory (a tenth left for what shares the card: a desktop, a
// second process, the allocator's slack), else each layer's attention side
// where the device keeps it (honoured), else recomputing them all (the
// micro-batch is fitted next, from there). It says which and why, and
// records it in the run's config.yaml, so a resume holds them the same way.
// keep_attention: true caps it there (asked for, it is never exceeded);
// what the device does not do (its gates) is not picked.
func (j *TrainJob) pickActivations(free int64, honoured bool) error {
	c := &j.Cfg
	room := free - free/10
	need := func(checkpoint, attention bool) int64 {
		j.net.Checkpoint, j.net.KeepAttention = checkpoint, attention
		return j.deviceNeed(c.SeqLen)
	}
	gb := func(b int64) float64 { return float64(b) / 1e9 }
	keeps := !c.KeepAttention && (train.DeviceKeepsActivations == nil || train.DeviceKeepsActivations())
	keep := need(false, false)
	switch attn := need(true, true); {
	case keeps && keep <= room:
		j.net.Checkpoint, j.net.KeepAttention = false, false
		j.logf("grad_checkpointing auto: keeping every layer's activations (%.2f GB on %s, %s; grad_checkpointing: false)", gb(keep), c.Device, freeGB(free))
	case honoured && attn <= room:
		j.net.Checkpoint, j.net.KeepAttention = true, true
		j.logf("grad_checkpointing auto: keeping each layer's attention side, recomputing its MLP (%.2f GB on %s, %s; keeping every layer's would take %.2f GB; keep_attention)", gb(attn), c.Device, freeGB(free), gb(keep))
	default:
		rec := need(true, false)
		j.logf("grad_checkpointing auto: recomputing every layer's activations in the backward (%.2f GB; keeping them would take %.2f GB on %s, %s)", gb(rec), gb(keep), c.Device, freeGB(free))
	}
	return j.recordActivations()
}

// fitDevice makes a new GPU run's micro-batch fit the device's free memory
// by the memory plan: the trainer picks it. When seq_len does not fit, it
// takes the longest seq_len/f that does — no shorter than the longest
// example, so no example is cut — multiplies accumulation by f (about as
// many tokens a step), packs the data again and records both in the run's
// config.yaml (a resume reads them). When even that cannot fit, it refuses
// and names what would.
func (j *TrainJob) fitDevice(tok *tokenizer.Tokenizer, tmpl *chat.Template) error {
	c := &j.Cfg
	free, ok := j.net.DeviceFree()
	if !ok || !c.OnGPU() {
		return nil
	}
	need := j.deviceNeed
	if need(c.SeqLen) <= free {
		return nil
	}
	pairs := c.Method == "dpo" // a pair's two segments share a micro-batch
	longest := max(longestUnit(j.batches, pairs), longestUnit(j.val, pairs))
	n, accum, ok := fitMicroBatch(c.SeqLen, c.Accum, free, need)
	switch {
	case !ok:
		return fmt.Errorf("%s: %s: seq_len %d needs %.2f GB and not even %d tokens fit; free the device%s or train a smaller model",
			c.Device, freeGB(free), c.SeqLen, float64(need(c.SeqLen))/1e9, min(16, c.SeqLen), raiseLimit())
	case n < longest && pairs:
		return fmt.Errorf("seq_len %d needs %.2f GB on %s, %s; %d tokens would fit, but the longest preference pair (prompt twice, both answers) has %d: free the device%s, quantise the base, or shorten the longest pairs",
			c.SeqLen, float64(need(c.SeqLen))/1e9, c.Device, freeGB(free), n, longest, raiseLimit())
	case n < longest:
		return fmt.Errorf("seq_len %d needs %.2f GB on %s, %s; %d tokens would fit, but the longest example has %d: --seq-len %d --accum %d fits if cutting longer examples from the left is acceptable%s",
			c.SeqLen, float64(need(c.SeqLen))/1e9, c.Device, freeGB(free), n, longest, n, accum, raiseLimit())
	}
	j.logf("seq_len %d needs %.2f GB on %s, %s: %d tokens per micro-batch (the longest example has %d), accumulating %d",
		c.SeqLen, float64(need(c.SeqLen))/1e9, c.Device, freeGB(free), n, longest, accum)
	c.SeqLen, c.Accum = n, accum
	if err := j.saveConfig(); err != nil {
		return err
	}
	return j.loadData(tok, tmpl)
}

// longestUnit is the most tokens of what must share a micro-batch in bs:
// one example, or with pairs a DPO pair (segments 2k and 2k+1 of a batch).
func longestUnit(bs []*train.Batch, pairs bool) int {
	m := 0
	for _, b := range bs {
		var segs []int // the batch's segment lengths, in order
		for i := range b.IDs {
			if b.SegStart[i] == i {
				segs = append(segs, 0)
			}
			segs[len(segs)-1]++
		}
		for k := 0; k < len(segs); k++ {
			n := segs[k]
			if pairs && k+1 < len(segs) {
				n, k = n+segs[k+1], k+1
			}
			m = max(m, n)
		}
	}
	return m
}
