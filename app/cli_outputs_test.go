package app

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestOutputsNeverReplaceUserFiles: commands that write a folder or file
// refuse one that exists rather than replace it — demo-model would put
// random weights over a trained model — unless told to (--force).
func TestOutputsNeverReplaceUserFiles(t *testing.T) {
	m := tinyModel(t)
	before, err := os.ReadFile(filepath.Join(m, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	tok := filepath.Join(npmModels, "tokenizer-qwen3", "models")
	code, _, stderr := run("demo-model", "--out", m, "--tokenizer", tok)
	if code == 0 || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "--force") {
		t.Fatalf("demo-model over a model: exit %d, %q", code, stderr)
	}
	if after, _ := os.ReadFile(filepath.Join(m, "model.safetensors")); string(after) != string(before) {
		t.Fatal("demo-model replaced the model it refused")
	}
	if code, _, stderr := run("demo-model", "--out", m, "--tokenizer", tok, "--force"); code != 0 {
		t.Fatalf("demo-model --force: %s", stderr)
	}
}

// TestTrainRefusesNonsenseBeforeRecording: settings no run can use — NaN,
// negative counts, unknown names, missing files, a sequence past the
// model's context — are refused naming the flag, and no run is recorded.
func TestTrainRefusesNonsenseBeforeRecording(t *testing.T) {
	m := tinyModel(t)
	data := smallData(t, "../examples/tickets/train.jsonl", 12)
	db := filepath.Join(t.TempDir(), "runs.db")
	base := []string{"train", "sft", "--model", m, "--data", data, "--steps", "1", "--db", db}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--lr", "NaN"}, "--lr"},
		{[]string{"--steps", "-5"}, "--steps"},
		{[]string{"--lora-r", "0"}, "--lora-r"},
		{[]string{"--lora-alpha", "NaN"}, "--lora-alpha"},
		{[]string{"--val-fraction", "NaN"}, "--val-fraction"},
		{[]string{"--val-fraction", "1.5"}, "--val-fraction"},
		{[]string{"--weight-decay", "NaN"}, "--weight-decay"},
		{[]string{"--max-grad-norm", "-1"}, "--max-grad-norm"},
		{[]string{"--checkpoint-every", "-1"}, "--checkpoint-every"},
		{[]string{"--eval-every", "-1"}, "--eval-every"},
		{[]string{"--schedule", "cosine2"}, "--schedule"},
		{[]string{"--quant", "int3"}, "--quant"},
		{[]string{"--format", "csv"}, "--format"},
		{[]string{"--device", "tpu"}, "--device"},
		{[]string{"--data", "/no/such.jsonl"}, "/no/such.jsonl"},
		{[]string{"--model", t.TempDir()}, "config.json"},
	} {
		code, _, stderr := run(append(slices.Clone(base), tc.args...)...)
		if code == 0 || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, %q", tc.args, code, stderr)
		}
	}
	dpo := []string{"train", "dpo", "--model", m, "--data", "../examples/preferences/train.jsonl", "--steps", "1", "--db", db}
	if code, _, stderr := run(append(dpo, "--dpo-beta", "NaN")...); code == 0 || !strings.Contains(stderr, "--dpo-beta") {
		t.Errorf("--dpo-beta NaN: exit %d, %q", code, stderr)
	}
	if _, err := os.Stat(db); !os.IsNotExist(err) {
		t.Errorf("refused runs opened the run database: %v", err)
	}
	// Past the model's context: refused once the model is read (the run
	// is recorded as failed, with the reason).
	if code, _, stderr := run(append(slices.Clone(base), "--seq-len", "100000000", "--out", filepath.Join(t.TempDir(), "run"))...); code == 0 || !strings.Contains(stderr, "over the model's context") {
		t.Errorf("--seq-len 100000000: exit %d, %q", code, stderr)
	}
}

// TestResumeCompletedRunSaysSo: resuming a run that completed names its
// adapter instead of the database's "invalid status transition".
func TestResumeCompletedRunSaysSo(t *testing.T) {
	m := tinyModel(t)
	dir, db := filepath.Join(t.TempDir(), "run"), filepath.Join(t.TempDir(), "runs.db")
	if code, _, stderr := run("train", "sft", "--model", m, "--data", smallData(t, "../examples/tickets/train.jsonl", 12), "--steps", "1", "--seq-len", "128", "--out", dir, "--db", db); code != 0 {
		t.Fatal(stderr)
	}
	code, _, stderr := run("train", "--resume", dir, "--db", db)
	if code == 0 || !strings.Contains(stderr, "has completed: nothing to resume") || !strings.Contains(stderr, filepath.Join(dir, "adapter")) {
		t.Errorf("exit %d: %q", code, stderr)
	}
}

// TestEvalRunWithoutItsFolder: evaluating a run whose adapter is not where
// it was recorded is an error — it used to evaluate the base model and
// record the figures as the run's.
func TestEvalRunWithoutItsFolder(t *testing.T) {
	m := tinyModel(t)
	dir, db := filepath.Join(t.TempDir(), "run"), filepath.Join(t.TempDir(), "runs.db")
	data := smallData(t, "../examples/tickets/train.jsonl", 12)
	if code, _, stderr := run("train", "sft", "--model", m, "--data", data, "--steps", "1", "--seq-len", "128", "--out", dir, "--db", db); code != 0 {
		t.Fatal(stderr)
	}
	_, out, _ := run("runs", "list", "--json", "--db", db)
	var runs []struct{ ID string }
	if err := json.Unmarshal([]byte(out), &runs); err != nil || len(runs) != 1 {
		t.Fatalf("runs list: %s", out)
	}
	os.RemoveAll(filepath.Join(dir, "adapter"))
	code, _, stderr := run("eval", "classify", "--run", runs[0].ID, "--data", data, "--db", db)
	if code == 0 || !strings.Contains(stderr, "neither") {
		t.Errorf("eval of a run without its adapter: exit %d, %q", code, stderr)
	}
}

// TestSubcommandHelp: `distill eval -h` (and runs, kd, plan) print what to
// give, exit 0 — they used to fail on "-h" as a subcommand; flag-only
// commands still print their flags.
func TestSubcommandHelp(t *testing.T) {
	for _, c := range []string{"eval", "runs", "kd", "plan"} {
		code, out, stderr := run(c, "-h")
		if code != 0 || !strings.HasPrefix(out, "usage: distill "+c) {
			t.Errorf("%s -h: exit %d, %q %q", c, code, out, stderr)
		}
	}
	if code, _, stderr := run("generate", "-h"); code != 0 || !strings.Contains(stderr, "-max-tokens") {
		t.Errorf("generate -h: exit %d, %q", code, stderr)
	}
	if code, _, stderr := run("eval", "idp", "--balanced", "2", "--model", "m", "--data", "d", "--schema", "s"); code == 0 || !strings.Contains(stderr, "--balanced") {
		t.Errorf("eval idp --balanced: exit %d, %q", code, stderr)
	}
}
