package app

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestEvaluateRunOnHeldOutRows: a classification run that held out part of
// its data keeps those rows (as the source's own lines), and EvaluateRun
// scores the run's adapter on exactly them and records a report with a
// confusion matrix that the Evals view can open.
func TestEvaluateRunOnHeldOutRows(t *testing.T) {
	m := tinyModel(t)
	w, err := OpenWorkstation(filepath.Join(t.TempDir(), "distill.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	data := smallData(t, "../examples/tickets/train.jsonl", 60)
	cfg := defaultRunConfig("sft")
	cfg.Model, cfg.Data, cfg.Steps, cfg.SeqLen, cfg.LR, cfg.ValFraction = m, data, 2, 128, 1e-3, 0.2
	cfg.LoRA.R, cfg.Out = 4, filepath.Join(t.TempDir(), "run")
	ch, err := w.StartRun(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var last Progress
	for p := range ch {
		last = p
	}
	if last.Err != nil {
		t.Fatal(last.Err)
	}
	if _, err := w.EvaluateRun("no-such-run"); err == nil {
		t.Error("EvaluateRun of an unknown run: no error")
	}
	held := readLines(t, filepath.Join(cfg.Out, heldOutFile))
	src := map[string]bool{}
	for _, l := range readLines(t, data) {
		src[l] = true
	}
	if len(held) != 12 {
		t.Fatalf("held out %d rows, want 12 (20%% of 60)", len(held))
	}
	for _, l := range held {
		if !src[l] {
			t.Fatalf("held-out line not in the training file: %s", l)
		}
	}
	row, err := w.EvaluateRun(last.RunID)
	if err != nil {
		t.Fatal(err)
	}
	if row.Run != last.RunID || row.Kind != "classification" || !strings.HasPrefix(row.ReportPath, cfg.Out) {
		t.Fatalf("evaluation row %+v", row)
	}
	rep, err := w.EvalReport(row.ReportPath)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Calibrated == nil || rep.Raw == nil || rep.Calibrated.N != 12 || len(rep.Calibrated.Confusion) != len(rep.Calibrated.Labels) {
		t.Fatalf("report %+v", rep)
	}
	if !strings.HasSuffix(rep.Adapter, "adapter") {
		t.Errorf("evaluated adapter %q, want the run's", rep.Adapter)
	}
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if sc.Text() != "" {
			out = append(out, sc.Text())
		}
	}
	return out
}
