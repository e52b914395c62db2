//go:build cuda

package devnet_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"testing"

	"distill/core/lora"
	"distill/core/model"
	"distill/core/quant"
	"distill/core/tensor"
	"distill/core/train"
	"distill/cuda"
	"distill/cuda/devnet"
)

// The device-resident step against core/train's Net on the CPU (itself
// checked against PyTorch in float64): the same random checkpoint, adapter
// and packed batch; the summed loss and every adapter gradient compared.
// Where no device is visible the tests skip; DISTILL_CUDA_REQUIRE=1 makes
// that a failure.

var dev *cuda.Device

func device(t testing.TB) *cuda.Device {
	t.Helper()
	if dev != nil {
		return dev
	}
	d, err := cuda.Open()
	if err != nil {
		if os.Getenv("DISTILL_CUDA_REQUIRE") == "1" {
			t.Fatalf("DISTILL_CUDA_REQUIRE=1 and %v", err)
		}
		t.Skipf("skipping: %v", err)
	}
	dev = d
	return d
}

func ok(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func rng(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)) }

type setup struct {
	name    string
	shape   model.Shape
	quant   string // nf4 or none
	targets []string
	dropout float64
	rank    int // the adapter's r (0: 8)
}

var setups = []setup{
	{"qwen2-nf4-bias", model.Shape{Arch: "Qwen2ForCausalLM", Hidden: 128, Intermediate: 320, Layers: 3, Heads: 4, KVHeads: 2,
		Vocab: 777, Tied: true, RopeTheta: 1e6, RMSNormEps: 1e-6, MaxPositions: 256, BOS: 1, EOS: 2}, "nf4", lora.Modules, 0, 0},
	{"qwen3-nf4-qknorm", model.Shape{Arch: "Qwen3ForCausalLM", Hidden: 96, Intermediate: 256, Layers: 2, Heads: 6, KVHeads: 2, HeadDim: 32,
		Vocab: 1001, Tied: true, RopeTheta: 1e6, RMSNormEps: 1e-6, MaxPositions: 256, BOS: 1, EOS: 2}, "nf4", lora.Modules, 0, 0},
	{"llama-bf16-qv", model.Shape{Arch: "LlamaForCausalLM", Hidden: 128, Intermediate: 344, Layers: 2, Heads: 4, KVHeads: 4,
		Vocab: 500, RopeTheta: 5e5, RMSNormEps: 1e-5, MaxPositions: 256, BOS: 1, EOS: 2}, "none", []string{"q_proj", "v_proj"}, 0, 0},
	{"qwen2-nf4-dropout", model.Shape{Arch: "Qwen2ForCausalLM", Hidden: 64, Intermediate: 160, Layers: 2, Heads: 4, KVHeads: 1,
		Vocab: 300, Tied: true, RopeTheta: 1e6, RMSNormEps: 1e-6, MaxPositions: 256, BOS: 1, EOS: 2}, "nf4", lora.Modules, 0.2, 0},
	// r 12: the fused GEMM's strides padded past r (to 16), K = in + 12;
	// q and v only, so k, o and the MLP read the strided operands unfused.
	{"qwen2-nf4-qv-r12", model.Shape{Arch: "Qwen2ForCausalLM", Hidden: 96, Intermediate: 200, Layers: 2, Heads: 4, KVHeads: 2,
		Vocab: 400, Tied: true, RopeTheta: 1e6, RMSNormEps: 1e-6, MaxPositions: 256, BOS: 1, EOS: 2}, "nf4", []string{"q_proj", "v_proj"}, 0, 12},
}

// firstSetup is the first setup's model: random bf16 weights from seed,
// quantised and loaded as build does (its adapter unused).
func firstSetup(t *testing.T, seed uint64) (*model.Model, setup) {
	s := setups[0]
	dir := t.TempDir()
	ok(t, model.WriteRandom(dir, s.shape, tensor.BF16, seed))
	m, _ := build(t, dir, s)
	return m, s
}

// build loads the checkpoint in dir, quantised as s says, with an adapter
// whose A and B are both random (so both get gradients).
func build(t *testing.T, dir string, s setup) (*model.Model, *lora.Adapter) {
	m, err := model.Load(dir)
	ok(t, err)
	t.Cleanup(func() { m.Close() })
	_, err = quant.QuantizeModel(m, s.quant, s.quant == "nf4", false)
	ok(t, err)
	r := s.rank
	if r == 0 {
		r = 8
	}
	a, err := lora.NewFor(m, lora.Config{R: r, Alpha: 2 * float64(r), Targets: s.targets, Dropout: s.dropout})
	ok(t, err)
	g := rng(4)
	for i := range a.Params {
		a.Params[i] = float32(0.05 * g.NormFloat64())
	}
	return m, a
}

// batch packs segments of the given lengths, the first third of each
// unmasked (a prompt).
func batch(r *rand.Rand, vocab int, lens ...int) *train.Batch {
	b := &train.Batch{}
	for _, L := range lens {
		ids, mask := make([]int, L), make([]bool, L)
		for i := range ids {
			ids[i], mask[i] = r.IntN(vocab), i >= L/3
		}
		b.AddSequence(ids, mask)
	}
	return b
}

// sameStep fails t unless two runs' losses agree within 1e-5 relative and
// their gradients within gradTol (relative L2); else it logs them.
func sameStep(t *testing.T, what string, l1, l0 float64, g1, g0 []float32, gradTol float64) {
	t.Helper()
	if math.Abs(l1-l0) > 1e-5*math.Abs(l0) || l1 != l1 {
		t.Errorf("%s: loss %v, %v", what, l1, l0)
	}
	if rel := relL2(g1, g0); rel > gradTol || rel != rel {
		t.Errorf("%s: gradients differ by %.2e relative", what, rel)
	} else {
		t.Logf("%s: loss %v / %v, gradients %.2e relative", what, l1, l0, rel)
	}
}

func relL2(got, want []float32) float64 {
	var num, den float64
	for i := range want {
		d := float64(got[i] - want[i])
		num += d * d
		den += float64(want[i]) * float64(want[i])
	}
	return math.Sqrt(num / den)
}

// TestStepParity runs each setup with the adapter's products apart from
// the base's GEMMs (TestFusedLoRAStepParity runs them fused, the default).
func TestStepParity(t *testing.T) {
	device(t) // skips without a GPU
	t.Setenv("DISTILL_CUDA_LORA_FUSED", "0")
	for _, s := range setups {
		t.Run(s.name, func(t *testing.T) { stepParity(t, s) })
	}
}

// TestFusedLoRAStepParity is TestStepParity with each NF4 projection and
// its adapter as one bf16 GEMM (linFused), held to the same tolerances
// against the CPU, and proof that the fused path ran forward and backward
// (under dropout: the weight and dy staged in one launch, the adapter's
// term apart) — with q, k and v's backward as one GEMM (linQKVB)
// where all three are targeted at a rank that is a multiple of 8 (with
// dropout, their base's blocks alone), and as three.
func TestFusedLoRAStepParity(t *testing.T) {
	device(t)
	t.Setenv("DISTILL_CUDA_LORA_FUSED", "1")
	for _, stack := range []string{"1", "0"} {
		t.Setenv("DISTILL_CUDA_QKV_STACK", stack)
		for _, s := range setups {
			t.Run("stack"+stack+"/"+s.name, func(t *testing.T) {
				f0, b0, q0 := devnet.FusedLoRA()
				d0 := devnet.StagedDropoutBwd()
				stepParity(t, s)
				f1, b1, q1 := devnet.FusedLoRA()
				d1 := devnet.StagedDropoutBwd()
				if s.quant == "nf4" && (f1 == f0 || (s.dropout == 0 && b1 == b0) || (s.dropout > 0 && d1 == d0)) {
					t.Errorf("fused projections: %d forward, %d backward, %d staged under dropout", f1-f0, b1-b0, d1-d0)
				}
				if s.quant != "nf4" && (f1 != f0 || b1 != b0) {
					t.Errorf("dense weights fused %d, %d projections", f1-f0, b1-b0)
				}
				stackable := s.quant == "nf4" && len(s.targets) == len(lora.Modules) && s.rank%8 == 0 // dropout too: the base's blocks alone
				if ran := q1 > q0; ran != (stackable && stack == "1") {
					t.Errorf("q, k, v's backward stacked in %d layers (stackable %v, stack %s)", q1-q0, stackable, stack)
				}
			})
		}
	}
}

// stepParity runs s's two micro-batches on the CPU and on the device.
func stepParity(t *testing.T, s setup) {
	dir, batches, denom := stepFixture(t, s)
	a, cpu, wantLoss := cpuSteps(t, dir, s, batches, denom)
	// The device through train.Net's own door (as a run takes it): the
	// Net hands its steps, with its dropout masks' keys, to devnet.
	deviceStep(t, dir, s, batches, denom, a, cpu, wantLoss)
}

// cpuSteps runs batches on the CPU (checkpointing, dropout seed 7):
// the adapter, the net with its gradients, and each micro-batch's loss.
func cpuSteps(t *testing.T, dir string, s setup, batches []*train.Batch, denom int) (*lora.Adapter, *train.Net, []float64) {
	m, a := build(t, dir, s)
	cpu, err := train.NewNet(tensor.CPU{}, m, a)
	ok(t, err)
	cpu.Checkpoint, cpu.DropoutSeed = true, 7
	var losses []float64
	for _, b := range batches {
		l, err := cpu.Step(b, denom)
		ok(t, err)
		losses = append(losses, l)
	}
	return a, cpu, losses
}

// deviceStep runs TestStepParity's micro-batches on the device and checks
// losses and gradients against the CPU's (cpu, wantLoss; a its adapter).
func deviceStep(t *testing.T, dir string, s setup, batches []*train.Batch, denom int, a *lora.Adapter, cpu *train.Net, wantLoss []float64) {
	m2, a2 := build(t, dir, s)
	gpu, err := train.NewNet(tensor.CPU{}, m2, a2)
	ok(t, err)
	gpu.Checkpoint, gpu.DropoutSeed = true, 7
	attached, err := gpu.Accelerate("cuda")
	if !attached {
		t.Fatalf("Accelerate: %v", err)
	}
	t.Cleanup(gpu.Close)
	var gotLoss []float64
	for i, b := range batches {
		l, err := gpu.Step(b, denom)
		gotLoss = append(gotLoss, l)
		ok(t, err)
		// bf16 operands into the base's GEMMs (f32 on the CPU): ~1e-2
		// relative on what passes through them; the summed token loss
		// averages those errors: 1e-3 relative.
		if math.Abs(l-wantLoss[i]) > 1e-3*math.Abs(wantLoss[i]) || math.IsNaN(l) {
			t.Errorf("micro-batch %d: loss %.6f, CPU %.6f", i, l, wantLoss[i])
		}
	}
	got := gpu.Grads
	// Gradients as a whole: 1e-2 relative in L2 (the bf16 tolerance of
	// the issue); each module's too, so one wrong module cannot hide.
	rel := relL2(got, cpu.Grads)
	if rel > 1e-2 || math.IsNaN(rel) {
		t.Errorf("adapter gradients differ from the CPU's by %.2e relative (L2)", rel)
	}
	worst, where := 0.0, ""
	for l, ps := range a.Layers {
		for i, p := range ps {
			if p == nil {
				continue
			}
			for _, part := range []struct {
				name string
				v    []float32
			}{{"A", p.A}, {"B", p.B}} {
				off := offsetIn(a.Params, part.v)
				e := relL2(got[off:off+len(part.v)], cpu.Grads[off:off+len(part.v)])
				if e > worst || math.IsNaN(e) {
					worst, where = e, fmt.Sprintf("layer %d %s %s", l, lora.Modules[i], part.name)
				}
			}
		}
	}
	if worst > 3e-2 || math.IsNaN(worst) {
		t.Errorf("worst module gradient: %s, %.2e relative (L2)", where, worst)
	}
	t.Logf("loss %.6f (CPU %.6f); gradients %.2e relative, worst module %s %.2e", gotLoss[0], wantLoss[0], rel, where, worst)
}

// stepFixture writes s's random checkpoint and makes two micro-batches
// accumulated into one gradient: packed segments (37 + 21 + 1 tokens), then
// one sequence of 70; denom is their counted tokens.
func stepFixture(t *testing.T, s setup) (dir string, batches []*train.Batch, denom int) {
	dir = t.TempDir()
	ok(t, model.WriteRandom(dir, s.shape, tensor.BF16, 9))
	batches = []*train.Batch{batch(rng(5), s.shape.Vocab, 37, 21, 1), batch(rng(6), s.shape.Vocab, 70)}
	return dir, batches, batches[0].Counted() + batches[1].Counted()
}

// offsetIn is v's offset within params (v a view of it).
func offsetIn(params, v []float32) int {
	for i := range params {
		if &params[i] == &v[0] {
			return i
		}
	}
	panic("not a view")
}

// A short SFT run on the device tracks the same run on the CPU: 12 AdamW
// steps (on the host, over downloaded gradients) of a tiny Qwen2, the loss
// of each step within 2% of the CPU's, and the loss falling.
func TestShortRunTracksCPU(t *testing.T) {
	d := device(t)
	s := setups[0]
	dir := t.TempDir()
	ok(t, model.WriteRandom(dir, s.shape, tensor.BF16, 3))
	r := rng(11)
	b := batch(r, s.shape.Vocab, 48, 30)
	run := func(step func() (float64, error), params, grads []float32, sync func() error) []float64 {
		opt := train.NewAdamW(len(params), 0)
		var losses []float64
		for range 12 {
			clear(grads)
			l, err := step()
			ok(t, err)
			ok(t, sync())
			ok(t, opt.Update(params, grads, 3e-3))
			losses = append(losses, l/float64(b.Counted()))
		}
		return losses
	}
	m, a := build(t, dir, s)
	cpu, err := train.NewNet(tensor.CPU{}, m, a)
	ok(t, err)
	want := run(func() (float64, error) { return cpu.Step(b, b.Counted()) }, a.Params, cpu.Grads, func() error { return nil })

	m2, a2 := build(t, dir, s)
	gpu, err := devnet.New(d, m2, a2)
	ok(t, err)
	t.Cleanup(gpu.Close)
	gpu.SimpleAttention = true // the reference kernel in a whole run (TestStepParity runs the fast one)
	grads := make([]float32, len(a2.Params))
	got := run(func() (float64, error) {
		if err := gpu.ZeroGrads(); err != nil {
			return 0, err
		}
		if err := gpu.UploadParams(); err != nil {
			return 0, err
		}
		return gpu.Step(b, b.Counted(), nil)
	}, a2.Params, grads, func() error { return gpu.DownloadGrads(grads) })
	for i := range want {
		if math.Abs(got[i]-want[i]) > 0.02*want[i] || math.IsNaN(got[i]) {
			t.Errorf("step %d: loss %.5f, CPU %.5f", i+1, got[i], want[i])
		}
	}
	if got[len(got)-1] > 0.9*got[0] {
		t.Errorf("loss did not fall: %.4f → %.4f", got[0], got[len(got)-1])
	}
	t.Logf("loss per token, GPU: %.4f … %.4f; CPU: %.4f … %.4f", got[0], got[len(got)-1], want[0], want[len(want)-1])
}

// stepGrads runs batches through a device net of s's model (set up by
// configure), each site's dropout mask from a fixed key so two runs drop
// the same elements, and returns the summed loss and the gradients.
func stepGrads(t *testing.T, d *cuda.Device, dir string, s setup, batches []*train.Batch, denom int, configure func(*devnet.Net)) (float64, []float32) {
	m, a := build(t, dir, s)
	net, err := devnet.New(d, m, a)
	ok(t, err)
	defer net.Close()
	configure(net)
	var drop train.DropoutMask
	if s.dropout > 0 {
		drop = func(site int) (uint64, uint64, float32) {
			return uint64(site)*0x9e3779b97f4a7c15 + 1, uint64(s.dropout * math.MaxUint64), float32(1 / (1 - s.dropout))
		}
	}
	ok(t, net.ZeroGrads())
	loss := 0.0
	for _, b := range batches {
		l, err := net.Step(b, denom, drop)
		ok(t, err)
		loss += l
	}
	g := make([]float32, len(a.Params))
	ok(t, net.DownloadGrads(g))
	return loss, g
}

// gatedStep is stepGrads with env set to gate and the activations kept
// or recomputed, with how far count (a path's launch counter) moved.
func gatedStep(t *testing.T, d *cuda.Device, dir string, s setup, batches []*train.Batch, denom int, env, gate string, keep bool, count func() int64) (float64, []float32, int64) {
	t.Setenv(env, gate)
	n0 := count()
	loss, grads := stepGrads(t, d, dir, s, batches, denom, func(net *devnet.Net) { net.KeepActivations = keep })
	return loss, grads, count() - n0
}

// gateSweep runs s's step (stepFixture's micro-batches) with env's gate
// closed then open — recomputing, keeping every layer's activations in f32
// and kept compact — and checks what every such gate's test checks: count
// rose by want(keep, compact) with the gate open and not at all closed, and,
// open, the modes agree among themselves (kept in f32: the recomputing
// step's loss and gradients to 1e-6, the same kernels on the same values;
// compact: its loss, the same forward). each gets a mode's two steps for
// the gate's own checks.
func gateSweep(t *testing.T, d *cuda.Device, s setup, env string, count func() int64, want func(keep, compact bool) int64,
	each func(what string, l0, l1 float64, g0, g1 []float32)) {
	t.Helper()
	dir, batches, denom := stepFixture(t, s)
	var ref []float32
	var refLoss float64
	for _, c := range []struct {
		keep    bool
		compact string
	}{{false, "0"}, {true, "0"}, {true, "1"}} {
		t.Setenv("DISTILL_CUDA_KEEP_COMPACT", c.compact)
		l0, g0, n0 := gatedStep(t, d, dir, s, batches, denom, env, "0", c.keep, count)
		l1, g1, n1 := gatedStep(t, d, dir, s, batches, denom, env, "1", c.keep, count)
		what := fmt.Sprintf("keep %v, compact %s", c.keep, c.compact)
		if w := want(c.keep, c.compact == "1"); n0 != 0 || n1 != w {
			t.Errorf("%s: %d runs with the gate closed, %d open; want 0 and %d", what, n0, n1, w)
		}
		each(what, l0, l1, g0, g1)
		switch {
		case ref == nil:
			ref, refLoss = g1, l1
		case c.compact == "0":
			if l1 != refLoss || relL2(g1, ref) > 1e-6 {
				t.Errorf("%s: loss %v, gradients %.2e relative from the recomputing step's (%v)", what, l1, relL2(g1, ref), refLoss)
			}
		default:
			if math.Abs(l1-refLoss) > 1e-6*math.Abs(refLoss) {
				t.Errorf("%s: loss %v, the recomputing step's %v", what, l1, refLoss)
			}
		}
	}
}

// tracksTF32 is gateSweep's check for a path that takes an adapter
// product a TF32 GEMM took: where it never ran (ran false) the step the
// same bits; where it ran, the loss within lossTol relative of the GEMM's
// step (0: bit for bit — the forward untouched), the gradients within
// gradTol, and not the same bits (else the path did not run).
func tracksTF32(t *testing.T, ran bool, lossTol, gradTol float64) func(what string, l0, l1 float64, g0, g1 []float32) {
	return func(what string, l0, l1 float64, g0, g1 []float32) {
		t.Helper()
		same := l1 == l0 && slices.Equal(g1, g0)
		switch rel := relL2(g1, g0); {
		case !ran && !same:
			t.Errorf("%s: never ran, yet loss %v, %v and gradients %.2e apart", what, l1, l0, rel)
		case !ran:
		case same:
			t.Errorf("%s: loss and gradients bit for bit the TF32 products': did the path run?", what)
		case math.Abs(l1-l0) > lossTol*math.Abs(l0):
			t.Errorf("%s: loss %v, %v with the TF32 products", what, l1, l0)
		case rel > gradTol || rel != rel:
			t.Errorf("%s: gradients %.2e relative from the TF32 products'", what, rel)
		default:
			t.Logf("%s: loss %.6f / %.6f, gradients %.2e relative from the TF32 products'", what, l1, l0, rel)
		}
	}
}

// layerForwards is how many times stepFixture's two micro-batches run a
// layer's forward, each layer once and, recomputing (not keeping), every
// layer but the last again before its backward.
func layerForwards(s setup, keep bool) int64 {
	n := int64(2 * s.shape.Layers)
	if !keep {
		n += int64(2 * (s.shape.Layers - 1))
	}
	return n
}

// TestKeepActivationsMatchesRecompute: a step that keeps every layer's
// activations (no recomputed forward) gives the checkpointed step's loss
// and gradients — the same kernels on the same inputs, so equal to f32
// rounding (1e-6 relative) — for each setup (plain, grouped heads with
// biases, Qwen3's head norms, dropout), over two accumulated micro-batches.
func TestKeepActivationsMatchesRecompute(t *testing.T) {
	d := device(t)
	for _, s := range setups {
		t.Run(s.name, func(t *testing.T) {
			dir, batches, denom := stepFixture(t, s)
			run := func(keep, keepAttn bool) (float64, []float32) {
				return stepGrads(t, d, dir, s, batches, denom, func(net *devnet.Net) {
					net.KeepActivations, net.KeepAttention = keep, keepAttn
				})
			}
			// Kept in f32 (compactMLP off): the recomputing steps' results
			// bit for bit. Compact (g and up kept in bf16): the same
			// forward, so the same loss; the SwiGLU backward from the bf16
			// values moves gradients by bf16's rounding (2^-9 relative an
			// element): measured 1.9–3.6e-3 over the setups (2026-11-27).
			t.Setenv("DISTILL_CUDA_KEEP_COMPACT", "1")
			lc, gc := run(true, false)
			t.Setenv("DISTILL_CUDA_KEEP_COMPACT", "0")
			l1, g1 := run(true, false)
			if math.Abs(lc-l1) > 1e-6*math.Abs(l1) {
				t.Errorf("compact: loss %v, %v kept in f32", lc, l1)
			}
			if rel := relL2(gc, g1); rel > 8e-3 || rel != rel {
				t.Errorf("compact: gradients differ by %.2e relative from the f32-kept ones", rel)
			} else {
				t.Logf("compact: gradients %.2e relative from the f32-kept ones", rel)
			}
			// Recomputing the whole forward, only what the backward reads
			// (DISTILL_CUDA_RECOMPUTE_TRIM), and only the MLP side with the
			// attention side kept (KeepAttention, DISTILL_CUDA_KEEP_ATTN;
			// its recomputation is always trimmed, whatever trim says) —
			// its h1 one set, written again in the backward, where the
			// compact gate is open.
			t.Setenv("DISTILL_CUDA_KEEP_ATTN", "1")
			for _, c := range []struct {
				trim    string
				attn    bool
				compact string
			}{{"0", false, "0"}, {"1", false, "0"}, {"0", true, "0"}, {"0", true, "1"}} {
				t.Setenv("DISTILL_CUDA_RECOMPUTE_TRIM", c.trim)
				t.Setenv("DISTILL_CUDA_KEEP_COMPACT", c.compact)
				l0, g0 := run(false, c.attn)
				if math.Abs(l1-l0) > 1e-6*math.Abs(l0) {
					t.Errorf("%+v: loss %v kept, %v recomputed", c, l1, l0)
				}
				if rel := relL2(g1, g0); rel > 1e-6 || rel != rel {
					t.Errorf("%+v: gradients differ by %.2e relative", c, rel)
				}
			}
		})
	}
}
