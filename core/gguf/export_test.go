package gguf_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"distill/core/gguf"
	"distill/core/lora"
	"distill/core/model"
)

// fixtureWithTokenizer copies a torchref fixture into a temp folder with
// the byte-level tokenizer.
func fixtureWithTokenizer(t *testing.T, fixture string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), fixture)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"config.json", "generation_config.json", "model.safetensors"} {
		b, err := os.ReadFile(filepath.Join("..", "model", "testdata", fixture, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeByteTokenizer(t, dir)
	return dir
}

func exportTo(t testing.TB, m *model.Model, a *lora.Adapter, path string, typ gguf.FileType) error {
	t.Helper()
	return gguf.Export(context.Background(), m, merged(t, m, a), path, gguf.Options{Type: typ, Name: "case"})
}

// merged is m's tensors with a (nil: none) folded in, closed with the test.
func merged(t testing.TB, m *model.Model, a *lora.Adapter) gguf.Source {
	t.Helper()
	src, err := lora.OpenMerged(m, a)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	return src
}

// An adapter folded in on the way out gives the very file that exporting
// the merged HF checkpoint gives: the GGUF path reuses the merge, and
// llama.cpp's reading of the merged weights is checked by
// TestLlamaCppReadsExport.
func TestExportWithAdapterIsExportOfMerged(t *testing.T) {
	for _, tc := range []struct {
		fixture string
		typ     gguf.FileType
	}{{"llama3-bf16", gguf.MostlyBF16}, {"qwen2-f32", gguf.AllF32}, {"qwen3-f32", gguf.MostlyQ8_0}, {"mistral-f32", gguf.MostlyQ4_K_M}} {
		t.Run(tc.fixture, func(t *testing.T) {
			dir := fixtureWithTokenizer(t, tc.fixture)
			m, err := model.Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			a, err := lora.NewFor(m, lora.Config{R: 4, Alpha: 8, Targets: lora.Modules})
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(3, 4))
			for _, layer := range a.Layers {
				for _, p := range layer {
					if p == nil {
						continue
					}
					for i := range p.A {
						p.A[i] = float32(rng.NormFloat64() * 0.1)
					}
					for i := range p.B {
						p.B[i] = float32(rng.NormFloat64() * 0.1)
					}
				}
			}
			out := t.TempDir()
			direct := filepath.Join(out, "direct.gguf")
			if err := exportTo(t, m, a, direct, tc.typ); err != nil {
				t.Fatal(err)
			}
			mergedDir := filepath.Join(out, "merged")
			if err := lora.Merge(m, a, mergedDir, lora.KeepDType); err != nil {
				t.Fatal(err)
			}
			mm, err := model.Load(mergedDir)
			if err != nil {
				t.Fatal(err)
			}
			defer mm.Close()
			viaMerge := filepath.Join(out, "via-merge.gguf")
			if err := exportTo(t, mm, nil, viaMerge, tc.typ); err != nil {
				t.Fatal(err)
			}
			plain := filepath.Join(out, "plain.gguf")
			if err := exportTo(t, m, nil, plain, tc.typ); err != nil {
				t.Fatal(err)
			}
			a1, _ := os.ReadFile(direct)
			a2, _ := os.ReadFile(viaMerge)
			a3, _ := os.ReadFile(plain)
			if !bytes.Equal(a1, a2) {
				t.Errorf("export with the adapter (%d bytes) differs from the export of the merged checkpoint (%d bytes)", len(a1), len(a2))
			}
			if bytes.Equal(a1, a3) {
				t.Errorf("the adapter changed nothing in the file")
			}
		})
	}
}

// A tokenizer llama.cpp would read differently is refused, naming the
// file and the setting, and leaves nothing behind.
func TestExportRefusesTokenizers(t *testing.T) {
	for _, tc := range []struct {
		name  string
		edit  func(tj map[string]any)
		want  []string
		noEOS bool
	}{
		{"unnamed pre-tokenizer", func(tj map[string]any) {
			tj["pre_tokenizer"] = map[string]any{"type": "Sequence", "pretokenizers": []any{
				map[string]any{"type": "Digits", "individual_digits": false},
				map[string]any{"type": "ByteLevel", "use_regex": true}}}
		}, []string{"tokenizer.json", "pre_tokenizer", "llama.cpp"}, false},
		{"byte-level prefix space", func(tj map[string]any) {
			tj["pre_tokenizer"].(map[string]any)["add_prefix_space"] = true
		}, []string{"tokenizer.json", "add_prefix_space"}, false},
		{"lowercasing normalizer", func(tj map[string]any) {
			tj["normalizer"] = map[string]any{"type": "Sequence", "normalizers": []any{
				map[string]any{"type": "NFC"}, map[string]any{"type": "Lowercase"}}}
		}, []string{"tokenizer.json", "Lowercase"}, false},
		{"SentencePiece with a byte-level pre-tokenizer", func(tj map[string]any) {
			tj["model"].(map[string]any)["byte_fallback"] = true
		}, []string{"tokenizer.json", "pre_tokenizer", "Metaspace"}, false},
		{"SentencePiece stripping accents", func(tj map[string]any) {
			tj["model"].(map[string]any)["byte_fallback"] = true
			tj["pre_tokenizer"] = nil
			tj["normalizer"] = map[string]any{"type": "StripAccents"}
		}, []string{"tokenizer.json", "StripAccents"}, false},
		{"a token spelled twice", func(tj map[string]any) {
			tj["added_tokens"] = []any{map[string]any{"id": 300, "content": "!", "special": true}}
		}, []string{"tokenizer.json", `"!"`, "33", "300"}, false},
		{"no end-of-sequence token", nil, []string{"eos_token_id", "default id"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := fixtureWithTokenizer(t, "qwen2-f32")
			if tc.edit != nil {
				writeByteTokenizer(t, dir, tc.edit)
			}
			if tc.noEOS {
				for _, f := range []string{"config.json", "generation_config.json"} {
					var cfg map[string]any
					readJSON(t, filepath.Join(dir, f), &cfg)
					delete(cfg, "eos_token_id")
					b, _ := json.Marshal(cfg)
					os.WriteFile(filepath.Join(dir, f), b, 0o644)
				}
			}
			m, err := model.Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			out := filepath.Join(t.TempDir(), "x.gguf")
			err = exportTo(t, m, nil, out, gguf.AllF32)
			if err == nil {
				t.Fatal("exported")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %s", err, w)
				}
			}
			if left, _ := os.ReadDir(filepath.Dir(out)); len(left) > 0 {
				t.Errorf("a refused export left %s behind", left[0].Name())
			}
		})
	}
}

// Qwen3 with attention_bias has an o_proj bias llama.cpp's qwen3 cannot
// hold: refused, never written without it (which loads and is wrong).
func TestExportRefusesQwen3OutputBias(t *testing.T) {
	dir := fixtureWithTokenizer(t, "qwen3-v5-f32")
	m, err := model.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	out := filepath.Join(t.TempDir(), "x.gguf")
	if err := exportTo(t, m, nil, out, gguf.AllF32); err == nil || !strings.Contains(err.Error(), "attn_output.bias") {
		t.Errorf("Qwen3 with an o_proj bias: %v", err)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("the refused export left a file")
	}
}

func TestExportRefuses(t *testing.T) {
	dir := fixtureWithTokenizer(t, "qwen2-f32")
	m, err := model.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	out := filepath.Join(t.TempDir(), "x.gguf")

	// No tokenizer at all.
	os.Remove(filepath.Join(dir, "tokenizer.json"))
	err = exportTo(t, m, nil, out, gguf.AllF32)
	if err == nil || !strings.Contains(err.Error(), "tokenizer.json") {
		t.Errorf("no tokenizer: %v", err)
	}

	// A weight Q8_0 cannot scale, found while the data is being written.
	writeByteTokenizer(t, dir)
	a, err := lora.NewFor(m, lora.Config{R: 2, Alpha: 2, Targets: []string{"down_proj"}})
	if err != nil {
		t.Fatal(err)
	}
	p := a.Layers[len(a.Layers)-1][lora.ModuleIndex("down_proj")]
	p.A[0], p.B[0] = float32(math.NaN()), 1
	err = exportTo(t, m, a, out, gguf.MostlyQ8_0)
	if err == nil || !strings.Contains(err.Error(), "blk.1.ffn_down.weight") {
		t.Errorf("NaN weight: %v", err)
	}
	if _, serr := os.Stat(out); serr == nil {
		t.Errorf("a failed export left %s behind", out)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(out), ".*")); len(left) > 0 {
		t.Errorf("a failed export left %v behind", left)
	}

	// A weight past f16's range (it would be stored as Inf), and a NaN at
	// f32, are refused by tensor.
	p.A[0], p.B[0] = 1e4, 1e4
	err = exportTo(t, m, a, out, gguf.MostlyF16)
	if err == nil || !strings.Contains(err.Error(), "blk.1.ffn_down.weight") || !strings.Contains(err.Error(), "f16's range") {
		t.Errorf("f16 overflow: %v", err)
	}
	p.A[0] = float32(math.NaN())
	if err := exportTo(t, m, a, out, gguf.AllF32); err == nil || !strings.Contains(err.Error(), "diverged") {
		t.Errorf("NaN at f32: %v", err)
	}

	// Cancelled (Ctrl-C): stopped, and nothing left behind.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := gguf.Export(ctx, m, merged(t, m, nil), out, gguf.Options{Type: gguf.AllF32}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled export: %v", err)
	}
	if left, _ := os.ReadDir(filepath.Dir(out)); len(left) > 0 {
		t.Errorf("a cancelled export left %s behind", left[0].Name())
	}

	// Cancelled in the middle of a tensor (a quantised matrix takes
	// seconds): its next write fails, and nothing is left behind.
	ctx, cancel = context.WithCancel(context.Background())
	chunks := 0
	ti := gguf.TensorInfo{Name: "big.weight", Dims: []uint64{8, 2}, Type: gguf.F32, Write: func(w io.Writer) error {
		for range 2 {
			if _, err := w.Write(make([]byte, 32)); err != nil {
				return err
			}
			chunks++
			cancel()
		}
		return nil
	}}
	if err := gguf.WriteFile(ctx, out, nil, []gguf.TensorInfo{ti}); !errors.Is(err, context.Canceled) || chunks != 1 {
		t.Errorf("cancelled within a tensor: %v after %d chunks", err, chunks)
	}
	if left, _ := os.ReadDir(filepath.Dir(out)); len(left) > 0 {
		t.Errorf("a cancelled export left %s behind", left[0].Name())
	}

	// The same adapter as a GGUF adapter: named, and nothing written.
	err = gguf.ExportAdapter(context.Background(), m, a, out)
	if err == nil || !strings.Contains(err.Error(), "blk.1.ffn_down.weight.lora_a[0]") {
		t.Errorf("NaN adapter: %v", err)
	}
	// An adapter at alpha 0, which llama.cpp would apply at scale 1.
	p.A[0] = 0
	a.Config.Alpha = 0
	err = gguf.ExportAdapter(context.Background(), m, a, out)
	if err == nil || !strings.Contains(err.Error(), "lora_alpha is 0") {
		t.Errorf("alpha 0: %v", err)
	}
	if _, serr := os.Stat(out); serr == nil {
		t.Errorf("a refused adapter export left %s behind", out)
	}
}

// Added tokens that tokenizer.json leaves unmarked but that are control
// tokens by their spelling are stored as control tokens, as llama.cpp's
// converter stores them; others stay user-defined.
func TestExportTokenTypes(t *testing.T) {
	dir := fixtureWithTokenizer(t, "qwen2-f32")
	writeByteTokenizer(t, dir, func(tj map[string]any) {
		tj["added_tokens"] = []any{
			map[string]any{"id": 300, "content": "<|fim_prefix|>", "special": false},
			map[string]any{"id": 301, "content": "<think>", "special": false},
			map[string]any{"id": 302, "content": "<|im_end|>", "special": true},
		}
	})
	m, err := model.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	kvs, err := gguf.VocabKVs(m)
	if err != nil {
		t.Fatal(err)
	}
	var types []int32
	for _, kv := range kvs {
		if kv.Key == "tokenizer.ggml.token_type" {
			types = kv.Value.([]int32)
		}
	}
	const normal, control, userDefined, unused = 1, 3, 4, 5
	for id, want := range map[int]int32{33: normal, 300: control, 301: userDefined, 302: control, 303: unused} {
		if types[id] != want {
			t.Errorf("token %d has type %d, want %d", id, types[id], want)
		}
	}
}
