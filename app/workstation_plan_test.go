package app

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"distill/core/lora"
	"distill/core/model"
	"distill/core/quant"
	"distill/core/tensor"
	"distill/core/train"
)

// PlanRun's plan is the net's as a run builds it; under grad_checkpointing
// auto on the CPU, keeping the activations where the machine's available
// memory lets the run (half of it at least for what they add), else
// recomputing them.
func TestPlanRunMatchesPlanMemory(t *testing.T) {
	defer func(f func() int64) { hostAvailable = f }(hostAvailable)
	for _, avail := range []int64{1 << 40, 0} {
		hostAvailable = func() int64 { return avail }
		planRunMatchesPlanMemory(t, avail == 0)
	}
}

func planRunMatchesPlanMemory(t *testing.T, recompute bool) {
	dir := tinyModel(t)
	cfg := defaultRunConfig("sft")
	cfg.Model, cfg.SeqLen = dir, 64
	var w Workstation
	got, err := w.PlanRun(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got.Recomputes != recompute {
		t.Errorf("grad_checkpointing auto plans recomputing %v, want %v", got.Recomputes, recompute)
	}
	// the net exactly as TrainJob.load builds it
	be, err := tensor.Open(resolveDevice(cfg.Device))
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := quant.QuantizeModel(m, cfg.Quant, cfg.DoubleQuant, false); err != nil {
		t.Fatal(err)
	}
	a, err := lora.NewFor(m, lora.Config{R: cfg.LoRA.R, Alpha: cfg.LoRA.Alpha, Dropout: cfg.LoRA.Dropout,
		Targets: strings.Split(cfg.LoRA.Targets, ","), BaseModel: dir})
	if err != nil {
		t.Fatal(err)
	}
	net, err := train.NewNet(be, m, a)
	if err != nil {
		t.Fatal(err)
	}
	net.Checkpoint = recompute
	want := net.PlanMemory(cfg.SeqLen, m.HeldBytes())
	if got.Total != want.Total() || got.Total <= 0 {
		t.Errorf("PlanRun total %d, train.PlanMemory %d", got.Total, want.Total())
	}
	if got.Weights+got.Adapter+got.Grads+got.Optimizer+got.Activations+got.Workspace+got.Runtime != got.Total {
		t.Errorf("parts do not add up to the total: %+v", got)
	}
	cfg.LR = 1e-3 // a field the plan does not depend on: replanned from the remembered size
	if again, err := w.PlanRun(cfg); err != nil || again != got {
		t.Errorf("replanning: %+v, %v; want %+v", again, err, got)
	}
	if _, err := w.PlanRun(RunConfig{Model: dir + "-missing", SeqLen: 64, Quant: "none"}); err == nil {
		t.Error("a missing model folder planned without error")
	}
}

func TestDataInfo(t *testing.T) {
	var w Workstation
	info, err := w.DataInfo("../examples/tickets/train.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	if info.Format != "classification" || info.Rows != 600 || len(info.Labels) != 3 {
		t.Fatalf("%+v", info)
	}
	sum := 0.0
	for _, s := range info.Shares {
		sum += s
	}
	if sum < 0.999 || sum > 1.001 {
		t.Errorf("shares sum to %g", sum)
	}
	bad := filepath.Join(t.TempDir(), "bad.jsonl")
	if err := os.WriteFile(bad, []byte("{\"text\": \"a\", \"label\": \"x\"}\n{not json\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if info, err := w.DataInfo(bad); err == nil && info.Skipped == 0 {
		t.Errorf("a broken line went unnoticed: %+v", info)
	}
}

// A logit-KD teacher with another vocabulary is refused by the plan, as a
// FieldError on kd.teacher that points to traces.
func TestPlanRefusesAForeignTeacher(t *testing.T) {
	student := tinyModel(t)
	teacher := filepath.Join(t.TempDir(), "teacher")
	if err := model.WriteRandom(teacher, model.Shapes["demo"], tensor.F32, 3); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"tokenizer.json", "tokenizer_config.json"} {
		if err := copyFile(filepath.Join(npmModels, "tokenizer-llama3", "models", f), filepath.Join(teacher, f)); err != nil {
			t.Fatal(err)
		}
	}
	var w Workstation
	cfg := defaultRunConfig("kd")
	cfg.Model, cfg.Data, cfg.KD.Teacher = student, "../examples/tickets/train.jsonl", teacher
	_, err := w.PlanRun(cfg)
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "kd.teacher" || !strings.Contains(err.Error(), "distill kd traces") {
		t.Fatalf("err %v", err)
	}
	cfg.KD.Teacher = student // the same vocabulary: planned, the teacher held too
	p, err := w.PlanRun(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if p.Teacher <= 0 || p.Total != p.Weights+p.Teacher+p.Adapter+p.Grads+p.Optimizer+p.Activations+p.Workspace+p.Runtime {
		t.Errorf("plan %+v", p)
	}
}
