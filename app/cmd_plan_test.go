package app

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"distill/core/train"
)

// distill plan prints the plan a run would print, and the longest seq_len
// within a budget: that length fits it and one more token does not.
func TestPlanCommand(t *testing.T) {
	m := tinyModel(t)
	code, out, stderr := run("plan", "sft", "--model", m, "--memory", "100MB", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var r struct {
		Plan    PlanRow `json:"plan"`
		Memory  int64   `json:"memory"`
		Longest int     `json:"longest_seq_len"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if r.Memory != 100e6 || r.Longest < 16 || r.Plan.Total <= 0 {
		t.Fatalf("%s", out)
	}
	var w Workstation
	cfg := defaultRunConfig("sft")
	cfg.Model, cfg.SeqLen = m, r.Longest
	cfg.GradCheckpointing = CheckpointOn // grad_checkpointing auto's longest is a recomputing run's
	at, err := w.PlanRun(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.SeqLen++
	over, err := w.PlanRun(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if at.Total > r.Memory || (over.Total <= r.Memory && r.Longest < 4096) {
		t.Errorf("seq %d plans %d, seq %d plans %d, budget %d", r.Longest, at.Total, r.Longest+1, over.Total, r.Memory)
	}
	for _, bad := range [][]string{{"plan"}, {"plan", "sft"}, {"plan", "sft", "--model", m, "--memory", "lots"}} {
		if code, _, _ := run(bad...); code == 0 {
			t.Errorf("%v: exit 0", bad)
		}
	}
}

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{"8GB": 8e9, "3.5GiB": 3.5 * (1 << 30), "512mb": 512e6, "1e9": 1e9, "100 KiB": 102400} {
		if got, err := parseBytes(in); err != nil || got != want {
			t.Errorf("%s: %d %v, want %d", in, got, err, want)
		}
	}
	// NaN slipped past x <= 0; ±Inf and sizes past 2^63 do not fit an int64.
	for _, in := range []string{"", "GB", "-1GB", "eight", "NaNGB", "NaN", "InfGB", "+Inf", "-Inf", "0", "0.1B", "1e30TB", "9.3e18"} {
		if _, err := parseBytes(in); err == nil {
			t.Errorf("%q: no error", in)
		}
	}
}

// With --device cuda a LoRA run's plan is the GPU's (cuda/devnet's layout,
// checked against the device pool on a GPU by cuda/devnet's tests): the
// CUDA context as runtime, no optimizer moments on the device, layer inputs
// as activations. A build without CUDA plans it all the same.
func TestPlanCommandGPU(t *testing.T) {
	m := tinyModel(t)
	code, out, stderr := run("plan", "sft", "--model", m, "--device", "cuda", "--seq-len", "64", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var r struct {
		Plan PlanRow `json:"plan"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	p := r.Plan
	if !p.GPU || p.Runtime != train.DeviceRuntime || p.Optimizer != 0 || p.Workspace <= 0 || p.Activations <= 0 ||
		p.Total != p.Weights+p.Adapter+p.Grads+p.Activations+p.Workspace+p.Runtime {
		t.Fatalf("GPU plan %+v", p)
	}
	code, out, _ = run("plan", "dpo", "--model", m, "--device", "cuda", "--seq-len", "64", "--json")
	if code != 0 || json.Unmarshal([]byte(out), &r) != nil || !r.Plan.GPU || r.Plan.Workspace <= 0 {
		t.Fatalf("DPO on cuda plans the device: exit %d, %s", code, out)
	}
	// Logit KD holds the teacher on the device too: its weights once, its
	// hidden states beside the student's step.
	code, out, _ = run("plan", "kd", "--model", m, "--teacher", m, "--device", "cuda", "--seq-len", "64", "--json")
	if code != 0 || json.Unmarshal([]byte(out), &r) != nil {
		t.Fatalf("KD plan: exit %d, %s", code, out)
	}
	k := r.Plan
	if !k.GPU || k.Teacher <= 0 || k.Workspace <= p.Workspace ||
		k.Total != k.Weights+k.Teacher+k.Adapter+k.Grads+k.Activations+k.Workspace+k.Runtime {
		t.Fatalf("KD on cuda: plan %+v (SFT's workspace %d)", k, p.Workspace)
	}
	// A Q8 teacher is not uploaded: those steps go op by op, planned on the host.
	code, out, _ = run("plan", "kd", "--model", m, "--teacher", m, "--teacher-quant", "q8", "--device", "cuda", "--seq-len", "64", "--json")
	if code != 0 || json.Unmarshal([]byte(out), &r) != nil || r.Plan.GPU {
		t.Fatalf("KD from a Q8 teacher on cuda plans host memory (op by op): exit %d, %s", code, out)
	}
}

// The spelling: --method, --seq N --batch B plans B sequences of N
// tokens packed into one micro-batch (B·N tokens: what --seq-len B·N
// trains), and with --memory the largest batch of N-token sequences.
func TestPlanSeqAndBatch(t *testing.T) {
	m := tinyModel(t)
	var a, b struct {
		SeqLen       int     `json:"seq_len"`
		Batch        int     `json:"batch"`
		Longest      int     `json:"longest_seq_len"`
		LargestBatch int     `json:"largest_batch"`
		Plan         PlanRow `json:"plan"`
	}
	code, out, stderr := run("plan", "--method", "sft", "--model", m, "--seq", "64", "--batch", "4", "--memory", "1GB", "--json")
	if code != 0 || json.Unmarshal([]byte(out), &a) != nil {
		t.Fatalf("plan --seq 64 --batch 4: exit %d %s %s", code, out, stderr)
	}
	code, out, _ = run("plan", "sft", "--model", m, "--seq-len", "256", "--json")
	if code != 0 || json.Unmarshal([]byte(out), &b) != nil {
		t.Fatalf("plan --seq-len 256: exit %d %s", code, out)
	}
	if a.SeqLen != 256 || a.Batch != 4 || a.Plan != b.Plan {
		t.Errorf("4 × 64 tokens: seq_len %d, batch %d, plan %+v; --seq-len 256's plan %+v", a.SeqLen, a.Batch, a.Plan, b.Plan)
	}
	if a.Longest < 64 || a.LargestBatch != a.Longest/64 {
		t.Errorf("within 1GB: longest seq_len %d, largest batch %d", a.Longest, a.LargestBatch)
	}
	// train holds a micro-batch to the model's context (4096 here), so the
	// plan does too: the largest batch is the context's, and a batch over
	// it is refused with the one that fits.
	code, out, _ = run("plan", "sft", "--model", m, "--seq", "64", "--batch", "4", "--memory", "100GB", "--json")
	if code != 0 || json.Unmarshal([]byte(out), &a) != nil || a.LargestBatch != 4096/64 {
		t.Errorf("within 100GB: exit %d, largest batch %d (the context caps it at %d)", code, a.LargestBatch, 4096/64)
	}
	if code, _, stderr := run("plan", "sft", "--model", m, "--seq", "1024", "--batch", "8"); code == 0 || !strings.Contains(stderr, "--batch 4 or less") {
		t.Errorf("plan --seq 1024 --batch 8 over a 4096-token context: exit %d %q", code, stderr)
	}
	if code, _, stderr := run("plan", "sft", "--model", m, "--seq", "8192"); code == 0 || !strings.Contains(stderr, "context of 4096") {
		t.Errorf("plan --seq 8192 over a 4096-token context: exit %d %q", code, stderr)
	}
	if code, _, stderr := run("plan", "--model", m); code == 0 || !strings.Contains(stderr, "--method") {
		t.Errorf("plan without a method: exit %d %q", code, stderr)
	}
	if code, _, stderr := run("plan", "sft", "--model", m, "--batch", "0"); code == 0 || !strings.Contains(stderr, "--batch") {
		t.Errorf("plan --batch 0: exit %d %q", code, stderr)
	}
}

// The GPU plan's heading says where the optimizer's moments are: on the
// host, or (a build whose device keeps them, DeviceKeepsOptimizer) on the
// device, where the plan counts them.
func TestPlanCommandSaysWhereTheMomentsAre(t *testing.T) {
	m := tinyModel(t)
	defer func(f func() bool) { train.DeviceKeepsOptimizer = f }(train.DeviceKeepsOptimizer)
	for _, onDevice := range []bool{false, true} {
		train.DeviceKeepsOptimizer = func() bool { return onDevice }
		code, out, stderr := run("plan", "sft", "--model", m, "--device", "cuda", "--seq-len", "64")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		head, _, _ := strings.Cut(out, "\n")
		want := "the optimizer's moments stay on the host"
		if onDevice {
			want = "device-resident steps and optimizer"
		}
		if !strings.Contains(head, want) || strings.Contains(out, "optimizer (AdamW)") != onDevice {
			t.Errorf("moments on the device %v:\n%s", onDevice, out)
		}
	}
}

// A GPU plan lists the three ways to hold activations, least memory first
// (recomputing is the default config's own total), and against --memory
// names the fastest that fits: keeping every layer where the budget allows
// it, recomputing where only that fits.
func TestPlanCommandActivationModes(t *testing.T) {
	m := tinyModel(t)
	planJSON := func() (r struct {
		Plan  PlanRow          `json:"plan"`
		Modes []activationMode `json:"activation_modes"`
	}) {
		code, out, stderr := run("plan", "sft", "--model", m, "--device", "cuda", "--seq-len", "64", "--json")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	r := planJSON()
	if len(r.Modes) != 3 || r.Modes[0].Total != r.Plan.Total || !(r.Modes[0].Total < r.Modes[1].Total && r.Modes[1].Total < r.Modes[2].Total) {
		t.Fatalf("modes %+v (plan total %d)", r.Modes, r.Plan.Total)
	}
	for _, c := range []struct {
		budget int64
		want   string
	}{{r.Modes[2].Total, "fastest within %s: grad_checkpointing: false"}, {r.Modes[1].Total - 1, "fastest within %s: grad_checkpointing: true, keep_attention: false\n"}} {
		mem := fmt.Sprintf("%dB", c.budget)
		code, out, stderr := run("plan", "sft", "--model", m, "--device", "cuda", "--seq-len", "64", "--memory", mem)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		if want := fmt.Sprintf(c.want, mem); !strings.Contains(out, want) {
			t.Errorf("--memory %s: no %q in\n%s", mem, want, out)
		}
	}
	// A build that does not keep the attention side apart: that way plans
	// as recomputing, and is not offered.
	defer func(f func() bool) { train.DeviceKeepsAttention = f }(train.DeviceKeepsAttention)
	train.DeviceKeepsAttention = func() bool { return false }
	if r = planJSON(); len(r.Modes) != 2 || r.Modes[0].Mode != "recompute" || r.Modes[1].Mode != "keep" {
		t.Errorf("keep_attention off: modes %+v, want recompute and keep", r.Modes)
	}
}
