package app

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestEvaluateRunOnHeldOutRows: a classification run that held out part of
// its data keeps those rows (as the source's own lines), and EvaluateRun
// scores the run's adapter on exactly them and records a report with a
// confusion matrix that the Evals view can open.
func TestEvaluateRunOnHeldOutRows(t *testing.T) {
	w, cfg := tinyWorkstation(t, "../examples/tickets/train.jsonl", 60, 2, 128, 1e-3)
	cfg.ValFraction = 0.2
	data := cfg.Data
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
	// The registry knows the adapter's task and its evaluated metrics, the
	// run its headline metric, and the REPL the adapter's labels.
	as, err := w.ListAdapters()
	if err != nil || len(as) != 1 || as[0].Task != "classification" || !strings.Contains(as[0].Metrics, "macro_f1") {
		t.Fatalf("registry: %+v %v", as, err)
	}
	if runs, _ := w.ListRuns(); len(runs) != 1 || !strings.HasPrefix(runs[0].Best, "macro_f1 ") {
		t.Errorf("the run's best metric: %+v", runs)
	}
	labels, err := w.AdapterLabels(last.RunID)
	slices.Sort(labels)
	if err != nil || strings.Join(labels, ",") != "account,billing,technical" {
		t.Errorf("labels %v, %v", labels, err)
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

// TestExportAdapter: a trained adapter exports as a PEFT copy that loads
// back, and as a merged checkpoint whose logits equal the base with the
// adapter applied unmerged; an existing destination is refused.
func TestExportAdapter(t *testing.T) {
	w, cfg := tinyWorkstation(t, "../examples/chat/train.jsonl", 20, 2, 128, 1e-2)
	m := cfg.Model
	id, ch, err := w.LaunchRun(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for p := range ch {
		if p.Err != nil {
			t.Fatal(p.Err)
		}
	}
	t.Chdir(t.TempDir()) // exports/ lands here
	peft, err := w.ExportAdapter(id, "peft")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"adapter_config.json", "adapter_model.safetensors"} {
		if _, err := os.Stat(filepath.Join(peft, f)); err != nil {
			t.Errorf("PEFT export lacks %s: %v", f, err)
		}
	}
	if st, err := os.Stat(peft); err != nil || st.Mode().Perm() != 0o755 {
		t.Errorf("PEFT export folder mode %v (%v), want 0755 as the other exports", st.Mode().Perm(), err)
	}
	if _, err := w.ExportAdapter(id, "peft"); err == nil || !strings.Contains(err.Error(), "exists already") {
		t.Errorf("a second export over the first: %v", err)
	}
	merged, err := w.ExportAdapter(id, "merged")
	if err != nil {
		t.Fatal(err)
	}
	ids := "9707,11,1879,315,279,1852,9934"
	code, a, stderr := run("score", "--model", m, "--adapter", peft, "--ids", ids, "--json")
	if code != 0 {
		t.Fatal(stderr)
	}
	code, b, stderr := run("score", "--model", merged, "--ids", ids, "--json")
	if code != 0 {
		t.Fatal(stderr)
	}
	la, lb := logProbs(t, a), logProbs(t, b)
	if len(la) == 0 || len(la) != len(lb) {
		t.Fatalf("scores %v and %v", la, lb)
	}
	_, c, _ := run("score", "--model", m, "--ids", ids, "--json")
	lc, moved := logProbs(t, c), 0.0
	for i := range la {
		// The merged weights are stored in the base's BF16: a relative
		// 1e-3 covers their rounding (f32 storage agrees to ~1e-5).
		if math.Abs(la[i]-lb[i]) > 1e-3*math.Max(1, math.Abs(la[i])) {
			t.Errorf("token %d: merged export %.5f, base + adapter %.5f", i, lb[i], la[i])
		}
		moved = max(moved, math.Abs(lc[i]-lb[i]))
	}
	if moved < 1e-3 {
		t.Errorf("the adapter changed no log-prob (max %.2g): the comparison proves nothing", moved)
	}
	// GGUF: the adapter folded in at the base's precision, with a
	// Modelfile; the same bytes as `distill gguf` on the merged checkpoint
	// (which llama.cpp reads as distill does: core/gguf's tests).
	gg, err := w.ExportAdapter(id, "gguf")
	if err != nil {
		t.Fatal(err)
	}
	// The Modelfile stops where distill stops (the demo model's
	// generation_config.json ends on <|im_end|> and <|endoftext|>) and
	// decodes greedily as distill does without do_sample.
	mf, err := os.ReadFile(filepath.Join(gg, "Modelfile"))
	for _, want := range []string{"\nFROM ./model.gguf\n", `PARAMETER stop "<|im_end|>"`, `PARAMETER stop "<|endoftext|>"`, "PARAMETER temperature 0\n", "PARAMETER top_p 1\n", "PARAMETER repeat_penalty 1\n"} {
		if err != nil || !strings.Contains(string(mf), want) {
			t.Errorf("Modelfile lacks %q: %q, %v", want, mf, err)
		}
	}
	viaCLI := filepath.Join(t.TempDir(), "m.gguf")
	if code, _, stderr := run("gguf", "--model", merged, "--out", viaCLI, "--name", id); code != 0 {
		t.Fatal(stderr)
	}
	g1, err1 := os.ReadFile(filepath.Join(gg, "model.gguf"))
	g2, err2 := os.ReadFile(viaCLI)
	if err1 != nil || err2 != nil || !bytes.Equal(g1, g2) || !bytes.HasPrefix(g1, []byte("GGUF")) {
		t.Errorf("exported model.gguf (%d bytes, %v) is not `distill gguf` of the merged checkpoint (%d bytes, %v)", len(g1), err1, len(g2), err2)
	}
	viaCLI = filepath.Join(t.TempDir(), "a.gguf")
	if code, _, stderr := run("gguf", "--model", m, "--adapter", peft, "--adapter-only", "--out", viaCLI); code != 0 {
		t.Fatal(stderr)
	}
	g1, err1 = os.ReadFile(filepath.Join(gg, "adapter.gguf"))
	g2, err2 = os.ReadFile(viaCLI)
	if err1 != nil || err2 != nil || !bytes.Equal(g1, g2) {
		t.Errorf("exported adapter.gguf (%d bytes, %v) is not `distill gguf --adapter-only` (%d bytes, %v)", len(g1), err1, len(g2), err2)
	}
	// At llama.cpp's 4-bit mix: `distill gguf --adapter --type q4_k_m`, the
	// adapter folded in f32 before quantising (core/gguf checks those bytes
	// against llama-quantize's; the merged checkpoint's bf16 rounding would
	// quantise other values).
	g4, err := w.ExportAdapter(id, "gguf-q4_k_m")
	if err != nil {
		t.Fatal(err)
	}
	viaCLI = filepath.Join(t.TempDir(), "m4.gguf")
	if code, _, stderr := run("gguf", "--model", m, "--adapter", peft, "--out", viaCLI, "--name", id, "--type", "q4_k_m"); code != 0 {
		t.Fatal(stderr)
	}
	g1, err1 = os.ReadFile(filepath.Join(g4, "model.gguf"))
	g2, err2 = os.ReadFile(viaCLI)
	if err1 != nil || err2 != nil || !bytes.Equal(g1, g2) {
		t.Errorf("exported q4_k_m model.gguf (%d bytes, %v) is not `distill gguf --adapter --type q4_k_m` (%d bytes, %v)", len(g1), err1, len(g2), err2)
	}
	if g0, err := os.ReadFile(filepath.Join(gg, "model.gguf")); err != nil || len(g1) >= len(g0) {
		t.Errorf("q4_k_m model.gguf has %d bytes, the base-precision one %d (%v)", len(g1), len(g0), err)
	}
	if _, err := w.ExportAdapter(id, "onnx"); err == nil {
		t.Error("unknown export kind: no error")
	}
	// Closing the workstation cancels an export in progress: it stops and
	// leaves neither the folder nor its partial one.
	if err := os.RemoveAll(g4); err != nil {
		t.Fatal(err)
	}
	w.exportCancel()
	if _, err := w.ExportAdapter(id, "gguf-q4_k_m"); !errors.Is(err, context.Canceled) {
		t.Errorf("export after Close began: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(g4), "*"+filepath.Base(g4)+"*")); len(left) > 0 {
		t.Errorf("a cancelled export left %v", left)
	}
}

func logProbs(t *testing.T, out string) []float64 {
	t.Helper()
	var r struct {
		LogProbs []float64 `json:"logprobs"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v in %s", err, out)
	}
	return r.LogProbs
}
