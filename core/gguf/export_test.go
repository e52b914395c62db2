package gguf_test

import (
	"bytes"
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

func exportTo(t testing.TB, m *model.Model, a *lora.Adapter, path string, typ gguf.Type) error {
	t.Helper()
	src, err := lora.OpenMerged(m, a)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	return gguf.Export(m, src, path, gguf.Options{Type: typ, Name: "case"})
}

// An adapter folded in on the way out gives the very file that exporting
// the merged HF checkpoint gives: the GGUF path reuses the merge, and
// llama.cpp's reading of the merged weights is checked by
// TestLlamaCppReadsExport.
func TestExportWithAdapterIsExportOfMerged(t *testing.T) {
	for _, tc := range []struct {
		fixture string
		typ     gguf.Type
	}{{"llama3-bf16", gguf.BF16}, {"qwen2-f32", gguf.F32}, {"qwen3-f32", gguf.Q8_0}} {
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

func TestExportRefuses(t *testing.T) {
	dir := fixtureWithTokenizer(t, "qwen2-f32")
	m, err := model.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	out := filepath.Join(t.TempDir(), "x.gguf")

	// A pre-tokenizer llama.cpp has no name for.
	tj, _ := os.ReadFile(filepath.Join(dir, "tokenizer.json"))
	bad := strings.Replace(string(tj), `"pre_tokenizer":{`, `"pre_tokenizer":{"type":"Sequence","pretokenizers":[{"type":"Digits","individual_digits":false},{"type":"ByteLevel","use_regex":true}]},"x":{`, 1)
	if bad == string(tj) {
		t.Fatal("test tokenizer has no pre_tokenizer to replace")
	}
	os.WriteFile(filepath.Join(dir, "tokenizer.json"), []byte(bad), 0o644)
	err = exportTo(t, m, nil, out, gguf.F32)
	if err == nil || !strings.Contains(err.Error(), "tokenizer.json") || !strings.Contains(err.Error(), "llama.cpp") {
		t.Errorf("unnamed pre-tokenizer: %v", err)
	}

	// No tokenizer at all.
	os.Remove(filepath.Join(dir, "tokenizer.json"))
	err = exportTo(t, m, nil, out, gguf.F32)
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
	err = exportTo(t, m, a, out, gguf.Q8_0)
	if err == nil || !strings.Contains(err.Error(), "blk.1.ffn_down.weight") {
		t.Errorf("NaN weight: %v", err)
	}
	if _, serr := os.Stat(out); serr == nil {
		t.Errorf("a failed export left %s behind", out)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(out), ".*")); len(left) > 0 {
		t.Errorf("a failed export left %v behind", left)
	}
}
