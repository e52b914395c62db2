package train

import (
	"testing"

	"distill/core/lora"
	"distill/core/model"
	"distill/core/quant"
	"distill/core/tensor"
)

// randomModel writes and loads a random checkpoint of shape s, NF4 when asked.
func randomModel(t *testing.T, s model.Shape, nf4 bool) *model.Model {
	t.Helper()
	dir := t.TempDir()
	if err := model.WriteRandom(dir, s, tensor.BF16, 4); err != nil {
		t.Fatal(err)
	}
	m, err := model.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	if nf4 {
		if _, err := quant.QuantizeModel(m, "nf4", true, false); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

var planShape = model.Shape{Arch: "Qwen2ForCausalLM", Hidden: 256, Intermediate: 704, Layers: 3, Heads: 4, KVHeads: 2,
	Vocab: 5000, Tied: true, RopeTheta: 1e6, RMSNormEps: 1e-6, MaxPositions: 4096, BOS: 1, EOS: 2}

// The GPU plan's arithmetic where no GPU is (cuda/devnet's tests hold it to
// the device pool's measured peak): checkpoints (L+1)·n·D f32, a workspace
// that grows with n, and logit KD's teacher — its weights, and either its
// forward pass or its hidden states beside the student's step, whichever
// is larger.
func TestDevicePlanKD(t *testing.T) {
	m, nt := planNet(t)
	const n = 512
	p := nt.DevicePlan(n, m.HeldBytes(), true)
	if want := int64(planShape.Layers+1) * n * int64(planShape.Hidden) * 4; p.Activations != want || p.Teacher != 0 {
		t.Errorf("activations %d, want %d; teacher %d", p.Activations, want, p.Teacher)
	}
	if p2 := nt.DevicePlan(2*n, m.HeldBytes(), true); p2.Workspace <= p.Workspace {
		t.Errorf("workspace %d at %d tokens, %d at %d", p2.Workspace, 2*n, p.Workspace, n)
	}
	// The moments: on the host, or on the device when a build's device step
	// keeps the optimizer there (asked with no device attached).
	if p.Optimizer != 0 {
		t.Errorf("optimizer on the device: %d bytes, want 0 (its moments stay on the host)", p.Optimizer)
	}
	was := DeviceKeepsOptimizer
	DeviceKeepsOptimizer = func() bool { return true }
	po := nt.DevicePlan(n, m.HeldBytes(), true)
	DeviceKeepsOptimizer = was
	if po.Optimizer != 2*p.Adapter || po.Total() != p.Total()+2*p.Adapter {
		t.Errorf("optimizer on the device: %d bytes (total %d), want %d more than %d", po.Optimizer, po.Total(), 2*p.Adapter, p.Total())
	}

	ts := planShape
	ts.Hidden, ts.Intermediate, ts.Heads, ts.Layers = 512, 1408, 8, 2
	teacher := randomModel(t, ts, true)
	k := nt.DeviceKDPlan(n, m.HeldBytes(), true, teacher, teacher.HeldBytes(), true)
	// A tied bf16 head needs no copy: the teacher's weights are as held.
	if k.Teacher != teacher.HeldBytes() || k.Weights != p.Weights || k.Activations != p.Activations {
		t.Errorf("KD plan: teacher %d (held %d), weights %d (%d), activations %d (%d)",
			k.Teacher, teacher.HeldBytes(), k.Weights, p.Weights, k.Activations, p.Activations)
	}
	hidden := int64(n * ts.Hidden * 4)
	if k.Workspace < p.Workspace+hidden || k.Total() != p.Total()+k.Teacher+k.Workspace-p.Workspace {
		t.Errorf("KD workspace %d, SFT %d + the teacher's hidden states %d; totals %d, %d", k.Workspace, p.Workspace, hidden, k.Total(), p.Total())
	}

	// A teacher far wider than the student: its forward pass is the peak.
	ts.Hidden, ts.Intermediate, ts.Heads, ts.Layers = 2048, 8192, 16, 2
	big := randomModel(t, ts, true)
	kb := nt.DeviceKDPlan(n, m.HeldBytes(), true, big, big.HeldBytes(), true)
	fwd := devicePass{m: big, n: n}.bytes(true) + int64(n*ts.Hidden*4)
	if kb.Workspace != fwd-kb.Activations {
		t.Errorf("wide teacher: workspace %d, want its forward pass %d less the student's checkpoints %d", kb.Workspace, fwd, kb.Activations)
	}
}

// TestDevicePlanKeepsActivations: without checkpointing the device keeps
// every layer's activations — the plan's workspace grows by (layers − 1)
// sets of one layer's, each at least the q, k, v, attention, MLP and norm
// buffers of n tokens — and with it the plan is what it was. Kept compact
// (DeviceKeepsCompact: g and up in bf16 a layer, n·F f32's worth, beside one
// shared f32 set of g, up, a, h1 and h2), it holds (2·layers − 3)·n·F +
// 2·(layers − 1)·n·D f32 less.
func TestDevicePlanKeepsActivations(t *testing.T) {
	m, nt := planNet(t)
	const n = 256
	defer func(f func() bool) { DeviceKeepsCompact = f }(DeviceKeepsCompact)
	DeviceKeepsCompact = func() bool { return false }
	nt.Checkpoint = true
	re := nt.DevicePlan(n, m.HeldBytes(), true)
	nt.Checkpoint = false
	keep := nt.DevicePlan(n, m.HeldBytes(), true)
	DeviceKeepsCompact = func() bool { return true }
	compact := nt.DevicePlan(n, m.HeldBytes(), true)
	c, L := m.Config, int64(planShape.Layers)
	D, F, qO, kvO := int64(c.HiddenSize), int64(c.IntermediateSize), int64(c.NumHeads*c.HeadDim), int64(c.NumKVHeads*c.HeadDim)
	floor := 4 * n * (2*D + 2*qO + 2*kvO + D + 3*F) // h1, h2, q, att, k, v, xMid, g, up, a
	grow := keep.Workspace - re.Workspace
	if grow%(L-1) != 0 || grow/(L-1) < floor || grow/(L-1) > 2*floor {
		t.Errorf("keeping every layer's activations adds %d bytes over %d layers; want (layers−1)·[%d, %d]", grow, L, floor, 2*floor)
	}
	if keep.Activations != re.Activations || keep.Weights != re.Weights {
		t.Errorf("checkpoints or weights changed: %+v vs %+v", keep, re)
	}
	if saved, want := keep.Workspace-compact.Workspace, 4*n*((2*L-3)*F+2*(L-1)*D); saved != want {
		t.Errorf("compact saves %d bytes, want 4·n·((2·layers − 3)·F + 2·(layers − 1)·D) = %d", saved, want)
	}
	nt.Checkpoint = true
	if again := nt.DevicePlan(n, m.HeldBytes(), true); again != re {
		t.Errorf("recomputing, compact changed the plan: %+v vs %+v", again, re)
	}
}

// TestDevicePlanKeepsAttention: recomputing with the attention side kept
// (KeepAttention) adds (layers − 1) sets of that side — h1, q, k, v, att,
// xMid and more, none of the MLP's n·F buffers — so it falls between
// recomputing everything and keeping everything; without Checkpoint it
// changes nothing.
func TestDevicePlanKeepsAttention(t *testing.T) {
	m, nt := planNet(t)
	const n = 256
	nt.Checkpoint = true
	re := nt.DevicePlan(n, m.HeldBytes(), true)
	nt.KeepAttention = true
	attn := nt.DevicePlan(n, m.HeldBytes(), true)
	nt.Checkpoint = false
	keep := nt.DevicePlan(n, m.HeldBytes(), true)
	nt.KeepAttention = false
	keep0 := nt.DevicePlan(n, m.HeldBytes(), true)
	c, L := m.Config, int64(planShape.Layers)
	D, F, qO, kvO := int64(c.HiddenSize), int64(c.IntermediateSize), int64(c.NumHeads*c.HeadDim), int64(c.NumKVHeads*c.HeadDim)
	floor := 4 * n * (D + 2*qO + 2*kvO) // xMid, q, att, k, v (h1 one set, written again: DeviceKeepsCompact)
	grow := attn.Workspace - re.Workspace
	if grow%(L-1) != 0 || grow/(L-1) < floor || grow/(L-1) >= 4*n*3*F+floor {
		t.Errorf("keeping the attention side adds %d bytes over %d layers; want (layers−1)·[%d, %d)", grow, L, floor, 4*n*3*F+floor)
	}
	if !(re.Workspace < attn.Workspace && attn.Workspace < keep.Workspace) {
		t.Errorf("workspace: recompute %d, attention kept %d, all kept %d: want increasing", re.Workspace, attn.Workspace, keep.Workspace)
	}
	if keep != keep0 {
		t.Errorf("KeepAttention without Checkpoint changed the plan: %+v vs %+v", keep, keep0)
	}
	// Each layer's own h1 where the device does not keep compact.
	defer func(f func() bool) { DeviceKeepsCompact = f }(DeviceKeepsCompact)
	DeviceKeepsCompact = func() bool { return false }
	nt.Checkpoint, nt.KeepAttention = true, true
	if full := nt.DevicePlan(n, m.HeldBytes(), true); full.Workspace-attn.Workspace != (L-1)*4*n*D {
		t.Errorf("attention side kept with each layer's h1: workspace %d, %d with one shared; want (layers−1)·4·n·D = %d more",
			full.Workspace, attn.Workspace, (L-1)*4*n*D)
	}
}

// planNet is a random planShape model (NF4) with a rank-8 adapter on every
// module, as a Net.
func planNet(t *testing.T) (*model.Model, *Net) {
	t.Helper()
	m := randomModel(t, planShape, true)
	a, err := lora.NewFor(m, lora.Config{R: 8, Alpha: 16, Targets: lora.Modules})
	if err != nil {
		t.Fatal(err)
	}
	nt, err := NewNet(tensor.CPU{}, m, a)
	if err != nil {
		t.Fatal(err)
	}
	return m, nt
}

// The flash backward's split scratch (DeviceSplitKV): each split's shares
// of dk and dv, and the second halves' dq — which the fused dq
// (DeviceFusedDQ, with async tiles) leaves out, having no dq kernel to
// split.
func TestDevicePlanSplitScratch(t *testing.T) {
	m, nt := planNet(t)
	if !model.FlashAttention(m.Config.HeadDim) {
		t.Skip("no flash attention at this head size")
	}
	const n = 256
	defer func(s, a, f func() bool) { DeviceSplitKV, DeviceAsyncTiles, DeviceFusedDQ = s, a, f }(DeviceSplitKV, DeviceAsyncTiles, DeviceFusedDQ)
	plan := func(split, async, fused bool) int64 {
		DeviceSplitKV = func() bool { return split }
		DeviceAsyncTiles = func() bool { return async }
		DeviceFusedDQ = func() bool { return fused }
		return nt.DevicePlan(n, m.HeldBytes(), true).Workspace
	}
	c := m.Config
	share := int64(4 * n * c.NumHeads * c.HeadDim) // n·heads·hd floats
	for _, async := range []bool{false, true} {
		base := plan(false, async, false)
		if got := plan(true, async, false) - base; got != 4*share-2*share+share { // grouped heads: 2 shares unsplit
			t.Errorf("async %v: the split adds %d bytes, want %d (4 shares and dq's, less the 2 shares of grouped heads)", async, got, 3*share)
		}
		want := 3 * share
		if async { // the fused dq: no second halves' dq
			want = 2 * share
		}
		if got := plan(true, async, true) - base; got != want {
			t.Errorf("async %v, fused dq: the split adds %d bytes, want %d", async, got, want)
		}
	}
}
