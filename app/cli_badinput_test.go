package app

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestBadFlagValues: flag values out of range are refused, before any model
// loads or any file is written, with one line naming the flag.
func TestBadFlagValues(t *testing.T) {
	dir := tinyModel(t)
	tmp := t.TempDir()
	adapter := "../core/train/testdata/qwen3-f32/adapter"
	emptyDir := filepath.Join(tmp, "empty")
	os.Mkdir(emptyDir, 0o755)
	file := filepath.Join(tmp, "file.txt")
	os.WriteFile(file, []byte("not a model"), 0o644)
	runFolder := filepath.Join(tmp, "run")
	os.MkdirAll(filepath.Join(runFolder, "adapter"), 0o755)
	os.WriteFile(filepath.Join(runFolder, "adapter", "adapter_config.json"), []byte(`{"peft_type": "LORA"}`), 0o644)
	doc := filepath.Join(tmp, "doc.txt")
	os.WriteFile(doc, []byte("Invoice 42"), 0o644)
	db := filepath.Join(tmp, "distill.db")
	tickets := "../examples/tickets/val.jsonl"
	gen := func(extra ...string) []string {
		return append([]string{"generate", "--model", dir, "--prompt", "hi"}, extra...)
	}
	serve := func(extra ...string) []string {
		return append([]string{"serve", "--model", dir, "--db", "", "--addr", "127.0.0.1:0"}, extra...)
	}
	bench := func(extra ...string) []string {
		return append([]string{"serve-bench", "--model", dir}, extra...)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		// serve-bench
		{"bench requests negative", bench("--requests", "-5"), "--requests -5"},
		{"bench requests huge", bench("--requests", "1000000000000"), "--requests"},
		{"bench mix prefix", bench("--mix", "infer"), `unknown endpoint "infer"`},
		{"bench mix empty", bench("--mix", ""), "--mix"},
		{"bench mix empty item", bench("--mix", "v1/chat,"), "empty endpoint"},
		{"bench clients zero", bench("--clients", "0"), "--clients 0"},
		{"bench max-tokens zero", bench("--max-tokens", "0"), "--max-tokens 0"},
		{"bench max-batch zero", bench("--max-batch", "0"), "--max-batch 0"},
		{"bench shape", []string{"serve-bench", "--shape", "huge"}, "unknown shape"},
		{"bench tokenizer", []string{"serve-bench", "--tokenizer", emptyDir}, "tokenizer.json"},
		// generate: the HTTP API's ranges
		{"temperature negative", gen("--temperature", "-1"), "--temperature -1"},
		{"temperature NaN", gen("--temperature", "NaN"), "--temperature NaN"},
		{"temperature Inf", gen("--temperature", "Inf"), "--temperature +Inf"},
		{"temperature huge", gen("--temperature", "101"), "[0, 100]"},
		{"top-p above 1", gen("--top-p", "1.5"), "--top-p 1.5"},
		{"top-p NaN", gen("--top-p", "NaN"), "--top-p NaN"},
		{"top-p negative", gen("--top-p", "-0.5"), "--top-p -0.5"},
		{"min-p above 1", gen("--min-p", "2"), "--min-p 2"},
		{"min-p negative", gen("--min-p", "-1"), "--min-p -1"},
		{"repetition-penalty zero", gen("--repetition-penalty", "0"), "--repetition-penalty 0"},
		{"repetition-penalty NaN", gen("--repetition-penalty", "NaN"), "--repetition-penalty NaN"},
		{"repetition-penalty Inf", gen("--repetition-penalty", "Inf"), "--repetition-penalty +Inf"},
		{"top-k negative", gen("--top-k", "-1"), "--top-k -1"},
		{"generate max-tokens zero", gen("--max-tokens", "0"), "--max-tokens"},
		// kd traces
		{"kd temperature NaN", []string{"kd", "traces", "--teacher", dir, "--data", tickets, "--out", filepath.Join(tmp, "t.jsonl"), "--temperature", "NaN"}, "--temperature NaN"},
		{"kd temperature negative", []string{"kd", "traces", "--teacher", dir, "--data", tickets, "--out", filepath.Join(tmp, "t.jsonl"), "--temperature", "-0.5"}, "--temperature -0.5"},
		{"kd max-tokens zero", []string{"kd", "traces", "--teacher", dir, "--data", tickets, "--out", filepath.Join(tmp, "t.jsonl"), "--max-tokens", "0"}, "--max-tokens"},
		{"kd teacher adapter", []string{"kd", "traces", "--teacher", adapter, "--data", tickets, "--out", filepath.Join(tmp, "t.jsonl")}, "LoRA adapter"},
		{"kd traces of classification rows", []string{"kd", "traces", "--teacher", dir, "--data", tickets, "--out", filepath.Join(tmp, "t.jsonl")}, "classification rows hold no prompt for the teacher"},
		{"val-per-class with val", []string{"train", "sft", "--model", dir, "--data", tickets, "--val", tickets, "--val-per-class", "5", "--out", filepath.Join(tmp, "vpc"), "--db", filepath.Join(tmp, "db")}, "choose one"},
		{"plan --full with nf4", []string{"plan", "sft", "--model", dir, "--full", "--quant", "nf4"}, "--full trains every weight"},
		{"plan negative lr", []string{"plan", "sft", "--model", dir, "--lr", "-1"}, "--lr"},
		{"plan unknown device", []string{"plan", "sft", "--model", dir, "--device", "tpu"}, "tpu"},
		// classify, extract, codegen
		{"bias NaN", []string{"classify", "--model", dir, "--labels", "a,b", "--text", "x", "--bias", "a=NaN"}, `label "a"`},
		{"bias Inf", []string{"classify", "--model", dir, "--labels", "a,b", "--text", "x", "--bias", "b=-Inf"}, `label "b"`},
		{"bias unknown label", []string{"classify", "--model", dir, "--labels", "a,b", "--text", "x", "--bias", "c=1"}, `"c", which is not one of --labels`},
		{"bias twice", []string{"classify", "--model", dir, "--labels", "a,b", "--text", "x", "--bias", "a=1,a=2"}, "given twice"},
		{"extract max-tokens negative", []string{"extract", "--model", dir, "--schema", "s.json", "--document", doc, "--max-tokens", "-5"}, "--max-tokens"},
		{"extract max-tokens zero", []string{"extract", "--model", dir, "--schema", "s.json", "--document", doc, "--max-tokens", "0"}, "--max-tokens"},
		{"eval idp limit negative", []string{"eval", "idp", "--model", dir, "--data", "d.jsonl", "--schema", "s.json", "--limit", "-1", "--db", db}, "--limit -1"},
		{"codegen max-tokens", []string{"codegen", "--model", dir, "--task", "x", "--max-tokens", "-1"}, "--max-tokens"},
		{"codegen language", []string{"codegen", "--model", dir, "--task", "x", "--language", "rust"}, "go and python"},
		{"codegen timeout", []string{"codegen", "--model", dir, "--task", "x", "--timeout", "0s"}, "--timeout"},
		{"eval codegen language", []string{"eval", "codegen", "--model", dir, "--data", "x.jsonl", "--language", "rust", "--db", db}, `--language "rust"`},
		// serve: limits given on the command line are not replaced by defaults
		{"serve queue", serve("--queue", "-1"), "--queue -1"},
		{"serve max-batch", serve("--max-batch", "0"), "--max-batch 0"},
		{"serve timeout", serve("--timeout", "-1s"), "--timeout -1s"},
		{"serve max-tokens", serve("--max-tokens", "0"), "--max-tokens 0"},
		{"serve max-body", serve("--max-body", "-1"), "--max-body -1"},
		{"serve adapters", serve("--adapters", "0"), "--adapters 0"},
		{"serve quant", serve("--quant", "q4"), `--quant "q4"`},
		{"serve adapter as model", []string{"serve", "--model", adapter, "--db", "", "--addr", "127.0.0.1:0"}, "pass it as --adapter"},
		// score
		{"score one id", []string{"score", "--model", dir, "--ids", "5"}, "give at least two ids: the first is the context"},
		// plan
		{"plan memory NaN", []string{"plan", "serve", "--model", dir, "--memory", "NaNGB"}, `"NaNGB"`},
		{"plan memory Inf", []string{"plan", "serve", "--model", dir, "--memory", "InfGB"}, `"InfGB"`},
		{"plan memory zero", []string{"plan", "serve", "--model", dir, "--memory", "0GB"}, `"0GB"`},
		{"plan memory overflow", []string{"plan", "serve", "--model", dir, "--memory", "1e30TB"}, `"1e30TB"`},
		// not a model folder
		{"adapter as model", []string{"score", "--model", adapter, "--ids", "1,2"}, adapter + " is a LoRA adapter (adapter_config.json): pass it as --adapter and its base model"},
		{"adapter as model, generate", []string{"generate", "--model", adapter, "--prompt", "hi"}, "is a LoRA adapter"},
		{"adapter as model, classify", []string{"classify", "--model", adapter, "--labels", "a,b", "--text", "x"}, "is a LoRA adapter"},
		{"adapter as model, extract", []string{"extract", "--model", adapter, "--schema", "../examples/invoices/schema.json", "--document", doc}, "is a LoRA adapter"},
		{"run folder as model", []string{"score", "--model", runFolder, "--ids", "1,2"}, "training run's folder"},
		{"empty folder as model", []string{"generate", "--model", emptyDir, "--prompt", "hi"}, emptyDir + " has no config.json: not a model folder"},
		{"file as model", []string{"score", "--model", file, "--ids", "1,2"}, file + " has no config.json: not a model folder"},
		// eval classify
		{"balanced negative", []string{"eval", "classify", "--model", dir, "--data", tickets, "--balanced", "-1", "--db", db}, "want a count >= 1"},
		{"balanced zero", []string{"eval", "classify", "--model", dir, "--data", tickets, "--balanced", "0", "--db", db}, "want a count >= 1"},
		{"balanced NaN", []string{"eval", "classify", "--model", dir, "--data", tickets, "--balanced", "NaN", "--db", db}, "want a count >= 1"},
		{"gold label not in --labels", []string{"eval", "classify", "--model", dir, "--data", tickets, "--labels", "account,billing", "--db", db}, tickets + ":3: gold label \"technical\" is not one of --labels"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := run(tc.args...)
			if code == 0 {
				t.Fatal("exit 0")
			}
			if strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, tc.want) || strings.Contains(stderr, "{") {
				t.Fatalf("stderr %q should be one line containing %q", stderr, tc.want)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(tmp, "t.jsonl")); err == nil {
		t.Error("kd traces wrote --out for bad flags")
	}
}

// TestScoreContextLength: more ids than the model's context are refused,
// naming the context length.
func TestScoreContextLength(t *testing.T) {
	dir := tinyModel(t)
	var cfg struct {
		N int `json:"max_position_embeddings"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &cfg); err != nil || cfg.N <= 0 {
		t.Fatalf("config.json: %v, context %d", err, cfg.N)
	}
	ids := strings.TrimSuffix(strings.Repeat("1,", cfg.N+1), ",")
	code, _, stderr := run("score", "--model", dir, "--ids", ids)
	if code == 0 || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "context length of "+strconv.Itoa(cfg.N)) {
		t.Fatalf("exit %d: %q", code, stderr)
	}
}

// TestRunsNeedsExistingDB: runs list|show|rm create no database and do not
// take over a file that is not SQLite.
func TestRunsNeedsExistingDB(t *testing.T) {
	tmp := t.TempDir()
	missing := filepath.Join(tmp, "nonexist", "x.db")
	empty := filepath.Join(tmp, "empty.jsonl")
	os.WriteFile(empty, nil, 0o644)
	text := filepath.Join(tmp, "rows.jsonl")
	os.WriteFile(text, []byte(`{"text": "a", "label": "b"}`+"\n"), 0o644)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"runs", "list", "--db", missing}, "no run database at " + missing + ": train a run first, or pass --db"},
		{[]string{"runs", "show", "x", "--db", missing}, "no run database at"},
		{[]string{"runs", "rm", "x", "--db", missing}, "no run database at"},
		{[]string{"runs", "list", "--db", empty}, empty + " is an empty file, not a run database"},
		{[]string{"runs", "list", "--db", text}, text + " is not an SQLite file"},
		{[]string{"runs", "list", "--db", tmp}, "is a folder"},
	} {
		code, _, stderr := run(tc.args...)
		if code == 0 || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q, want one line with %q", tc.args, code, stderr, tc.want)
		}
	}
	if _, err := os.Stat(filepath.Dir(missing)); err == nil {
		t.Error("runs created the missing database's folder")
	}
	if st, err := os.Stat(empty); err != nil || st.Size() != 0 {
		t.Errorf("runs changed the empty file: %v %v", st, err)
	}
	if b, _ := os.ReadFile(text); string(b) != `{"text": "a", "label": "b"}`+"\n" {
		t.Errorf("runs changed the text file: %q", b)
	}
	// A database training wrote is still read.
	db := filepath.Join(tmp, "distill.db")
	if code, _, stderr := run("eval", "codegen", "--data", "x.jsonl", "--db", db); code == 0 || stderr == "" {
		t.Fatalf("eval codegen without a model: exit %d %q", code, stderr) // creates db as training would
	}
	if code, out, stderr := run("runs", "list", "--db", db, "--json"); code != 0 || strings.TrimSpace(out) != "[]" {
		t.Fatalf("runs list of a new database: exit %d, %q %q", code, out, stderr)
	}
}

func TestCheckServeBenchFlags(t *testing.T) {
	only, err := checkServeBenchFlags(16, 400, 16, 8, " infer/classify , v1/chat,v1/chat", true)
	if err != nil || strings.Join(only, ",") != "infer/classify,v1/chat" {
		t.Fatalf("%v %v", only, err)
	}
	if only, err := checkServeBenchFlags(16, 400, 16, 8, "", false); err != nil || only != nil {
		t.Fatalf("default mix: %v %v", only, err)
	}
	if _, err := serveBench(t.Context(), "unused", 0, 10, 4, 8); err == nil {
		t.Fatal("serveBench with no client: no error")
	}
	if _, err := serveBench(t.Context(), "unused", 1, -5, 4, 8); err == nil {
		t.Fatal("serveBench with -5 requests: no error")
	}
}

// TestServeModelLoadFails: a model folder that passes the checks before
// binding but does not load (no tokenizer.json) still fails the command.
func TestServeModelLoadFails(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "config.json"), []byte("{}"), 0o644)
	if code, _, stderr := run("serve", "--model", dir, "--addr", "127.0.0.1:0", "--db", ""); code != 1 || !strings.Contains(stderr, "distill serve: read tokenizer") {
		t.Fatalf("serve of a folder without tokenizer.json: %d %q", code, stderr)
	}
}
