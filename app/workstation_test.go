package app

import (
	"context"
	"path/filepath"
	"testing"

	"distill/store"
)

func TestSendLatestDropsOldest(t *testing.T) {
	ch := make(chan Progress, 2)
	for i := 1; i <= 5; i++ {
		sendLatest(ch, Progress{Step: i})
	}
	if a, b := <-ch, <-ch; a.Step != 4 || b.Step != 5 {
		t.Fatalf("got steps %d, %d; want the latest two, 4 and 5", a.Step, b.Step)
	}
}

func TestWorkstationListAndDelete(t *testing.T) {
	dir := t.TempDir()
	w, err := OpenWorkstation(filepath.Join(dir, "db", "distill.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx := context.Background()
	best := 0.71
	runDir := filepath.Join(dir, "run-a")
	if err := w.db.CreateRun(ctx, store.Run{ID: "a", Method: "sft", BaseModel: "m", Dataset: "d",
		Status: store.StatusCompleted, Dir: runDir, BestMetric: &best, BestMetricName: "f1"}); err != nil {
		t.Fatal(err)
	}
	if err := w.db.CreateRun(ctx, store.Run{ID: "b", Method: "kd", Status: store.StatusRunning}); err != nil {
		t.Fatal(err)
	}
	rows, err := w.ListRuns()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 {
		t.Fatalf("ListRuns: %d rows, want 2", len(rows))
	}
	byID := map[string]RunRow{}
	for _, r := range rows {
		byID[r.ID] = r
	}
	if got := byID["a"]; got.Best != "f1 0.7100" || got.Status != "completed" || got.Active() {
		t.Errorf("run a: %+v", got)
	}
	if err := w.DeleteRun("b"); err == nil {
		t.Error("DeleteRun of a running run: no error")
	}
	if err := w.DeleteRun("a"); err != nil {
		t.Fatal(err)
	}
	if rows, _ := w.ListRuns(); len(rows) != 1 || rows[0].ID != "b" {
		t.Errorf("after delete: %+v", rows)
	}
}

func TestStartRunValidates(t *testing.T) {
	w, err := OpenWorkstation(filepath.Join(t.TempDir(), "distill.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.StartRun(RunConfig{Method: "sft"}); err == nil {
		t.Error("StartRun without model and data: no error")
	}
}

// TestStartRunStreamsProgress: a short SFT run started from the workstation
// streams every step (the buffer holds them all) and then a Done value, and
// the store has recorded the same steps.
func TestStartRunStreamsProgress(t *testing.T) {
	w, cfg := tinyWorkstation(t, "../examples/chat/train.jsonl", 40, 4, 256, 1e-3)
	ch, err := w.StartRun(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var steps []int
	var last Progress
	var plan int64
	logged, vals := 0, 0
	for p := range ch {
		if p.Log != "" {
			logged++
		}
		if p.Validation && p.ValLoss > 0 {
			vals++
		}
		if p.IsStep() {
			steps = append(steps, p.Step)
			if p.Total != 4 || p.Loss <= 0 || p.Plan <= 0 {
				t.Errorf("step %d: total %d, loss %g, plan %d bytes", p.Step, p.Total, p.Loss, p.Plan)
			}
			plan = p.Plan
		}
		last = p
	}
	if !last.Done || last.Err != nil {
		t.Fatalf("last value: %+v", last)
	}
	if len(steps) != 4 || steps[3] != 4 {
		t.Fatalf("steps %v, want 1..4", steps)
	}
	if logged == 0 || vals == 0 {
		t.Errorf("the channel carried %d log lines and %d validations, want some of each", logged, vals)
	}
	rows, err := w.ListRuns()
	if err != nil || len(rows) != 1 || rows[0].Status != "completed" || rows[0].ID != last.RunID {
		t.Fatalf("ListRuns: %+v, %v", rows, err)
	}
	hist, err := w.RunHistory(last.RunID)
	if err != nil || len(hist) != 4 || hist[3].Step != 4 || hist[3].Loss <= 0 || hist[3].Plan != plan {
		t.Fatalf("RunHistory: %+v, %v (plan %d)", hist, err, plan)
	}
	info, err := w.RunInfo(last.RunID)
	if err != nil || info.Method != "sft" || info.Base != cfg.Model || info.Rank != cfg.LoRA.R || info.Quant != cfg.Quant || info.Rank == 0 {
		t.Fatalf("RunInfo: %+v, %v; the run's config is %+v", info, err, cfg)
	}
}

// TestStopThenResume: a run stopped from the workstation writes a
// checkpoint and is marked canceled; ResumeRun continues it from that
// checkpoint to its last step, and the run ends completed.
func TestStopThenResume(t *testing.T) {
	w, cfg := tinyWorkstation(t, "../examples/chat/train.jsonl", 40, 8, 256, 1e-3)
	id, ch, err := w.LaunchRun(cfg)
	if err != nil {
		t.Fatal(err)
	}
	stoppedAt := 0
	var last Progress
	for p := range ch {
		if p.IsStep() && p.Step == 2 && stoppedAt == 0 {
			stoppedAt = p.Step
			if !w.StopRun(id) {
				t.Fatal("StopRun: the run is not training here")
			}
		}
		last = p
	}
	if last.Err != nil {
		t.Fatal(last.Err)
	}
	rows, _ := w.ListRuns()
	if len(rows) != 1 || rows[0].Status != "canceled" {
		t.Fatalf("after stop: %+v", rows)
	}
	if _, err := w.ResumeRun("nope"); err == nil {
		t.Error("ResumeRun of an unknown run: no error")
	}
	ch, err = w.ResumeRun(id)
	if err != nil {
		t.Fatal(err)
	}
	first := 0
	for p := range ch {
		if p.IsStep() && first == 0 {
			first = p.Step
		}
		last = p
	}
	if last.Err != nil {
		t.Fatal(last.Err)
	}
	if first <= stoppedAt || first > 8 {
		t.Errorf("resumed at step %d after stopping at %d", first, stoppedAt)
	}
	rows, _ = w.ListRuns()
	if rows[0].Status != "completed" {
		t.Fatalf("after resume: %+v", rows[0])
	}
	if _, err := w.ResumeRun(id); err == nil {
		t.Error("ResumeRun of a completed run: no error")
	}
}

// tinyWorkstation is a workstation over a fresh database and an SFT config
// for the tiny model on the first rows of data (LoRA r 4, its own run
// folder), for the tests to adjust.
func tinyWorkstation(t *testing.T, data string, rows, steps, seqLen int, lr float64) (*Workstation, RunConfig) {
	t.Helper()
	m := tinyModel(t)
	w, err := OpenWorkstation(filepath.Join(t.TempDir(), "distill.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	cfg := defaultRunConfig("sft")
	cfg.Model, cfg.Data, cfg.Steps, cfg.SeqLen, cfg.LR = m, smallData(t, data, rows), steps, seqLen, lr
	cfg.LoRA.R, cfg.Out = 4, filepath.Join(t.TempDir(), "run")
	return w, cfg
}
