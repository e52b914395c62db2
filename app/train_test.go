package app

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"distill/core/data"
	"distill/core/infer"
	"distill/core/lora"
	"distill/core/model"
	"distill/core/tensor"
	"distill/core/tokenizer"
	"distill/core/train"
	"distill/store"

	_ "github.com/mattn/go-sqlite3" // a second connection to the run database
)

// smallData writes the first n lines of an example file to a temp file.
func smallData(t *testing.T, src string, n int) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(b), "\n")
	if len(lines) > n {
		lines = lines[:n]
	}
	path := filepath.Join(t.TempDir(), filepath.Base(src))
	if err := os.WriteFile(path, []byte(strings.Join(lines, "")), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// logLosses reads the loss of every step from a run's log.jsonl.
func logLosses(t *testing.T, dir string) []float64 {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "log.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []float64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e struct{ Loss float64 }
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatal(err)
		}
		out = append(out, e.Loss)
	}
	return out
}

// TestTrainSFTRecordsTheRun: a short QLoRA SFT run through the CLI leaves
// the run folder, a loadable PEFT adapter, one log line per step, and a
// completed record with metrics in the database.
func TestTrainSFTRecordsTheRun(t *testing.T) {
	m := tinyModel(t)
	dir := filepath.Join(t.TempDir(), "run")
	db := filepath.Join(t.TempDir(), "runs.db")
	data := smallData(t, "../examples/chat/train.jsonl", 40)
	code, out, stderr := run("train", "sft", "--model", m, "--data", data, "--steps", "4", "--seq-len", "256",
		"--lr", "1e-3", "--checkpoint-every", "2", "--out", dir, "--db", db, "--lora-r", "4")
	if code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, stderr, out)
	}
	for _, f := range []string{"config.yaml", "adapter/adapter_config.json", "adapter/adapter_model.safetensors", "checkpoints/step-000002/state.json", "checkpoints/step-000004/optimizer.safetensors"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("run folder lacks %s", f)
		}
	}
	if n := len(logLosses(t, dir)); n != 4 {
		t.Errorf("log.jsonl has %d steps, want 4", n)
	}
	base, err := model.Load(m)
	if err != nil {
		t.Fatal(err)
	}
	defer base.Close()
	if _, err := lora.Load(filepath.Join(dir, "adapter"), base); err != nil {
		t.Fatalf("the saved adapter does not load: %v", err)
	}
	code, out, _ = run("runs", "list", "--json", "--db", db)
	var runs []map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &runs) != nil || len(runs) != 1 || runs[0]["status"] != "completed" {
		t.Fatalf("runs list: %s", out)
	}
	id := runs[0]["id"].(string)
	code, out, _ = run("runs", "show", id, "--json", "--db", db)
	if code != 0 || !strings.Contains(out, `"steps":4`) || !strings.Contains(out, "val_loss") {
		t.Fatalf("runs show: %s", out)
	}
	if code, _, _ = run("runs", "rm", id, "--db", db); code != 0 {
		t.Fatal("runs rm failed")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Error("runs rm left the run folder")
	}
	// Its adapter went with the folder: the registry does not list it.
	st, err := store.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if as, _ := st.ListAdapters(context.Background()); len(as) != 0 {
		t.Errorf("runs rm left the run's adapter registered: %+v", as)
	}
}

// TestResumeContinuesExactly: a run stopped after step 3 (as by Ctrl-C: a
// checkpoint, status canceled) and resumed logs the same losses, bit for
// bit, as a run that was never stopped.
func TestResumeContinuesExactly(t *testing.T) {
	m := tinyModel(t)
	data := smallData(t, "../examples/preferences/train.jsonl", 24)
	// DPO: its reference log-probs are recomputed after the resume, and the
	// losses must not notice.
	cfg := defaultRunConfig("dpo")
	cfg.Model, cfg.Data, cfg.Steps, cfg.SeqLen, cfg.LR, cfg.CheckpointEvery = m, data, 6, 128, 1e-3, 0
	// A validation falls at the stop: the stopped run checkpoints before
	// validating, so its resume must validate first.
	cfg.ValFraction, cfg.EvalEvery = 0.25, 3
	cfg.LoRA.R = 4
	db, err := store.Open(filepath.Join(t.TempDir(), "runs.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	straight := &TrainJob{Cfg: cfg, ID: "straight", Dir: filepath.Join(t.TempDir(), "straight"), DB: db}
	if err := straight.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := &TrainJob{Cfg: cfg, ID: "stopped", Dir: filepath.Join(t.TempDir(), "stopped"), DB: db,
		Events: func(e train.Event) {
			if e.Step == 3 {
				cancel()
			}
		}}
	if err := stopped.Run(ctx); err != nil {
		t.Fatal(err)
	}
	r, _ := db.GetRun(context.Background(), "stopped")
	if r.Status != store.StatusCanceled {
		t.Fatalf("stopped run is %s", r.Status)
	}
	resumed := &TrainJob{Cfg: cfg, ID: "stopped", Dir: stopped.Dir, DB: db, Resume: true}
	if err := resumed.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	a, b := logLosses(t, straight.Dir), logLosses(t, stopped.Dir)
	if len(a) != 6 || len(b) != 6 {
		t.Fatalf("%d and %d logged steps", len(a), len(b))
	}
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("step %d: loss %.17g after resume, %.17g uninterrupted", i+1, b[i], a[i])
		}
	}
	if r, _ := db.GetRun(context.Background(), "stopped"); r.Status != store.StatusCompleted {
		t.Fatalf("resumed run is %s", r.Status)
	}
	va, _ := db.Metrics(context.Background(), "straight", "val_accuracy")
	vb, _ := db.Metrics(context.Background(), "stopped", "val_accuracy")
	steps := func(ms []store.Metric) (s []int) {
		for _, m := range ms {
			s = append(s, m.Step)
		}
		return s
	}
	if !slices.Equal(steps(va), []int{3, 6}) || !slices.Equal(steps(vb), steps(va)) {
		t.Errorf("validated at steps %v after the resume, %v uninterrupted", steps(vb), steps(va))
	}
}

// TestTrainKDRefusesAForeignTokenizer: a logit-KD teacher with another
// vocabulary is refused, pointing at traces.
func TestTrainKDRefusesAForeignTokenizer(t *testing.T) {
	m := tinyModel(t)
	teacher := filepath.Join(t.TempDir(), "teacher")
	if code, _, stderr := run("demo-model", "--out", teacher, "--tokenizer", filepath.Join(npmModels, "tokenizer-llama3", "models")); code != 0 {
		t.Fatal(stderr)
	}
	data := smallData(t, "../examples/chat/train.jsonl", 10)
	code, _, stderr := run("train", "kd", "--model", m, "--teacher", teacher, "--data", data, "--steps", "1", "--out", filepath.Join(t.TempDir(), "r"), "--db", filepath.Join(t.TempDir(), "db"))
	if code == 0 || !strings.Contains(stderr, "traces") {
		t.Fatalf("exit %d: %s", code, stderr)
	}
}

// TestKDTracesThenTrain: sequence-level KD end to end — the teacher writes
// traces, the student trains on them. Completions cut off at --max-tokens
// are left out (a student would learn to stop mid-answer), and --out is
// never the data file nor, without --force, a file that exists.
func TestKDTracesThenTrain(t *testing.T) {
	m := tinyModel(t)
	data := smallData(t, "../examples/codegen/train.jsonl", 3)
	traces := filepath.Join(t.TempDir(), "traces.jsonl")
	// The random teacher never writes its EOS: every completion is cut.
	code, _, stderr := run("kd", "traces", "--teacher", m, "--data", data, "--out", traces, "--max-tokens", "8")
	if code == 0 || !strings.Contains(stderr, "3 of 3 completions ran past --max-tokens 8") {
		t.Fatalf("cut completions: exit %d: %s", code, stderr)
	}
	if _, err := os.Stat(traces); !os.IsNotExist(err) {
		t.Fatalf("traces written from cut completions: %v", err)
	}
	// A teacher whose EOS is the second token it samples for each prompt
	// finishes those whose first token differs (the others are empty).
	finishing := filepath.Join(t.TempDir(), "teacher")
	if err := os.CopyFS(finishing, os.DirFS(m)); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(map[string]any{"eos_token_id": secondTokens(t, m, data)})
	os.WriteFile(filepath.Join(finishing, "generation_config.json"), b, 0o644)
	code, out, stderr := run("kd", "traces", "--teacher", finishing, "--data", data, "--out", traces, "--max-tokens", "8", "--temperature", "1")
	if code != 0 || !strings.Contains(out, "wrote ") {
		t.Fatalf("exit %d: %s %s", code, out, stderr)
	}
	for _, args := range [][]string{{"--out", traces}, {"--out", data, "--force"}} {
		if code, _, stderr := run(append([]string{"kd", "traces", "--teacher", finishing, "--data", data}, args...)...); code == 0 || !strings.Contains(stderr, "--out") {
			t.Errorf("%v: exit %d, %s", args, code, stderr)
		}
	}
	code, out, stderr = run("train", "kd", "--model", m, "--traces", traces, "--data", data, "--steps", "2", "--seq-len", "512",
		"--out", filepath.Join(t.TempDir(), "r"), "--db", filepath.Join(t.TempDir(), "db"), "--lora-r", "2", "--val-fraction", "0")
	if code != 0 {
		t.Fatalf("train kd --traces: exit %d: %s %s", code, out, stderr)
	}
}

// TestEvalCodegenRecordsRates: the codegen evaluator runs every task's
// checks for real and stores build/lint/pass@1 (the untrained demo model
// writes no valid Go, so every rate is 0 and both tasks count for pass@1).
func TestEvalCodegenRecordsRates(t *testing.T) {
	m := tinyModel(t)
	data := smallData(t, "../examples/codegen/val.jsonl", 2)
	code, out, stderr := run("eval", "codegen", "--model", m, "--data", data, "--max-tokens", "8", "--json", "--db", filepath.Join(t.TempDir(), "db"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var r struct {
		Report struct {
			N         int     `json:"n"`
			WithTests int     `json:"with_tests"`
			Built     int     `json:"built"`
			PassAt1   float64 `json:"pass_at_1"`
			Failures  []struct {
				Task, Failure string
			} `json:"failures"`
		} `json:"report"`
		ReportPath string `json:"report_path"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if r.Report.N != 2 || r.Report.WithTests != 2 || r.Report.Built != 0 || r.Report.PassAt1 != 0 {
		t.Fatalf("report %s", out)
	}
	// Both failing tasks are listed by file:line with the failed check.
	if f := r.Report.Failures; len(f) != 2 || f[0].Task != data+":1" || !strings.HasPrefix(f[0].Failure, "build ") {
		t.Errorf("failures %+v", f)
	}
	os.RemoveAll(filepath.Dir(r.ReportPath))
}

// TestExtractAlwaysValid: even an untrained model's extraction parses and
// satisfies the invoice schema, and eval idp scores it field by field.
func TestExtractAlwaysValid(t *testing.T) {
	m := tinyModel(t)
	doc := filepath.Join(t.TempDir(), "doc.txt")
	os.WriteFile(doc, []byte("INVOICE INV-0042\nDate: 2026-03-01\nVendor: Acme GmbH\nTotal: 120.00 EUR\n1 x Widget @ 120.00\nPaid."), 0o644)
	code, out, stderr := run("extract", "--model", m, "--schema", "../examples/invoices/schema.json", "--document", doc, "--max-tokens", "160", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var r struct {
		JSON  map[string]any `json:"json"`
		Valid bool           `json:"valid"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil || !r.Valid || r.JSON["currency"] == nil {
		t.Fatalf("extract: %s (%v)", out, err)
	}
	data := smallData(t, "../examples/invoices/val.jsonl", 2)
	code, out, stderr = run("eval", "idp", "--model", m, "--data", data, "--schema", "../examples/invoices/schema.json",
		"--max-tokens", "160", "--json", "--db", filepath.Join(t.TempDir(), "db"))
	if code != 0 {
		t.Fatalf("eval idp: %s", stderr)
	}
	var rep struct {
		Report struct {
			N               int     `json:"n"`
			SchemaValidRate float64 `json:"schema_valid_rate"`
		} `json:"report"`
		ReportPath string `json:"report_path"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.Report.N != 2 || rep.Report.SchemaValidRate != 1 {
		t.Fatalf("eval idp: %s", out)
	}
	os.RemoveAll(filepath.Dir(rep.ReportPath))
}

// TestTrainCPUBF16TracksF32 trains the same LoRA run over the BF16 base
// (quant none) with f32 products and with --cpu-bf16: the run must say the
// bf16 products are on, and its losses must track the f32 run's — within
// 1 %, what rounding each product's input to bf16 moves a loss of ~19 by
// over four steps (measured: under 0.1 %) — yet not equal them, which
// would mean the products never took the rounded inputs.
func TestTrainCPUBF16TracksF32(t *testing.T) {
	m := tinyModel(t)
	data := smallData(t, "../examples/chat/train.jsonl", 40)
	losses := map[bool][]float64{}
	for _, bf16 := range []bool{false, true} {
		dir := filepath.Join(t.TempDir(), "run")
		args := []string{"train", "sft", "--model", m, "--data", data, "--steps", "4", "--seq-len", "128",
			"--lr", "1e-3", "--out", dir, "--db", filepath.Join(t.TempDir(), "runs.db"), "--lora-r", "4", "--quant", "none", "--device", "cpu"}
		if bf16 {
			args = append(args, "--cpu-bf16")
		}
		code, out, stderr := run(args...)
		if code != 0 {
			t.Fatalf("cpu-bf16=%v: exit %d: %s\n%s", bf16, code, stderr, out)
		}
		if said := strings.Contains(out+stderr, "bf16 products on the cpu"); said != bf16 {
			t.Errorf("cpu-bf16=%v: the log says bf16 products: %v\n%s", bf16, said, out+stderr)
		}
		// Without the flag, a CPU where it pays says so.
		if hint := strings.Contains(out+stderr, "with --cpu-bf16 (cpu_bf16: true)"); hint != (!bf16 && tensor.BF16ProductsFast()) {
			t.Errorf("cpu-bf16=%v: the log suggests --cpu-bf16: %v (AVX-512 BF16 here: %v)\n%s", bf16, hint, tensor.BF16ProductsFast(), out+stderr)
		}
		losses[bf16] = logLosses(t, dir)
	}
	f, b := losses[false], losses[true]
	if len(f) != 4 || len(b) != 4 {
		t.Fatalf("losses: %v and %v", f, b)
	}
	same := true
	for i := range f {
		if math.Abs(b[i]-f[i]) > 1e-2*math.Abs(f[i]) {
			t.Errorf("step %d: loss %.5f with --cpu-bf16, %.5f without", i+1, b[i], f[i])
		}
		same = same && b[i] == f[i]
	}
	if same {
		t.Errorf("--cpu-bf16 gave the f32 run's losses exactly: %v", f)
	}
	t.Logf("losses f32 %v, bf16 %v", f, b)
}

// A run folder holding a run is never trained into again (it would lose
// that run's config, checkpoints and adapter); a run trained with --out
// resumes from its folder; a config.yaml that does not validate is refused
// on resume with the reason, not a panic.
func TestRunFolderKeepsItsRun(t *testing.T) {
	m := tinyModel(t)
	data := smallData(t, "../examples/tickets/train.jsonl", 12)
	tmp := t.TempDir()
	dbPath, dir := filepath.Join(tmp, "runs.db"), filepath.Join(tmp, "custom-out")
	args := []string{"train", "sft", "--model", m, "--data", data, "--steps", "2", "--seq-len", "128", "--out", dir, "--db", dbPath, "--checkpoint-every", "1"}
	if code, _, stderr := run(args...); code != 0 {
		t.Fatal(stderr)
	}
	before, err := os.ReadFile(filepath.Join(dir, "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	again := append(slices.Clone(args[:len(args)-6]), "--lora-r", "4", "--out", dir, "--db", dbPath)
	if code, _, stderr := run(again...); code == 0 || !strings.Contains(stderr, "holds a run already") || !strings.Contains(stderr, "--resume "+dir) {
		t.Fatalf("a second run into %s: exit %d, %s", dir, code, stderr)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, "config.yaml")); !bytes.Equal(after, before) {
		t.Error("the refused run rewrote the first run's config.yaml")
	}
	// A folder a run left before its first checkpoint (it failed loading,
	// say) holds nothing to lose: trained into again.
	failed := filepath.Join(tmp, "failed-out")
	os.MkdirAll(filepath.Join(failed, "checkpoints"), 0o755)
	os.WriteFile(filepath.Join(failed, "config.yaml"), before, 0o644)
	if code, _, stderr := run(append(slices.Clone(args[:len(args)-6]), "--out", failed, "--db", dbPath)...); code != 0 {
		t.Errorf("a run into a failed run's folder: %s", stderr)
	}
	// A folder of the user's own files, or one holding the data, is not
	// the run's: refused, every file as it was.
	mine := filepath.Join(tmp, "thesis")
	os.MkdirAll(mine, 0o755)
	os.WriteFile(filepath.Join(mine, "notes.txt"), []byte("chapter 1"), 0o644)
	if code, _, stderr := run(append(slices.Clone(args[:len(args)-6]), "--out", mine, "--db", dbPath)...); code == 0 || !strings.Contains(stderr, "notes.txt") {
		t.Errorf("a run into a folder of the user's files: exit %d, %s", code, stderr)
	}
	inside := filepath.Join(tmp, "with-data")
	os.MkdirAll(inside, 0o755)
	b, _ := os.ReadFile(data)
	os.WriteFile(filepath.Join(inside, heldOutFile), b, 0o644)
	dataArgs := []string{"train", "sft", "--model", m, "--data", filepath.Join(inside, heldOutFile), "--steps", "1", "--seq-len", "128", "--out", inside, "--db", dbPath}
	if code, _, stderr := run(dataArgs...); code == 0 || !strings.Contains(stderr, "inside --out") {
		t.Errorf("a run whose data is in its folder: exit %d, %s", code, stderr)
	}
	if after, _ := os.ReadFile(filepath.Join(inside, heldOutFile)); !bytes.Equal(after, b) {
		t.Error("the data file was overwritten by the run's held-out rows")
	}

	// Stopped after its first step (as by Ctrl-C), under an ID that is not
	// its folder's name, it resumes from the folder.
	db, err := store.Open(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg := defaultRunConfig("sft")
	cfg.Model, cfg.Data, cfg.Steps, cfg.SeqLen, cfg.CheckpointEvery = m, data, 3, 128, 1
	stoppedDir := filepath.Join(tmp, "stopped-out")
	ctx, cancel := context.WithCancel(context.Background())
	job := &TrainJob{Cfg: cfg, ID: "20261127-000000-sft-abcd", Dir: stoppedDir, DB: db, Events: func(e train.Event) { cancel() }}
	if err := job.Run(ctx); err != nil {
		t.Fatal(err)
	}
	db.Close()
	cfgPath := filepath.Join(stoppedDir, "config.yaml")
	good, _ := os.ReadFile(cfgPath)
	if err := os.WriteFile(cfgPath, bytes.Replace(good, []byte("accum: 1"), []byte("accum: 0"), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := run("train", "--resume", stoppedDir, "--db", dbPath); code == 0 || !strings.Contains(stderr, "accum") {
		t.Fatalf("resume with accum 0: exit %d, %s", code, stderr)
	}
	// Trained on a GPU (say), it goes on on the CPU: --device, recorded.
	if !bytes.Contains(good, []byte("device: cpu")) {
		t.Fatalf("config.yaml does not record the resolved device:\n%s", good)
	}
	os.WriteFile(cfgPath, bytes.Replace(good, []byte("device: cpu"), []byte("device: cuda"), 1), 0o644)
	if code, _, stderr := run("train", "--resume", stoppedDir, "--db", dbPath, "--device", "cpu"); code != 0 {
		t.Fatalf("resume of a run trained with --out, on the CPU: %s", stderr)
	}
	if b, _ := os.ReadFile(cfgPath); !bytes.Contains(b, []byte("device: cpu")) {
		t.Errorf("config.yaml after resuming with --device cpu:\n%s", b)
	}
}

// A resume whose latest checkpoint does not load (a crash or a full disk
// cut its state.json) takes the one before, says so, and completes.
func TestResumeSkipsAnUnreadableCheckpoint(t *testing.T) {
	cfg, db := sftRun(t)
	cfg.Steps, cfg.CheckpointEvery = 4, 1
	ctx, cancel := context.WithCancel(context.Background())
	dir := filepath.Join(t.TempDir(), "run")
	job := &TrainJob{Cfg: cfg, ID: "cut", Dir: dir, DB: db, Events: func(e train.Event) {
		if e.Step == 2 {
			cancel()
		}
	}}
	if err := job.Run(ctx); err != nil {
		t.Fatal(err)
	}
	cps, err := db.Checkpoints(context.Background(), "cut")
	if err != nil || len(cps) != 2 {
		t.Fatalf("%d checkpoints, %v; want steps 1 and 2", len(cps), err)
	}
	if err := os.WriteFile(filepath.Join(cps[1].Path, "state.json"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	resumed := &TrainJob{Cfg: cfg, ID: "cut", Dir: dir, DB: db, Resume: true, Log: &log}
	if err := resumed.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "checkpoint of step 2 does not load, skipped") || !strings.Contains(log.String(), "resumed at step 1") {
		t.Errorf("log:\n%s", log.String())
	}
	if r, _ := db.GetRun(context.Background(), "cut"); r.Status != store.StatusCompleted {
		t.Errorf("the resumed run is %s", r.Status)
	}
}

// Validation runs every eval_every steps whatever checkpoint_every is (it
// used to wait for a checkpoint's step), and checkpoints only at theirs and
// at the end.
func TestEvalEveryIndependentOfCheckpoints(t *testing.T) {
	base, db := sftRun(t)
	for _, c := range []struct {
		every, evalEvery int
		evals, cps       []int
	}{
		{0, 2, []int{2, 4, 6}, []int{6}},
		{4, 3, []int{3, 6}, []int{4, 6}},
	} {
		cfg := base
		cfg.Steps, cfg.CheckpointEvery, cfg.EvalEvery, cfg.Val = 6, c.every, c.evalEvery, base.Data
		var evals []int
		id := fmt.Sprintf("eval%d-%d", c.every, c.evalEvery)
		job := &TrainJob{Cfg: cfg, ID: id, Dir: filepath.Join(t.TempDir(), id), DB: db,
			Validated: func(step int, _ map[string]float64) { evals = append(evals, step) }}
		if err := job.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		cps, _ := db.Checkpoints(context.Background(), id)
		var steps []int
		for _, cp := range cps {
			steps = append(steps, cp.Step)
		}
		if !slices.Equal(evals, c.evals) || !slices.Equal(steps, c.cps) {
			t.Errorf("checkpoint_every %d, eval_every %d: validations at %v, checkpoints at %v; want %v, %v", c.every, c.evalEvery, evals, steps, c.evals, c.cps)
		}
	}
}

// Ctrl-C while the last validation or the adapter's save runs, every step
// trained: the run is completed (its adapter saved and registered), not
// canceled with a resume to offer.
func TestStopDuringTheEndCompletes(t *testing.T) {
	cfg, db := sftRun(t)
	cfg.Steps, cfg.Val = 2, cfg.Data
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	job := &TrainJob{Cfg: cfg, ID: "late", Dir: filepath.Join(t.TempDir(), "late"), DB: db,
		Validated: func(step int, _ map[string]float64) { cancel() }}
	if err := job.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if r, _ := db.GetRun(context.Background(), "late"); r.Status != store.StatusCompleted {
		t.Errorf("stopped during the final validation: %s (%s)", r.Status, r.Error)
	}
	if _, err := db.Adapter(context.Background(), "late"); err != nil {
		t.Errorf("the adapter is not registered: %v", err)
	}
}

// sftRun is a small SFT run's config on the tiny model (128-token
// micro-batches) and a run database, closed with the test.
func sftRun(t *testing.T) (RunConfig, *store.DB) {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "runs.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	cfg := defaultRunConfig("sft")
	cfg.Model, cfg.Data, cfg.SeqLen = tinyModel(t), smallData(t, "../examples/tickets/train.jsonl", 12), 128
	return cfg, db
}

// A step whose metrics the database refuses (another process holding its
// write lock past the busy timeout) does not end the run: it says so and
// goes on, the step in log.jsonl.
func TestRunOutlastsABusyDatabase(t *testing.T) {
	cfg, db := sftRun(t)
	cfg.Steps, cfg.CheckpointEvery = 2, 0
	other, err := sql.Open("sqlite3", db.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	conn, err := other.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var log strings.Builder
	job := &TrainJob{Cfg: cfg, ID: "busy", Dir: filepath.Join(t.TempDir(), "busy"), DB: db, Log: &log,
		Events: func(e train.Event) {
			switch e.Step {
			case 1: // the next step's metrics meet the lock
				if _, err := conn.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
					t.Error(err)
				}
			case 2:
				if _, err := conn.ExecContext(context.Background(), "ROLLBACK"); err != nil {
					t.Error(err)
				}
			}
		}}
	if err := job.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r, _ := db.GetRun(context.Background(), "busy"); r.Status != store.StatusCompleted {
		t.Errorf("the run is %s (%s)", r.Status, r.Error)
	}
	if !strings.Contains(log.String(), "step 2: the run database did not take the step's metrics") || !strings.Contains(log.String(), "1 steps' metrics are in log.jsonl only") {
		t.Errorf("log:\n%s", log.String())
	}
}

// TestResumeRefusesChangedData: a run records its data files' SHA-256 in
// config.yaml; a resume after the file changed is refused, naming it,
// and --allow-changed-data goes on and records the new file.
func TestResumeRefusesChangedData(t *testing.T) {
	cfg, db := sftRun(t)
	cfg.Steps = 4
	ctx, cancel := context.WithCancel(context.Background())
	dir := filepath.Join(t.TempDir(), "run")
	job := &TrainJob{Cfg: cfg, ID: "data", Dir: dir, DB: db, Events: func(e train.Event) {
		if e.Step == 1 {
			cancel()
		}
	}}
	if err := job.Run(ctx); err != nil {
		t.Fatal(err)
	}
	resume := func(allow bool) (*TrainJob, error) {
		var saved RunConfig
		if err := readRunConfig(filepath.Join(dir, "config.yaml"), &saved); err != nil {
			t.Fatal(err)
		}
		if len(saved.DataSHA256) != 1 || len(saved.DataSHA256[cfg.Data]) != 64 {
			t.Fatalf("config.yaml's data_sha256: %v", saved.DataSHA256)
		}
		j := &TrainJob{Cfg: saved, ID: "data", Dir: dir, DB: db, Resume: true, AllowChangedData: allow, Log: &strings.Builder{}}
		return j, j.Run(context.Background())
	}
	b, err := os.ReadFile(cfg.Data)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(strings.TrimSpace(string(b)), "\n")
	slices.Reverse(lines) // the same rows in another order
	if err := os.WriteFile(cfg.Data, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := resume(false); err == nil || !strings.Contains(err.Error(), cfg.Data) || !strings.Contains(err.Error(), "changed since the run started") {
		t.Fatalf("resume on changed data: %v", err)
	}
	j, err := resume(true)
	if err != nil {
		t.Fatal(err)
	}
	if log := j.Log.(*strings.Builder).String(); !strings.Contains(log, "--allow-changed-data") {
		t.Errorf("log:\n%s", log)
	}
	var saved RunConfig
	readRunConfig(filepath.Join(dir, "config.yaml"), &saved)
	if sum, _ := fileSHA256(cfg.Data); saved.DataSHA256[cfg.Data] != sum {
		t.Errorf("config.yaml keeps the old fingerprint after --allow-changed-data")
	}
}

// TestElapsedSpansTheRun: a step's elapsed time runs from the run's start
// across its checkpoint spans and, after a resume, its earlier sessions;
// the store records it and the total, so a window watching from another
// process shows both.
func TestElapsedSpansTheRun(t *testing.T) {
	cfg, db := sftRun(t)
	cfg.Steps, cfg.CheckpointEvery = 4, 1
	dir := filepath.Join(t.TempDir(), "run")
	var seen []train.Event
	ctx, cancel := context.WithCancel(context.Background())
	job := &TrainJob{Cfg: cfg, ID: "spans", Dir: dir, DB: db, Events: func(e train.Event) {
		seen = append(seen, e)
		time.Sleep(20 * time.Millisecond)
		if e.Step == 2 {
			cancel()
		}
	}}
	if err := job.Run(ctx); err != nil {
		t.Fatal(err)
	}
	resumed := &TrainJob{Cfg: cfg, ID: "spans", Dir: dir, DB: db, Resume: true, Events: func(e train.Event) { seen = append(seen, e) }}
	if err := resumed.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 4 {
		t.Fatalf("%d steps", len(seen))
	}
	// Step 1's callback slept 20 ms before the next span began: step 2
	// counts it. The resumed session goes on from step 2's time.
	if seen[1].Elapsed < seen[0].Elapsed+20*time.Millisecond {
		t.Errorf("step 2 at %v, step 1 at %v: the span restarted the clock", seen[1].Elapsed, seen[0].Elapsed)
	}
	for i := 2; i < len(seen); i++ {
		if seen[i].Elapsed < seen[i-1].Elapsed {
			t.Errorf("step %d at %v, after step %d at %v", seen[i].Step, seen[i].Elapsed, seen[i-1].Step, seen[i-1].Elapsed)
		}
	}
	w := &Workstation{db: db}
	hist, err := w.RunHistory("spans")
	if err != nil || len(hist) != 4 {
		t.Fatalf("history %d steps, %v", len(hist), err)
	}
	if last := hist[3]; last.Total != 4 || last.Elapsed < seen[1].Elapsed {
		t.Errorf("the store's last step: total %d, elapsed %v (step 2 was at %v)", last.Total, last.Elapsed, seen[1].Elapsed)
	}
}

// TestDPOTruncatesToThePackedLength: a DPO pair trains as two sequences in
// one micro-batch, and left truncation fits that — a pair it encoded no
// longer stops the run as too long for --seq-len.
func TestDPOTruncatesToThePackedLength(t *testing.T) {
	db, err := store.Open(filepath.Join(t.TempDir(), "runs.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cfg := defaultRunConfig("dpo")
	cfg.Model, cfg.Data, cfg.Steps, cfg.SeqLen, cfg.ValFraction = tinyModel(t), smallData(t, "../examples/preferences/train.jsonl", 24), 1, 60, 0
	var log strings.Builder
	job := &TrainJob{Cfg: cfg, ID: "short", Dir: filepath.Join(t.TempDir(), "run"), DB: db, Log: &log}
	if err := job.Run(context.Background()); err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	if !strings.Contains(log.String(), "truncated") {
		t.Errorf("no pair was truncated at --seq-len 60:\n%s", log.String())
	}
}

// secondTokens is the second token the model samples (temperature 1, kd
// traces' seeds: 1 + the row's index) after each prompt of a
// prompt/completion file, those that are no prompt's first token.
func secondTokens(t *testing.T, dir, path string) []int {
	t.Helper()
	ds, err := data.Load(path, data.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	be, _ := tensor.Open("cpu")
	var firsts, seconds []int
	for i, r := range ds.Rows {
		res, err := infer.Generate(context.Background(), be, m, tok, tok.Encode(r.Prompt, true),
			infer.GenerateOptions{MaxTokens: 2, Sampling: infer.Sampling{Temperature: 1, Seed: 1 + uint64(i)}})
		if err != nil || len(res.IDs) < 2 {
			t.Fatalf("generate: %v %v", res.IDs, err)
		}
		firsts, seconds = append(firsts, res.IDs[0]), append(seconds, res.IDs[1])
	}
	// A stop that is some prompt's first token would end that one at once.
	out := slices.DeleteFunc(seconds, func(id int) bool { return slices.Contains(firsts, id) })
	if len(out) == 0 {
		t.Fatalf("no prompt's second token differs from every first: %v, %v", firsts, seconds)
	}
	return out
}

// TestStoppedRunExits130: a run stopped before its last step (Ctrl-C) is
// checkpointed and ends with errInterrupted — exit code 130 — so a script
// does not go on as if it had finished; one that finished is a success.
func TestStoppedRunExits130(t *testing.T) {
	cfg, _ := sftRun(t)
	cfg.Steps = 3
	db := filepath.Join(t.TempDir(), "runs.db")
	ctx, cancel := context.WithCancel(context.Background())
	job := &TrainJob{Cfg: cfg, ID: "stopped", Dir: filepath.Join(t.TempDir(), "run"), Events: func(e train.Event) {
		if e.Step == 1 {
			cancel()
		}
	}}
	var out strings.Builder
	err := runJobContext(ctx, &Env{Stdout: &out, Stderr: &out}, db, job)
	if !errors.Is(err, errInterrupted) || !strings.Contains(out.String(), "--resume") {
		t.Fatalf("stopped run: %v\n%s", err, out.String())
	}
	done := &TrainJob{Cfg: cfg, ID: "done", Dir: filepath.Join(t.TempDir(), "run")}
	if err := runJobContext(context.Background(), &Env{Stdout: &out, Stderr: &out}, db, done); err != nil {
		t.Fatal(err)
	}
}
