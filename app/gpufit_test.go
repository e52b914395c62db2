package app

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"distill/core/lora"
	"distill/core/model"
	"distill/core/tensor"
	"distill/core/train"
	"distill/store"
)

// The micro-batch a device can hold (what fitDevice picks): the
// largest seq/f that fits, with accumulation ×f; nothing when even 16
// tokens (or a shorter configured seq_len) do not fit.
func TestFitMicroBatch(t *testing.T) {
	need := func(n int) int64 { return int64(n) * 1000 } // 1 KB a token
	for _, c := range []struct {
		seq, accum int
		free       int64
		tokens     int
		newAccum   int
		ok         bool
	}{
		{2048, 1, 3_000_000, 2048, 1, true}, // fits as asked
		{2048, 1, 2_047_999, 1024, 2, true}, // one token short: halve, accumulate 2
		{2048, 2, 800_000, 683, 6, true},    // 2048/3 = 683: accumulate 2×3
		{100, 1, 16_000, 0, 0, false},       // 100/6 = 17 tokens need 17 KB; 100/7 < 16: refused
		{64, 1, 16_000, 16, 4, true},
		{64, 1, 15_999, 0, 0, false},
		{8, 1, 8_000, 8, 1, true}, // a seq_len under 16 is tried as it is
		{8, 1, 7_999, 0, 0, false},
	} {
		tokens, accum, ok := fitMicroBatch(c.seq, c.accum, c.free, need)
		if tokens != c.tokens && c.ok || accum != c.newAccum && c.ok || ok != c.ok {
			t.Errorf("seq %d accum %d free %d: got %d tokens ×%d (%v), want %d ×%d (%v)",
				c.seq, c.accum, c.free, tokens, accum, ok, c.tokens, c.newAccum, c.ok)
		}
	}
}

// fakeGPU is an accelerator for the tests of the trainer's device path on a
// machine without one: its steps run on the CPU through a second Net over
// the same model and adapter (so the parameters are shared), and it reports
// a chosen amount of free memory.
type fakeGPU struct {
	net  *train.Net
	free int64
}

var fakeFree atomic.Int64 // what the next fakeGPU reports free

func init() {
	tensor.Register("fakegpu", func() (tensor.Backend, error) { return tensor.CPU{}, nil })
	train.RegisterAccelerated("fakegpu", func(m *model.Model, a *lora.Adapter) (train.Accelerated, error) {
		n, err := train.NewNet(tensor.CPU{}, m, a)
		return &fakeGPU{net: n, free: fakeFree.Load()}, err
	})
}

func (f *fakeGPU) Step(b *train.Batch, denom int, _ train.DropoutMask) (float64, error) {
	return f.net.Step(b, denom)
}
func (f *fakeGPU) ZeroGrads() error                  { f.net.ZeroGrads(); return nil }
func (f *fakeGPU) UploadParams() error               { return nil } // shared with the host's
func (f *fakeGPU) DownloadGrads(dst []float32) error { copy(dst, f.net.Grads); return nil }
func (f *fakeGPU) Close()                            {}
func (f *fakeGPU) FreeMemory() int64                 { return f.free }

// A GPU run whose seq_len does not fit the device's free memory (by the
// plan) trains with the longest micro-batch that does — never shorter than
// its longest example — and accumulates the difference, recording both in
// config.yaml; with too little memory even for the longest example, it is
// refused and told what would fit.
func TestGPURunFitsItsMicroBatch(t *testing.T) {
	m := tinyModel(t)
	cfg := defaultRunConfig("sft")
	cfg.Model, cfg.Data, cfg.Device = m, "../examples/tickets/train.jsonl", "fakegpu"
	cfg.SeqLen, cfg.Steps, cfg.CheckpointEvery, cfg.LoRA.Dropout = 512, 2, 0, 0
	need := func(n int) int64 {
		c := cfg
		c.SeqLen = n
		return planNeed(t, c)
	}
	db := runsDB(t)

	fakeFree.Store(need(256)) // 512 does not fit, 256 does
	job := &TrainJob{Cfg: cfg, ID: "fit", Dir: filepath.Join(t.TempDir(), "fit"), DB: db}
	if err := job.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	var saved RunConfig
	if err := readRunConfig(filepath.Join(job.Dir, "config.yaml"), &saved); err != nil {
		t.Fatal(err)
	}
	if saved.SeqLen != 256 || saved.Accum != 2 || saved.Device != "fakegpu" {
		t.Fatalf("recorded seq_len %d, accum %d, device %q; want 256, 2, fakegpu", saved.SeqLen, saved.Accum, saved.Device)
	}

	fakeFree.Store(need(16)) // shorter than the tickets' longest example
	job = &TrainJob{Cfg: cfg, ID: "nofit", Dir: filepath.Join(t.TempDir(), "nofit"), DB: db}
	err := job.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "the longest example has") || !strings.Contains(err.Error(), "--seq-len") {
		t.Fatalf("a micro-batch shorter than the longest example: %v", err)
	}
}

// DPO keeps each pair (the prompt twice, both answers) in one micro-batch:
// a fit shorter than the longest pair is refused as such — not shrunk to
// the longest single answer, which would fail packing after rewriting the
// run's config.
func TestGPUDPOFitKeepsPairsWhole(t *testing.T) {
	m := tinyModel(t)
	cfg := defaultRunConfig("dpo")
	cfg.Model, cfg.Data, cfg.Device = m, "../examples/preferences/train.jsonl", "fakegpu"
	cfg.SeqLen, cfg.Steps, cfg.CheckpointEvery, cfg.LoRA.Dropout = 1024, 1, 0, 0
	c := cfg
	c.SeqLen = 48 // longer than any one answer's segment, shorter than the longest pair
	fakeFree.Store(planNeed(t, c))
	job := &TrainJob{Cfg: cfg, ID: "dpofit", Dir: filepath.Join(t.TempDir(), "dpofit"), DB: runsDB(t)}
	err := job.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "the longest preference pair") {
		t.Fatalf("a micro-batch shorter than the longest pair: %v", err)
	}
}

// A GPU run asked to keep every layer's activations (grad_checkpointing:
// false) recomputes them instead, and says so, when keeping them would not
// fit the device at its micro-batch — before the micro-batch is shrunk —
// keeping each layer's attention side where that fits (keep_attention; this
// test binary has no device step, so train.DeviceKeepsAttention is unset:
// a device that would), and keeps them all when they fit. Asked for the
// attention side with too little room, it recomputes everything rather
// than shrink the micro-batch.
func TestGPURunRecomputesWhenKeepingDoesNotFit(t *testing.T) {
	m := tinyModel(t)
	cfg := defaultRunConfig("sft")
	cfg.Model, cfg.Data, cfg.Device = m, "../examples/tickets/train.jsonl", "fakegpu"
	cfg.SeqLen, cfg.Steps, cfg.CheckpointEvery, cfg.LoRA.Dropout = 256, 1, 0, 0
	cfg.GradCheckpointing = CheckpointOff
	need := func(checkpointing, attention bool) int64 {
		c := cfg
		c.GradCheckpointing, c.KeepAttention = map[bool]Checkpointing{true: CheckpointOn, false: CheckpointOff}[checkpointing], attention
		return planNeed(t, c)
	}
	if !(need(false, false) > need(true, true) && need(true, true) > need(true, false)) {
		t.Fatalf("keeping the activations plans %d bytes, their attention side %d, recomputing them %d",
			need(false, false), need(true, true), need(true, false))
	}
	db := runsDB(t)
	for _, c := range []struct {
		free                 int64
		recompute, attention bool
	}{{need(true, false), true, false}, {need(true, true), true, true}, {need(false, false), false, false}} {
		fakeFree.Store(c.free)
		var log strings.Builder
		job := &TrainJob{Cfg: cfg, ID: fmt.Sprint("keep", c.free), Dir: filepath.Join(t.TempDir(), "keep"), DB: db, Log: &log}
		if err := job.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		said := strings.Contains(log.String(), "recomputing them in the backward")
		saidAttn := strings.Contains(log.String(), "keeping each layer's attention side")
		if job.net.Checkpoint != c.recompute || job.net.KeepAttention != c.attention ||
			said != (c.recompute && !c.attention) || saidAttn != c.attention {
			t.Errorf("%d bytes free: recomputes %v, attention kept %v (said %v, %v), want %v, %v",
				c.free, job.net.Checkpoint, job.net.KeepAttention, said, saidAttn, c.recompute, c.attention)
		}
		var saved RunConfig
		if err := readRunConfig(filepath.Join(job.Dir, "config.yaml"), &saved); err != nil {
			t.Fatal(err)
		}
		if saved.SeqLen != 256 {
			t.Errorf("%d bytes free: seq_len %d recorded, want 256 (not shrunk)", c.free, saved.SeqLen)
		}
	}
	attn := cfg
	attn.GradCheckpointing, attn.KeepAttention = CheckpointOn, true
	fakeFree.Store(need(true, false))
	var log strings.Builder
	job := &TrainJob{Cfg: attn, ID: "keep-attn", Dir: filepath.Join(t.TempDir(), "keep-attn"), DB: db, Log: &log}
	if err := job.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if job.net.KeepAttention || !strings.Contains(log.String(), "recomputing every activation instead") {
		t.Errorf("keep_attention with room only to recompute: attention kept %v, log %q", job.net.KeepAttention, log.String())
	}
	var saved RunConfig
	if err := readRunConfig(filepath.Join(job.Dir, "config.yaml"), &saved); err != nil {
		t.Fatal(err)
	}
	if saved.SeqLen != 256 {
		t.Errorf("keep_attention with room only to recompute: seq_len %d recorded, want 256 (not shrunk)", saved.SeqLen)
	}
}

// planNeed is the device memory a run of c takes by its plan, as the fit
// reckons it (deviceNeed: the pool's rounding on top).
func planNeed(t *testing.T, c RunConfig) int64 {
	t.Helper()
	var w Workstation
	p, err := w.PlanRun(c)
	if err != nil {
		t.Fatal(err)
	}
	return (p.Activations + p.Workspace) * 9 / 8
}

// runsDB is a fresh runs database, closed at the test's end.
func runsDB(t *testing.T) *store.DB {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "runs.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// The fit's messages say when the free memory they quote is a limit's
// (DISTILL_CUDA_MEMORY), and name raising it as a fix.
func TestFreeNamesTheLimit(t *testing.T) {
	t.Setenv(memoryLimitEnv, "")
	if got := freeGB(2_500_000_000); got != "2.50 GB free" || raiseLimit() != "" {
		t.Errorf("no limit: %q, %q", got, raiseLimit())
	}
	t.Setenv(memoryLimitEnv, "6GiB")
	if got := freeGB(2_500_000_000); got != "2.50 GB free within DISTILL_CUDA_MEMORY=6GiB" || !strings.Contains(raiseLimit(), "raise DISTILL_CUDA_MEMORY") {
		t.Errorf("a limit: %q, %q", got, raiseLimit())
	}
}
