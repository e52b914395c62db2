//go:build cuda

package cuda_test

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"distill/core/model"
	"distill/core/quant"
	"distill/core/tensor"
	"distill/cuda"
)

// A whole decoder on the CUDA backend against the CPU backend: a random
// Llama checkpoint with llama3 RoPE scaling (the tables come from
// core/model, the kernel rotates by them), BF16 weights and NF4
// double-quantised ones, a 20-token prefill then three single-token decode
// steps through the KV cache. This runs every Backend method the model uses
// through the real forward code.
func TestModelForwardParity(t *testing.T) {
	d := device(t)
	dir := t.TempDir()
	s := model.Shape{Arch: "LlamaForCausalLM", Hidden: 128, Intermediate: 344, Layers: 2, Heads: 4, KVHeads: 2,
		Vocab: 1000, RopeTheta: 500000, RMSNormEps: 1e-5, MaxPositions: 256, BOS: 1, EOS: 2}
	ok(t, model.WriteRandom(dir, s, tensor.BF16, 5))
	addLlama3Scaling(t, filepath.Join(dir, "config.json"))
	be := cuda.NewBackend(d)
	t.Cleanup(func() { be.Release() })
	for _, q := range []string{"none", "nf4"} {
		t.Run(q, func(t *testing.T) {
			m, err := model.Load(dir)
			ok(t, err)
			t.Cleanup(func() { m.Close() })
			if m.Config.RopeScaling.Kind() != "llama3" {
				t.Fatalf("rope scaling %q, want llama3", m.Config.RopeScaling.Kind())
			}
			_, err = quant.QuantizeModel(m, q, q == "nf4", false)
			ok(t, err)
			ids := make([]int, 23)
			r := rng(8)
			for i := range ids {
				ids[i] = r.IntN(s.Vocab)
			}
			want := runModel(t, m, tensor.CPU{}, ids)
			got := runModel(t, m, be, ids)
			for step := range want {
				// bf16 activations into every GEMM on the GPU (f32 on the CPU): each
				// rounds to 2^-9 relative; through two layers ~1e-2 of the logits'
				// scale, the bf16 tolerance of the issue.
				near(t, shapeName("logits step %d", step), got[step], want[step], 1e-2, 1e-2*rms(want[step]))
			}
		})
	}
}

func addLlama3Scaling(t *testing.T, path string) {
	raw, err := os.ReadFile(path)
	ok(t, err)
	var cfg map[string]any
	ok(t, json.Unmarshal(raw, &cfg))
	cfg["rope_scaling"] = map[string]any{"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
		"high_freq_factor": 4.0, "original_max_position_embeddings": 64}
	raw, err = json.Marshal(cfg)
	ok(t, err)
	ok(t, os.WriteFile(path, raw, 0o644))
}

// runModel returns the last position's logits after a prefill of all but
// three ids, then after each of the three decode steps.
func runModel(t *testing.T, m *model.Model, be tensor.Backend, ids []int) [][]float32 {
	c := m.NewCache(len(ids))
	var out [][]float32
	step := func(chunk []int) {
		h, err := m.Forward(be, chunk, c, nil)
		ok(t, err)
		T := len(chunk)
		D, V := m.Config.HiddenSize, m.Config.VocabSize
		logits := make([]float32, V)
		m.Logits(be, logits, h[(T-1)*D:T*D], 1)
		out = append(out, logits)
	}
	n := len(ids) - 3
	step(ids[:n])
	for i := n; i < len(ids); i++ {
		step(ids[i : i+1])
	}
	return out
}

func rms(v []float32) float64 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	return math.Sqrt(s / float64(max(1, len(v))))
}
