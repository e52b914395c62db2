//go:build cuda

package devnet_test

import (
	"testing"

	"distill/core/lora"
	"distill/core/model"
	"distill/core/quant"
	"distill/core/tensor"
	"distill/core/train"
	"distill/cuda"
	"distill/cuda/devnet"
)

// devicePlan is core/train's GPU plan for a step of n tokens over m and a,
// recomputing each layer's activations (devnet.New's default) or keeping
// them all.
func devicePlan(t testing.TB, m *model.Model, a *lora.Adapter, n int, keep, keepAttn bool) train.Plan {
	tn, err := train.NewNet(tensor.CPU{}, m, a)
	ok(t, err)
	tn.Checkpoint, tn.KeepAttention = !keep, keepAttn
	return tn.DevicePlan(n, m.HeldBytes(), true)
}

// The GPU memory plan (`distill plan --device cuda`) against what a step
// takes from the device pool: the weights, adapter and gradients uploaded,
// and the step's workspace, at the pool's high-water mark (the optimizer's
// moments, planned on the device too, are not a step's). The pool rounds
// each buffer up to its size class (≤ 12.5%) and the plan leaves out the
// norms and biases (KBs): measured/planned within [0.97, 1.15].
func TestDevicePlanMatchesPool(t *testing.T) {
	d := device(t)
	t.Setenv("DISTILL_CUDA_KEEP_ATTN", "1") // the selective case whatever the environment says (the others leave KeepAttention off)
	big, first := 1500, 0
	if cuda.Emulated { // every case at 300 tokens (the first is then the second): minutes of fibers less
		big, first = 300, 1
	}
	for _, c := range []struct {
		n                  int
		kd, keep, keepAttn bool // logit KD from a wider NF4 teacher (DeviceKDPlan); every layer's activations kept; the attention side's
		qwen3              bool // a Qwen3 shape whose q, k, v stacked (linQKVB) set xb's and the tile's size; no dropout
		graphs             bool // steps replayed as CUDA graphs: the arena of the bucket's pass, cuBLAS's workspace
	}{{300, false, false, false, false, false}, {big, false, false, false, false, false}, {big, true, false, false, false, false},
		{big, false, true, false, false, false}, {big, false, false, true, false, false}, {big, false, false, false, true, false},
		{270, false, false, false, false, true}, {270, true, false, false, false, true}}[first:] {
		n := c.n
		t.Setenv("DISTILL_CUDA_STEP_GRAPHS", map[bool]string{false: "0", true: "1"}[c.graphs])
		dir := t.TempDir()
		s := model.Shape{Arch: "Qwen2ForCausalLM", Hidden: 512, Intermediate: 1408, Layers: 4, Heads: 8, KVHeads: 2,
			Vocab: 20000, Tied: true, RopeTheta: 1e6, RMSNormEps: 1e-6, MaxPositions: 4096, BOS: 1, EOS: 2}
		dropout := 0.05
		if c.qwen3 {
			s.Arch, s.Hidden, s.Intermediate, s.HeadDim, s.KVHeads, dropout = "Qwen3ForCausalLM", 256, 512, 64, 4, 0
		}
		ok(t, model.WriteRandom(dir, s, tensor.BF16, 2))
		m, err := model.Load(dir)
		ok(t, err)
		_, err = quant.QuantizeModel(m, "nf4", true, false)
		ok(t, err)
		a, err := lora.NewFor(m, lora.Config{R: 16, Alpha: 32, Targets: lora.Modules, Dropout: dropout})
		ok(t, err)
		plan := devicePlan(t, m, a, n, c.keep, c.keepAttn)
		var kd *train.KD
		if c.kd {
			tdir := t.TempDir()
			ts := s
			ts.Hidden, ts.Intermediate, ts.Heads = 768, 2048, 12
			ok(t, model.WriteRandom(tdir, ts, tensor.BF16, 3))
			teacher, err := model.Load(tdir)
			ok(t, err)
			defer teacher.Close()
			_, err = quant.QuantizeModel(teacher, "nf4", true, false)
			ok(t, err)
			kd = &train.KD{Teacher: teacher, Backend: tensor.CPU{}, Divergence: "forward_kl", Temperature: 2, Alpha: 0.5}
			tn, err := train.NewNet(tensor.CPU{}, m, a)
			ok(t, err)
			tn.Checkpoint = true
			plan = tn.DeviceKDPlan(n, m.HeldBytes(), true, teacher, teacher.HeldBytes(), true)
		}

		if c.graphs { // cuBLAS's workspace is reserved once a process: held from here on, whichever test came first
			ok(t, d.ReserveBLASWorkspace())
		}
		ok(t, d.Pool.Trim())
		d.Pool.ResetPeak()
		before := d.Pool.Stats().InUse
		tn, err := train.NewNet(tensor.CPU{}, m, a)
		ok(t, err)
		tn.Checkpoint, tn.KeepAttention, tn.DropoutSeed = !c.keep, c.keepAttn, 1 // as the plan
		attached, err := tn.Accelerate("cuda")
		if !attached {
			t.Fatal(err)
		}
		b := batch(rng(3), s.Vocab, n/2, n-n/2)
		_, _, q0 := devnet.FusedLoRA()
		replays, _, failures, _ := devnet.StepGraphs()
		steps := 1
		if c.graphs { // eager, then the arena's first (uncaptured) step, then a replay
			steps = 3
		}
		for range steps {
			if kd != nil {
				_, err = tn.StepKD(b, b.Counted(), kd)
			} else {
				_, err = tn.Step(b, b.Counted())
			}
			ok(t, err)
		}
		peak := d.Pool.Stats().Peak - before
		if r, _, f, last := devnet.StepGraphs(); c.graphs && (r != replays+1 || f != failures) {
			t.Errorf("%d tokens (kd %v): %d steps replayed, %d recordings failed (%v); want 1, 0", n, c.kd, r-replays, f-failures, last)
		}
		if _, _, q1 := devnet.FusedLoRA(); q1 == q0 { // every case targets all seven at r 16
			t.Errorf("q, k and v's backward never stacked")
		}
		tn.Close()
		m.Close()
		// A step, not the optimizer: the moments the plan puts on the
		// device (the device optimizer) are TestDeviceOptimizerParity's.
		want := plan.Total() - plan.Runtime - plan.Optimizer
		if c.graphs { // held before (above), where the plan counts it
			want -= train.StepGraphBLASWorkspace
		}
		ratio := float64(peak) / float64(want)
		report := t.Logf
		if ratio < 0.97 || ratio > 1.15 {
			report = t.Errorf
		}
		report("%d tokens (kd %v, keep %v, attention %v, qwen3 %v, graphs %v): pool peak %.1f MB, plan %.1f MB (×%.3f)",
			n, c.kd, c.keep, c.keepAttn, c.qwen3, c.graphs, float64(peak)/1e6, float64(want)/1e6, ratio)
	}
}

// The plan's weights are what devnet uploads: NF4 projections as held,
// dense ones in bf16 whatever their dtype (an f32 checkpoint's took half
// the plan's count before), the embedding as stored, the head in bf16 (the
// embedding itself where tied and bf16). Measured as the pool's growth over
// devnet.New (weights, adapter, gradients), the norms and biases aside.
func TestDevicePlanWeightsMatchUpload(t *testing.T) {
	d := device(t)
	for _, c := range []struct {
		dt    tensor.DType
		quant string
		tied  bool
	}{{tensor.F32, "none", false}, {tensor.F32, "none", true}, {tensor.BF16, "none", false}, {tensor.F32, "nf4", false},
		{tensor.BF16, "nf4", true}} {
		dir := t.TempDir()
		s := model.Shape{Arch: "Qwen2ForCausalLM", Hidden: 256, Intermediate: 704, Layers: 2, Heads: 4, KVHeads: 2,
			Vocab: 6000, Tied: c.tied, RopeTheta: 1e6, RMSNormEps: 1e-6, MaxPositions: 256, BOS: 1, EOS: 2}
		ok(t, model.WriteRandom(dir, s, c.dt, 3))
		m, err := model.Load(dir)
		ok(t, err)
		_, err = quant.QuantizeModel(m, c.quant, c.quant == "nf4", false)
		ok(t, err)
		a, err := lora.NewFor(m, lora.Config{R: 8, Alpha: 16, Targets: lora.Modules})
		ok(t, err)
		tn, err := train.NewNet(tensor.CPU{}, m, a)
		ok(t, err)
		plan := tn.DevicePlan(16, m.HeldBytes(), c.quant == "nf4")
		ok(t, d.Pool.Trim())
		before := d.Pool.Stats().InUse
		net, err := devnet.New(d, m, a)
		ok(t, err)
		got, want := float64(d.Pool.Stats().InUse-before), float64(plan.Weights+plan.Adapter+plan.Grads)
		net.Close()
		m.Close()
		if r := got / want; r < 0.97 || r > 1.15 {
			t.Errorf("%v %s, tied %v: uploaded %.2f MB, planned %.2f MB (×%.3f)", c.dt, c.quant, c.tied, got/1e6, want/1e6, r)
		} else {
			t.Logf("%v %s, tied %v: uploaded %.2f MB, planned %.2f MB (×%.3f)", c.dt, c.quant, c.tied, got/1e6, want/1e6, r)
		}
	}
}
