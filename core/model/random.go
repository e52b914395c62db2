package model

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"distill/core/tensor"
)

// Shape names a decoder's dimensions, enough to write a random checkpoint of
// a real model's size (benchmarks, the bundled demo, tests).
type Shape struct {
	Arch                   string // e.g. "LlamaForCausalLM"
	Hidden, Intermediate   int
	Layers, Heads, KVHeads int
	HeadDim                int // 0: Hidden / Heads
	Vocab                  int
	Tied                   bool
	RopeTheta, RMSNormEps  float64
	MaxPositions           int
	BOS, EOS               int
	// EmbedStd is the embedding's initial standard deviation (0: 0.02).
	// With tied embeddings it also bounds the logits a frozen head can
	// reach, which a tiny model meant for adapters needs larger.
	EmbedStd float64
}

// Shapes of real checkpoints, by name.
var Shapes = map[string]Shape{
	"smollm2-135m": {Arch: "LlamaForCausalLM", Hidden: 576, Intermediate: 1536, Layers: 30, Heads: 9, KVHeads: 3, Vocab: 49152, Tied: true, RopeTheta: 100000, RMSNormEps: 1e-5, MaxPositions: 8192, BOS: 1, EOS: 2},
	// demo: the bundled offline default (Qwen3's real tokenizer, tiny random
	// weights) until a trained demo model replaces it.
	"demo":         {Arch: "Qwen3ForCausalLM", Hidden: 64, Intermediate: 192, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 16, Vocab: 151936, Tied: true, RopeTheta: 1000000, RMSNormEps: 1e-6, MaxPositions: 4096, BOS: 151643, EOS: 151645, EmbedStd: 0.3},
	"qwen2.5-0.5b": {Arch: "Qwen2ForCausalLM", Hidden: 896, Intermediate: 4864, Layers: 24, Heads: 14, KVHeads: 2, Vocab: 151936, Tied: true, RopeTheta: 1000000, RMSNormEps: 1e-6, MaxPositions: 32768, BOS: 151643, EOS: 151645},
	"qwen2.5-1.5b": {Arch: "Qwen2ForCausalLM", Hidden: 1536, Intermediate: 8960, Layers: 28, Heads: 12, KVHeads: 2, Vocab: 151936, Tied: true, RopeTheta: 1000000, RMSNormEps: 1e-6, MaxPositions: 32768, BOS: 151643, EOS: 151645},
	"qwen2.5-3b":   {Arch: "Qwen2ForCausalLM", Hidden: 2048, Intermediate: 11008, Layers: 36, Heads: 16, KVHeads: 2, Vocab: 151936, Tied: true, RopeTheta: 1000000, RMSNormEps: 1e-6, MaxPositions: 32768, BOS: 151643, EOS: 151645},
}

// BenchDir is where benchmarks and `distill bench` keep their random
// checkpoints across runs (os.TempDir()/distill-bench).
func BenchDir() string { return filepath.Join(os.TempDir(), "distill-bench") }

// LoadRandom loads the random model of shape name at dtype dt kept under
// root (BenchDir's layout: root/<name>-<dtype>), writing it first (seed 1)
// when root holds none.
func LoadRandom(root, name string, dt tensor.DType) (*Model, error) {
	s, ok := Shapes[name]
	if !ok {
		return nil, fmt.Errorf("unknown shape %q", name)
	}
	dir := filepath.Join(root, name+"-"+strings.ToLower(dt.String()))
	if _, err := os.Stat(filepath.Join(dir, "model.safetensors")); err != nil {
		if err := WriteRandom(dir, s, dt, 1); err != nil {
			return nil, err
		}
	}
	return Load(dir)
}

// WriteRandom writes a HF model folder (config.json, model.safetensors) with
// random weights of the given shape and dtype: N(0, 0.02²) projections,
// norms near 1. The same seed writes the same bytes.
func WriteRandom(dir string, s Shape, dt tensor.DType, seed uint64) error {
	arch, ok := arches[s.Arch]
	if !ok {
		return fmt.Errorf("unknown architecture %q", s.Arch)
	}
	if s.HeadDim == 0 {
		s.HeadDim = s.Hidden / s.Heads
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	var ts []*tensor.Tensor
	add := func(name string, std, mean float64, shape ...int) {
		t := tensor.New(name, dt, shape...)
		fill(t, rng, std, mean)
		ts = append(ts, t)
	}
	qOut, kvOut := s.Heads*s.HeadDim, s.KVHeads*s.HeadDim
	embedStd := s.EmbedStd
	if embedStd == 0 {
		embedStd = 0.02
	}
	add("model.embed_tokens.weight", embedStd, 0, s.Vocab, s.Hidden)
	add("model.norm.weight", 0.05, 1, s.Hidden)
	if !s.Tied {
		add("lm_head.weight", 0.02, 0, s.Vocab, s.Hidden)
	}
	for l := 0; l < s.Layers; l++ {
		p := fmt.Sprintf("model.layers.%d.", l)
		add(p+"input_layernorm.weight", 0.05, 1, s.Hidden)
		add(p+"post_attention_layernorm.weight", 0.05, 1, s.Hidden)
		add(p+"self_attn.q_proj.weight", 0.02, 0, qOut, s.Hidden)
		add(p+"self_attn.k_proj.weight", 0.02, 0, kvOut, s.Hidden)
		add(p+"self_attn.v_proj.weight", 0.02, 0, kvOut, s.Hidden)
		add(p+"self_attn.o_proj.weight", 0.02, 0, s.Hidden, qOut)
		if arch.QKVBias {
			add(p+"self_attn.q_proj.bias", 0.02, 0, qOut)
			add(p+"self_attn.k_proj.bias", 0.02, 0, kvOut)
			add(p+"self_attn.v_proj.bias", 0.02, 0, kvOut)
		}
		if arch.QKNorm {
			add(p+"self_attn.q_norm.weight", 0.05, 1, s.HeadDim)
			add(p+"self_attn.k_norm.weight", 0.05, 1, s.HeadDim)
		}
		add(p+"mlp.gate_proj.weight", 0.02, 0, s.Intermediate, s.Hidden)
		add(p+"mlp.up_proj.weight", 0.02, 0, s.Intermediate, s.Hidden)
		add(p+"mlp.down_proj.weight", 0.02, 0, s.Hidden, s.Intermediate)
	}
	if err := WriteSafetensors(filepath.Join(dir, "model.safetensors"), ts, map[string]string{"format": "pt"}); err != nil {
		return err
	}
	cfg := map[string]any{
		"architectures":           []string{s.Arch},
		"hidden_size":             s.Hidden,
		"intermediate_size":       s.Intermediate,
		"num_hidden_layers":       s.Layers,
		"num_attention_heads":     s.Heads,
		"num_key_value_heads":     s.KVHeads,
		"head_dim":                s.HeadDim,
		"vocab_size":              s.Vocab,
		"tie_word_embeddings":     s.Tied,
		"rope_theta":              s.RopeTheta,
		"rms_norm_eps":            s.RMSNormEps,
		"max_position_embeddings": s.MaxPositions,
		"hidden_act":              "silu",
		"bos_token_id":            s.BOS,
		"eos_token_id":            s.EOS,
		"torch_dtype":             map[tensor.DType]string{tensor.F32: "float32", tensor.F16: "float16", tensor.BF16: "bfloat16"}[dt],
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "config.json"), append(b, '\n'), 0o644)
}

func fill(t *tensor.Tensor, rng *rand.Rand, std, mean float64) {
	n := t.Elems()
	switch t.DType {
	case tensor.F32:
		v := t.F32s()
		for i := 0; i < n; i++ {
			v[i] = float32(mean + std*rng.NormFloat64())
		}
	case tensor.BF16:
		v := t.U16s()
		for i := 0; i < n; i++ {
			v[i] = tensor.F32ToBF16(float32(mean + std*rng.NormFloat64()))
		}
	case tensor.F16:
		v := t.U16s()
		for i := 0; i < n; i++ {
			v[i] = tensor.F32ToF16(float32(mean + std*rng.NormFloat64()))
		}
	}
}
