package train

import (
	"context"
	"fmt"
	"math"
	"slices"
	"testing"

	"distill/core/lora"
	"distill/core/model"
	"distill/core/tensor"
)

// cpuAccel stands in for a device (cuda/devnet) so that Net's hand-over to
// an accelerator — the row objectives' ordering and signs, the gradients'
// accumulation, the micro-batch counter, the dropout keys — is tested where
// there is no GPU. Its steps run on a second Net over the same model and
// adapter (parameters shared), through the row-objective contract a device
// implements: log-probs of the targeted rows in row order, then gradients
// d loss / d log p per row.
type cpuAccel struct{ net *Net }

func init() {
	RegisterAccelerated("cpu-stand-in", func(m *model.Model, a *lora.Adapter) (Accelerated, error) {
		n, err := NewNet(tensor.CPU{}, m, a)
		return &cpuAccel{net: n}, err
	})
}

func (c *cpuAccel) Step(b *Batch, denom int, _ DropoutMask) (float64, error) {
	return c.net.Step(b, denom)
}
func (c *cpuAccel) ZeroGrads() error                  { c.net.ZeroGrads(); return nil }
func (c *cpuAccel) SetCheckpoint(on bool)             { c.net.Checkpoint = on }
func (c *cpuAccel) UploadParams() error               { return nil }
func (c *cpuAccel) DownloadGrads(dst []float32) error { copy(dst, c.net.Grads); return nil }
func (c *cpuAccel) Close()                            {}
func (c *cpuAccel) KDReady(*KD) bool                  { return true }
func (c *cpuAccel) StepKD(b *Batch, denom int, _ DropoutMask, kd *KD) (float64, error) {
	return c.net.StepKD(b, denom, kd)
}

// rowLogProbs is log p(target) of b's targeted rows, in row order, from the
// workspace's final hidden states.
func (c *cpuAccel) rowLogProbs(ws *workspace, b *Batch) []float64 {
	var out []float64
	c.net.head(ws, b.Targets, false, func(rows []int, logits []float32, losses []float64) {
		logProbRows(logits, c.net.M.Config.VocabSize, rows, b.Targets, losses)
		out = append(out, losses[:len(rows)]...)
	})
	return out
}

func (c *cpuAccel) LogProbs(b *Batch, adapterOff bool) ([]float64, error) {
	nt := c.net
	ws := nt.workspace(b.Len(), maxSegment(b.SegStart))
	nt.ws, nt.adapterOff, nt.evaluating = ws, adapterOff, true
	defer func() { nt.ws, nt.adapterOff, nt.evaluating = nil, false, false }()
	nt.forward(b, ws)
	return c.rowLogProbs(ws, b), nil
}

func (c *cpuAccel) StepRows(b *Batch, _ DropoutMask, grad func(logp []float64) ([]float64, error)) error {
	nt := c.net
	V := nt.M.Config.VocabSize
	var gerr error
	err := nt.run(b, func(ws *workspace) float64 {
		g, err := grad(c.rowLogProbs(ws, b))
		if err != nil {
			gerr = err
			return 0
		}
		k := 0
		nt.head(ws, b.Targets, true, func(rows []int, logits []float32, losses []float64) {
			// d loss / d logits = g·(onehot − softmax), a device's row-scaled
			// cross-entropy with scale −g.
			for i, r := range rows {
				lg := logits[i*V : (i+1)*V]
				softmaxInPlace(lg)
				s := float32(-g[k])
				for j := range lg {
					lg[j] *= s
				}
				lg[b.Targets[r]] -= s
				losses[i] = 0
				k++
			}
		})
		return 0
	})
	if gerr != nil {
		return gerr
	}
	return err
}

// A Net with an accelerator attached gives DPO's reference and policy
// log-probs, its pair statistics and gradients, and KD's loss and
// gradients exactly as the Net alone — with dropout on, over several
// micro-batches (the masks follow the micro-batch counter on both sides).
func TestAcceleratedDPOAndKDMatchTheNet(t *testing.T) {
	plain, _, _ := fixtureNet(t, "llama3-f32", "adapter")
	acc, _, _ := fixtureNet(t, "llama3-f32", "adapter")
	for _, n := range []*Net{plain, acc} {
		n.Adapter.Config.Dropout, n.DropoutSeed = 0.2, 11
	}
	if ok, err := acc.Accelerate("cpu-stand-in"); !ok {
		t.Fatal(err)
	}
	// The stand-in draws its own masks (a device uses the DropoutMask it is
	// given): the same seed, and a counter that moves in step with the host's.
	acc.accel.(*cpuAccel).net.DropoutSeed = 11
	b := dpoBatch(plain.M.Config.VocabSize)
	d := &DPO{Beta: 0.1, Loss: "sigmoid", LabelSmoothing: 0.05}
	for _, off := range []bool{true, false} {
		want, err := plain.SequenceLogProbs(b, off)
		if err != nil {
			t.Fatal(err)
		}
		got, err := acc.SequenceLogProbs(b, off)
		if err != nil {
			t.Fatal(err)
		}
		for i := range want {
			if math.Abs(got[i]-want[i]) > 1e-9 {
				t.Fatalf("adapter off %v: segment %d: %v, want %v", off, i, got[i], want[i])
			}
		}
	}
	ref, _ := plain.SequenceLogProbs(b, true)
	for step := range 3 { // micro-batches accumulate; the dropout masks move on
		ws, err := plain.StepDPO(b, ref, 4, d)
		if err != nil {
			t.Fatal(err)
		}
		gs, err := acc.StepDPO(b, ref, 4, d)
		if err != nil {
			t.Fatal(err)
		}
		if gs.Pairs != ws.Pairs || gs.Correct != ws.Correct || math.Abs(gs.Loss-ws.Loss) > 1e-9 ||
			math.Abs(gs.RewardChosen-ws.RewardChosen) > 1e-9 || math.Abs(gs.RewardRejected-ws.RewardRejected) > 1e-9 {
			t.Fatalf("micro-batch %d: stats %+v, want %+v", step, gs, ws)
		}
	}
	kd := &KD{Teacher: plain.M, Backend: tensor.CPU{}, Divergence: "jsd", Temperature: 1.5, Alpha: 0.3, Beta: 0.5}
	sb := dpoBatch(plain.M.Config.VocabSize)
	wl, err := plain.StepKD(sb, sb.Counted(), kd)
	if err != nil {
		t.Fatal(err)
	}
	gl, err := acc.StepKD(sb, sb.Counted(), kd)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(gl-wl) > 1e-9 {
		t.Fatalf("KD loss %v, want %v", gl, wl)
	}
	if plain.MicroBatches() != acc.MicroBatches() {
		t.Fatalf("micro-batches %d on the accelerated Net, %d on the plain one", acc.MicroBatches(), plain.MicroBatches())
	}
	worst := 0.0
	for i := range plain.Grads {
		worst = max(worst, math.Abs(float64(acc.Grads[i]-plain.Grads[i])))
	}
	if worst > 1e-6 {
		t.Fatalf("accumulated gradients differ by up to %g", worst)
	}
}

// cpuOptAccel is cpuAccel with the optimizer on its "device": its own copy
// of the parameters (a clone of the adapter: UploadParams copies the host's
// in) and its own moments, so a micro-batch that ran on stale parameters,
// an update the host took instead, or a state not brought back shows as
// different numbers from the host's run.
type cpuOptAccel struct {
	cpuAccel
	host          []float32 // the host Net's parameters
	m, v          []float32
	loads, stores int
	full          bool // LoadOptimizer finds no room for the moments
}

func init() {
	RegisterAccelerated("cpu-opt-stand-in", func(m *model.Model, a *lora.Adapter) (Accelerated, error) {
		clone, err := lora.NewFor(m, a.Config)
		if err != nil {
			return nil, err
		}
		copy(clone.Params, a.Params)
		n, err := NewNet(tensor.CPU{}, m, clone)
		return &cpuOptAccel{cpuAccel: cpuAccel{net: n}, host: a.Params}, err
	})
}

func (c *cpuOptAccel) UploadParams() error  { copy(c.net.Params, c.host); return nil }
func (c *cpuOptAccel) OptimizerReady() bool { return true }
func (c *cpuOptAccel) LoadOptimizer(p, m, v []float32) error {
	c.loads++
	if c.full {
		return fmt.Errorf("stand-in: %w", model.ErrAcceleratorFull)
	}
	copy(c.net.Params, p)
	c.m, c.v = append([]float32(nil), m...), append([]float32(nil), v...)
	return nil
}
func (c *cpuOptAccel) OptimizerStep(maxNorm, lr float64, step int, b1, b2, eps, wd float64) (float64, error) {
	norm := ClipGradNorm(c.net.Grads, maxNorm)
	o := &AdamW{Beta1: b1, Beta2: b2, Eps: eps, WeightDecay: wd, M: c.m, V: c.v, Step: step - 1}
	return norm, o.Update(c.net.Params, c.net.Grads, lr)
}
func (c *cpuOptAccel) StoreOptimizer(p, m, v []float32) error {
	c.stores++
	copy(p, c.net.Params)
	copy(m, c.m)
	copy(v, c.v)
	return nil
}

// TestDeviceOptimizerTracksTheHost: training with the optimizer on the
// (stand-in) device — parameters, gradients and moments there for each
// Train call, accumulated over micro-batches with LoRA dropout, back at its
// end — gives the
// host's losses, gradient norms, parameters and moments (to the rounding
// of summing micro-batches in another order), over two Train calls with a
// checkpoint-style boundary between them, and an evaluation after each
// sees the parameters as trained.
func TestDeviceOptimizerTracksTheHost(t *testing.T) {
	cfg := Config{Steps: 3, Accum: 2, MaxGradNorm: 0.5, Schedule: Schedule{Kind: "cosine", Peak: 5e-3, Warmup: 1, Total: 6}}
	host, bf, _ := fixtureNet(t, "llama3-f32", "adapter")
	dev, _, _ := fixtureNet(t, "llama3-f32", "adapter")
	for _, n := range []*Net{host, dev} { // dropout on: its masks follow the micro-batch counter on both sides
		n.Adapter.Config.Dropout, n.DropoutSeed = 0.1, 7
	}
	if ok, err := dev.Accelerate("cpu-opt-stand-in"); !ok {
		t.Fatal(err)
	}
	dev.accel.(*cpuOptAccel).net.DropoutSeed = 7
	data := &cycle{batches: []*Batch{bf.batch(), bf.packedBatch()}}
	optH, optD := NewAdamW(len(host.Params), 0.01), NewAdamW(len(dev.Params), 0.01)
	run := func(net *Net, opt *AdamW, c Config) []Event {
		ev := make(chan Event, 16)
		if err := Train(context.Background(), net, opt, c, data, ev); err != nil {
			t.Fatal(err)
		}
		close(ev)
		var out []Event
		for e := range ev {
			out = append(out, e)
		}
		return out
	}
	near := func(what string, got, want []float32) {
		t.Helper()
		worst := 0.0
		for i := range want {
			worst = max(worst, math.Abs(float64(got[i]-want[i]))/(math.Abs(float64(want[i]))+1e-3))
		}
		if worst > 1e-4 {
			t.Errorf("%s: up to %.2e relative from the host's", what, worst)
		}
	}
	for span, steps := range []int{3, 6} {
		cfg.Steps = steps
		eh, ed := run(host, optH, cfg), run(dev, optD, cfg)
		for i := range eh {
			if !ed[i].OptimizerOnDevice || eh[i].OptimizerOnDevice {
				t.Errorf("span %d, step %d: optimizer on the device %v (device run), %v (host run)", span, eh[i].Step, ed[i].OptimizerOnDevice, eh[i].OptimizerOnDevice)
			}
			if math.Abs(ed[i].Loss-eh[i].Loss) > 1e-5*math.Abs(eh[i].Loss) || math.Abs(ed[i].GradNorm-eh[i].GradNorm) > 1e-4*eh[i].GradNorm {
				t.Errorf("span %d, step %d: loss %v, norm %v; the host's %v, %v", span, eh[i].Step, ed[i].Loss, ed[i].GradNorm, eh[i].Loss, eh[i].GradNorm)
			}
		}
		near("parameters", dev.Params, host.Params)
		near("first moments", optD.M, optH.M)
		near("second moments", optD.V, optH.V)
		if optD.Step != optH.Step {
			t.Errorf("span %d: optimizer step %d, the host's %d", span, optD.Step, optH.Step)
		}
		want, err := host.SequenceLogProbs(dpoBatch(host.M.Config.VocabSize), false)
		if err != nil {
			t.Fatal(err)
		}
		got, err := dev.SequenceLogProbs(dpoBatch(dev.M.Config.VocabSize), false)
		if err != nil {
			t.Fatal(err)
		}
		for i := range want {
			if math.Abs(got[i]-want[i]) > 1e-4*math.Abs(want[i])+1e-5 {
				t.Errorf("span %d: evaluation after training: segment %d %v, the host's %v", span, i, got[i], want[i])
			}
		}
	}
	if a := dev.accel.(*cpuOptAccel); a.loads != 2 || a.stores != 2 {
		t.Errorf("optimizer state to the device %d times and back %d, want 2 and 2", a.loads, a.stores)
	}
}

// TestDeviceOptimizerFallsBackWhenFull: when the device has no room for the
// moments (LoadOptimizer says ErrAcceleratorFull), Train keeps the
// optimizer on the host — the host's numbers, every step's event saying so
// (the workstation logs it against a plan that counted the moments on the
// device) — and stores nothing back.
func TestDeviceOptimizerFallsBackWhenFull(t *testing.T) {
	cfg := Config{Steps: 2, Accum: 1, MaxGradNorm: 1, Schedule: Schedule{Kind: "constant", Peak: 1e-3, Total: 2}}
	host, bf, _ := fixtureNet(t, "llama3-f32", "adapter")
	dev, _, _ := fixtureNet(t, "llama3-f32", "adapter")
	if ok, err := dev.Accelerate("cpu-opt-stand-in"); !ok {
		t.Fatal(err)
	}
	a := dev.accel.(*cpuOptAccel)
	a.full = true
	data := &cycle{batches: []*Batch{bf.batch()}}
	var losses [2][]float64
	for i, n := range []*Net{host, dev} {
		ev := make(chan Event, 4)
		if err := Train(context.Background(), n, NewAdamW(len(n.Params), 0.01), cfg, data, ev); err != nil {
			t.Fatal(err)
		}
		close(ev)
		for e := range ev {
			if e.OptimizerOnDevice {
				t.Errorf("step %d: the event says the optimizer ran on the device", e.Step)
			}
			losses[i] = append(losses[i], e.Loss)
		}
	}
	for i := range losses[0] {
		if math.Abs(losses[1][i]-losses[0][i]) > 1e-5*math.Abs(losses[0][i]) {
			t.Errorf("step %d: loss %v, the host's %v", i+1, losses[1][i], losses[0][i])
		}
	}
	if a.loads != 1 || a.stores != 0 {
		t.Errorf("optimizer state to the device tried %d times and back %d, want 1 and 0", a.loads, a.stores)
	}
}

// TestAcceleratorTakesCheckpointing: each micro-batch hands the Net's
// Checkpoint to an accelerator that takes it (Checkpointer) — the stand-in's
// own Net then recomputes or keeps its activations — and the loss does not
// depend on it.
func TestAcceleratorTakesCheckpointing(t *testing.T) {
	dev, bf, _ := fixtureNet(t, "llama3-f32", "adapter")
	if ok, err := dev.Accelerate("cpu-stand-in"); !ok {
		t.Fatal(err)
	}
	inner := dev.accel.(*cpuAccel).net
	var losses []float64
	for _, on := range []bool{true, false, true} {
		dev.Checkpoint = on
		l, err := dev.Step(bf.batch(), 1)
		if err != nil {
			t.Fatal(err)
		}
		if inner.Checkpoint != on {
			t.Errorf("Checkpoint %v: the accelerator's is %v", on, inner.Checkpoint)
		}
		losses = append(losses, l)
	}
	if losses[1] != losses[0] || losses[2] != losses[0] {
		t.Errorf("losses %v: checkpointing changed the loss", losses)
	}
}

// notingAccel is the stand-in with notes for the run (Noter): one after
// its second step.
type notingAccel struct {
	cpuAccel
	steps int
	notes []string
}

func (c *notingAccel) Step(b *Batch, denom int, drop DropoutMask) (float64, error) {
	if c.steps++; c.steps == 2 {
		c.notes = append(c.notes, "a faster path off")
	}
	return c.cpuAccel.Step(b, denom, drop)
}
func (c *notingAccel) TakeNotes() []string { n := c.notes; c.notes = nil; return n }
func (c *notingAccel) Summary() []string   { return []string{fmt.Sprintf("%d steps", c.steps)} }

// TestAcceleratorNotesReachTheEvents: what an accelerator tells the run
// arrives once, in the event of the step it happened in, and its summary
// through the Net.
func TestAcceleratorNotesReachTheEvents(t *testing.T) {
	dev, bf, _ := fixtureNet(t, "llama3-f32", "adapter")
	inner := &cpuAccel{}
	var err error
	if inner.net, err = NewNet(tensor.CPU{}, dev.M, dev.Adapter); err != nil {
		t.Fatal(err)
	}
	a := &notingAccel{cpuAccel: *inner}
	dev.accel, dev.accelGrads = a, make([]float32, len(dev.Grads))
	cfg := Config{Steps: 3, Accum: 1, MaxGradNorm: 1, Schedule: Schedule{Kind: "constant", Peak: 1e-3, Total: 3}}
	ev := make(chan Event, 4)
	if err := Train(context.Background(), dev, NewAdamW(len(dev.Params), 0.01), cfg, &cycle{batches: []*Batch{bf.batch()}}, ev); err != nil {
		t.Fatal(err)
	}
	close(ev)
	var got []string
	for e := range ev {
		for _, n := range e.Notes {
			got = append(got, fmt.Sprintf("step %d: %s", e.Step, n))
		}
	}
	if want := []string{"step 2: a faster path off"}; !slices.Equal(got, want) {
		t.Errorf("notes %q, want %q", got, want)
	}
	if s := dev.DeviceSummary(); !slices.Equal(s, []string{"3 steps"}) {
		t.Errorf("summary %q", s)
	}
}
