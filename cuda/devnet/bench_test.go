//go:build cuda

package devnet_test

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"distill/core/lora"
	"distill/core/model"
	"distill/core/quant"
	"distill/core/tensor"
	"distill/cuda/devnet"
)

// BenchmarkStep: one QLoRA step (NF4 double-quantised base, r=16 on every
// projection, checkpointing) of a random Qwen2.5-shaped model, everything on
// the device. Model FLOPs per token: 4 per frozen projection weight and LM
// head weight (forward and input gradient; the recomputation and the
// adapter's rank-16 products not counted) plus causal attention's
// 6·T·heads·head_dim per layer (forward 2, backward 4, halved by the mask).
// MFU is against DISTILL_PEAK_TFLOPS (default 989, the H100/H200 SXM dense
// bf16 datasheet figure). Shapes and lengths from DISTILL_BENCH_STEP
// (default "qwen2.5-0.5b:1024"); DISTILL_BENCH_ATTN=simple or gemm times
// the simple attention kernel or the cuBLAS one instead of the flash kernels; DISTILL_BENCH_PROFILE=1
// adds each phase's milliseconds per step (measured with the device
// synchronised between phases, after the timed steps); DISTILL_BENCH_SKIP=
// lora,attention,... the milliseconds of a step without each phase, after
// them (no synchronisation: the difference to ms-step is the phase's cost);
// ms-issue is the host's time to launch a step's work (Net.LastIssue);
// DISTILL_BENCH_DROPOUT=p runs it with LoRA dropout at p;
// DISTILL_BENCH_KEEP=1 keeps every layer's activations instead of
// recomputing them (Net.KeepActivations: the same FLOPs credited, a
// forward's fewer run), DISTILL_BENCH_KEEP=attn each layer's attention
// side (Net.KeepAttention); DISTILL_BENCH_METHOD=dpo or kd times a DPO or a
// logit-KD step instead (newStepBench); DISTILL_BENCH_SEQS=k packs k
// sequences of seq tokens into the step (k·seq rows, each attending its
// own: a run whose seq_len packs k examples), so the launches and the
// weights' staging, fixed a step, are shared by k times the tokens.
func BenchmarkStep(b *testing.B) {
	peak := benchPeak()
	for _, sh := range benchShapes(b) {
		b.Run(sh.label(), func(b *testing.B) { benchStep(b, sh.name, sh.seq, peak) })
	}
}

// benchPeak is the card's dense bf16 peak MFU is against, in TFLOP/s:
// DISTILL_PEAK_TFLOPS, or 989 (the H100/H200 SXM datasheet figure).
func benchPeak() float64 {
	if v, err := strconv.ParseFloat(os.Getenv("DISTILL_PEAK_TFLOPS"), 64); err == nil && v > 0 {
		return v
	}
	return 989
}

// benchShape is one of DISTILL_BENCH_STEP's shape:seq entries.
type benchShape struct {
	name string
	seq  int
}

func (sh benchShape) label() string { return fmt.Sprintf("%s/seq%d", sh.name, sh.seq) }

// benchShapes is DISTILL_BENCH_STEP's list (default qwen2.5-0.5b:1024).
func benchShapes(b *testing.B) []benchShape {
	spec := os.Getenv("DISTILL_BENCH_STEP")
	if spec == "" {
		spec = "qwen2.5-0.5b:1024"
	}
	var list []benchShape
	for _, one := range strings.Split(spec, ",") {
		name, seqS, _ := strings.Cut(one, ":")
		seq, err := strconv.Atoi(seqS)
		if err != nil {
			b.Fatalf("DISTILL_BENCH_STEP %q: want shape:seq", one)
		}
		list = append(list, benchShape{name, seq})
	}
	return list
}

// benchModel is a random model of shape name (written once under the
// temporary folder), NF4 double-quantised, with a rank-16 adapter on every
// projection.
func benchModel(b *testing.B, name string) (*model.Model, *lora.Adapter, model.Shape) {
	s, found := model.Shapes[name]
	if !found {
		b.Fatalf("no shape %q", name)
	}
	m, err := model.LoadRandom(model.BenchDir(), name, tensor.BF16)
	ok(b, err)
	b.Cleanup(func() { m.Close() })
	_, err = quant.QuantizeModel(m, "nf4", true, false)
	ok(b, err)
	a, err := lora.NewFor(m, lora.Config{R: 16, Alpha: 32, Targets: lora.Modules})
	ok(b, err)
	lora.Init(a, 1)
	return m, a, s
}

// stepFLOPs is the model FLOPs of a training step over tokens in causal
// segments of segLen (forward and input gradient: 4 per projection and
// head weight a token, plus causal attention's 6·segLen·heads·head_dim per
// layer a token, halved by the mask). A forward alone (a DPO reference's, a
// KD teacher's) is half of it.
func stepFLOPs(s model.Shape, tokens, segLen int) float64 {
	hd := s.Hidden / s.Heads
	if s.HeadDim > 0 {
		hd = s.HeadDim
	}
	proj := float64(s.Layers)*float64(s.Hidden*(s.Heads*hd+2*s.KVHeads*hd)+s.Heads*hd*s.Hidden+3*s.Hidden*s.Intermediate) + float64(s.Vocab*s.Hidden)
	return float64(tokens) * (4*proj + 6*float64(s.Layers)*float64(segLen*s.Heads*hd)/2)
}

func benchStep(b *testing.B, name string, seq int, peak float64) {
	d := device(b)
	m, a, s := benchModel(b, name)
	// Memory: the pool's high-water mark from before the upload (weights,
	// adapter, gradients, the step's workspace), and the device's whole use
	// (CUDA context and cuBLAS workspace included) after a step.
	ok(b, d.Pool.Trim())
	d.Pool.ResetPeak()
	pool0 := d.Pool.Stats().InUse
	sb, err := newStepBench(d, m, a, s, seq)
	ok(b, err)
	defer sb.close()
	for range 3 { // warm-up: the pool fills, cuBLAS picks its kernels, KD's teacher goes up; with step graphs the second lays out the arena, the third records
		ok(b, sb.step())
	}
	free1, total, err := d.MemInfo()
	ok(b, err)
	var issue time.Duration
	replays0, _, fails0, _ := devnet.StepGraphs()
	b.ResetTimer()
	for range b.N {
		if err := sb.step(); err != nil {
			b.Fatal(err)
		}
		if sb.net != nil {
			issue += sb.net.LastIssue
		}
	}
	ok(b, d.Sync())
	sec := b.Elapsed().Seconds() / float64(b.N)
	// The host's time to launch a step: well under the step's, the device
	// bounds it; near it, the launches do — or the launch queue (about a
	// thousand launches; a step has thousands) filled and the host waited
	// on the device. A hint; nsys tells them apart.
	if sb.net != nil {
		b.ReportMetric(issue.Seconds()*1e3/float64(b.N), "ms-issue")
	}
	reportReplays(b, replays0, fails0)
	b.ReportMetric(float64(sb.tokens)/sec, "tokens/s")
	b.ReportMetric(sb.flops/sec/1e9, "GFLOP/s")
	b.ReportMetric(100*sb.flops/sec/1e12/peak, "MFU%")
	b.ReportMetric(float64(d.Pool.Stats().Peak-pool0)/(1<<20), "MiB-pool-peak")
	plan := sb.plan() // a step: the optimizer's moments are not its
	b.ReportMetric(float64(plan.Total()-plan.Runtime-plan.Optimizer)/(1<<20), "MiB-plan")
	if sb.net == nil {
		return
	}
	net, bt := sb.net, sb.batch
	if os.Getenv("DISTILL_BENCH_PROFILE") == "1" { // where a step's time goes (synchronised phases)
		b.StopTimer() // ns/op stays the unprofiled steps'
		net.Profile = map[string]time.Duration{}
		const steps = 3
		for range steps {
			_, err := net.Step(bt, bt.Counted(), nil)
			ok(b, err)
		}
		for phase, t := range net.Profile {
			b.ReportMetric(t.Seconds()*1e3/steps, "ms-"+phase)
		}
		net.Profile = nil
	}
	if spec := os.Getenv("DISTILL_BENCH_SKIP"); spec != "" { // each phase's share: a step without it
		b.StopTimer()
		for _, phase := range strings.Split(spec, ",") {
			devnet.SetSkip(net, []string{phase})
			ok(b, d.Sync())
			t0 := time.Now()
			const steps = 3
			for range steps {
				net.Step(bt, bt.Counted(), nil) // its results are wrong by design: only its time counts
			}
			ok(b, d.Sync())
			b.ReportMetric(time.Since(t0).Seconds()*1e3/steps, "ms-without-"+phase)
		}
		devnet.SetSkip(net, nil)
		b.ReportMetric(sec*1e3, "ms-step")
	}
	b.ReportMetric(float64(total-free1)/(1<<20), "MiB-device-used")
}

// reportReplays reports the steps replayed from a recording
// (DISTILL_CUDA_STEP_GRAPHS) since the counts given, and why recording
// failed if it did.
func reportReplays(b *testing.B, replays0, fails0 int64) {
	replays1, _, fails1, last := devnet.StepGraphs()
	b.ReportMetric(float64(replays1-replays0)/float64(b.N), "replayed")
	if fails1 != fails0 {
		b.Errorf("step graphs: recording failed: %v", last)
	} else if os.Getenv("DISTILL_CUDA_STEP_GRAPHS") == "1" && replays1 == replays0 {
		b.Error("step graphs on, but no step replayed")
	}
}
