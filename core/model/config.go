// Package model loads Hugging Face decoder checkpoints (config.json plus
// safetensors, single or sharded) and runs their forward pass with a KV cache
// on a tensor.Backend.
package model

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
)

// Config is the subset of a HF config.json that decoder forward passes need.
type Config struct {
	Architectures    []string     `json:"architectures"`
	ModelType        string       `json:"model_type"`
	HiddenSize       int          `json:"hidden_size"`
	IntermediateSize int          `json:"intermediate_size"`
	NumLayers        int          `json:"num_hidden_layers"`
	NumHeads         int          `json:"num_attention_heads"`
	NumKVHeads       int          `json:"num_key_value_heads"`
	HeadDim          int          `json:"head_dim"`
	RMSNormEps       float64      `json:"rms_norm_eps"`
	RopeTheta        float64      `json:"rope_theta"`
	RopeScaling      *RopeScaling `json:"rope_scaling"`
	// RopeParameters is transformers v5's form of both: rope_theta and the
	// scaling in one object, with no top-level keys (normalise folds it in).
	RopeParameters        *RopeScaling `json:"rope_parameters"`
	PartialRotaryFactor   *float64     `json:"partial_rotary_factor"`
	VocabSize             int          `json:"vocab_size"`
	MaxPositionEmbeddings int          `json:"max_position_embeddings"`
	TieWordEmbeddings     *bool        `json:"tie_word_embeddings"`
	AttentionBias         bool         `json:"attention_bias"`
	MLPBias               bool         `json:"mlp_bias"`
	SlidingWindow         *int         `json:"sliding_window"`
	UseSlidingWindow      *bool        `json:"use_sliding_window"`
	HiddenAct             string       `json:"hidden_act"`
	BOSTokenID            IDList       `json:"bos_token_id"`
	EOSTokenID            IDList       `json:"eos_token_id"`
	TorchDType            string       `json:"torch_dtype"`

	// Window is the sliding window the model attends within, resolved by
	// normalise as transformers does for its architecture (0: none).
	Window int `json:"-"`
}

// RopeScaling is config.json's rope_scaling object ("type" in older files,
// "rope_type" in newer ones).
type RopeScaling struct {
	Type                          string  `json:"type"`
	RopeType                      string  `json:"rope_type"`
	Factor                        float64 `json:"factor"`
	LowFreqFactor                 float64 `json:"low_freq_factor"`
	HighFreqFactor                float64 `json:"high_freq_factor"`
	OriginalMaxPositionEmbeddings int     `json:"original_max_position_embeddings"`
	RopeTheta                     float64 `json:"rope_theta"` // rope_parameters only
}

// Kind is the scaling scheme's name, whichever key the file used.
func (r *RopeScaling) Kind() string {
	if r == nil {
		return "default"
	}
	if r.RopeType != "" {
		return r.RopeType
	}
	if r.Type != "" {
		return r.Type
	}
	return "default"
}

// IDList accepts a token id given as a number, a list of numbers, or null.
type IDList []int

func (l *IDList) UnmarshalJSON(b []byte) error {
	var one *int
	if err := json.Unmarshal(b, &one); err == nil {
		if one != nil {
			*l = IDList{*one}
		}
		return nil
	}
	var many []int
	if err := json.Unmarshal(b, &many); err != nil {
		return fmt.Errorf("want a token id or a list of ids, got %s", b)
	}
	*l = many
	return nil
}

// LoadConfig reads and validates dir/config.json.
func LoadConfig(dir string) (*Config, error) {
	path := filepath.Join(dir, "config.json")
	b, err := os.ReadFile(path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, fmt.Errorf("%s: no config.json: is %s a Hugging Face model folder?", path, dir)
		}
		return nil, err
	}
	var c Config
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(b, &keys); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	if err := c.normalise(keys); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	return &c, nil
}

// normalise fills HF's defaults and rejects configs the forward cannot run.
// keys is config.json's top level, to tell an absent key from a null one.
func (c *Config) normalise(keys map[string]json.RawMessage) error {
	if len(c.Architectures) == 0 {
		return fmt.Errorf("no \"architectures\" entry: cannot tell which model this is")
	}
	if err := c.foldRopeParameters(keys["rope_parameters"]); err != nil {
		return err
	}
	c.Window = c.slidingWindow(keys)
	if f := c.PartialRotaryFactor; f != nil && *f != 1 {
		return fmt.Errorf("partial_rotary_factor %v is not supported (only rotary embeddings over the whole head)", *f)
	}
	if c.NumKVHeads == 0 {
		c.NumKVHeads = c.NumHeads
	}
	if c.RMSNormEps == 0 {
		c.RMSNormEps = 1e-6
	}
	if c.RopeTheta == 0 {
		c.RopeTheta = 10000
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"hidden_size", c.HiddenSize}, {"intermediate_size", c.IntermediateSize}, {"num_hidden_layers", c.NumLayers}, {"num_attention_heads", c.NumHeads}, {"vocab_size", c.VocabSize}} {
		if f.v <= 0 {
			return fmt.Errorf("%q must be a positive integer, got %d", f.name, f.v)
		}
	}
	if c.NumKVHeads < 0 || c.HeadDim < 0 {
		return fmt.Errorf("num_key_value_heads %d and head_dim %d must not be negative", c.NumKVHeads, c.HeadDim)
	}
	if !(c.RMSNormEps > 0) || !(c.RopeTheta > 0) || math.IsInf(c.RopeTheta, 0) || math.IsInf(c.RMSNormEps, 0) {
		return fmt.Errorf("rms_norm_eps %v and rope_theta %v must be positive and finite (every logit would be NaN)", c.RMSNormEps, c.RopeTheta)
	}
	if c.HeadDim == 0 {
		if c.HiddenSize%c.NumHeads != 0 {
			return fmt.Errorf("hidden_size %d is not divisible by num_attention_heads %d and no head_dim is given", c.HiddenSize, c.NumHeads)
		}
		c.HeadDim = c.HiddenSize / c.NumHeads
	}
	if c.HeadDim%2 != 0 {
		return fmt.Errorf("head_dim %d must be even for rotary embeddings", c.HeadDim)
	}
	if c.NumHeads%c.NumKVHeads != 0 {
		return fmt.Errorf("num_attention_heads %d is not a multiple of num_key_value_heads %d", c.NumHeads, c.NumKVHeads)
	}
	if c.HiddenAct != "" && c.HiddenAct != "silu" && c.HiddenAct != "swish" { // transformers' ACT2FN: swish is SiLU
		return fmt.Errorf("hidden_act %q is not supported (only silu)", c.HiddenAct)
	}
	if c.MLPBias {
		return fmt.Errorf("mlp_bias is not supported")
	}
	switch k := c.RopeScaling.Kind(); k {
	case "default":
	case "linear":
		if c.RopeScaling.Factor <= 0 {
			return fmt.Errorf("rope_scaling %q needs a positive factor", k)
		}
	case "llama3":
		r := c.RopeScaling
		if r.Factor <= 0 || r.LowFreqFactor <= 0 || r.HighFreqFactor <= r.LowFreqFactor || r.OriginalMaxPositionEmbeddings <= 0 {
			return fmt.Errorf("rope_scaling llama3 needs factor > 0, 0 < low_freq_factor < high_freq_factor and original_max_position_embeddings > 0")
		}
	default:
		return fmt.Errorf("rope_scaling type %q is not supported (supported: default, linear, llama3)", k)
	}
	return nil
}

// foldRopeParameters takes rope_theta and the scaling from transformers
// v5's rope_parameters when the top-level keys are absent, and refuses a
// file whose two forms disagree. raw is the key's JSON, or nil.
func (c *Config) foldRopeParameters(raw json.RawMessage) error {
	p := c.RopeParameters
	if p == nil {
		return nil
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err == nil {
		for k, v := range fields {
			if len(v) > 0 && v[0] == '{' {
				return fmt.Errorf("rope_parameters.%s: rotary settings per layer type are not supported", k)
			}
		}
	}
	switch {
	case p.RopeTheta == 0:
	case c.RopeTheta == 0:
		c.RopeTheta = p.RopeTheta
	case c.RopeTheta != p.RopeTheta:
		return fmt.Errorf("rope_theta %v and rope_parameters.rope_theta %v disagree", c.RopeTheta, p.RopeTheta)
	}
	switch {
	case p.Kind() == "default":
	case c.RopeScaling == nil:
		c.RopeScaling = p
	case c.RopeScaling.Kind() != p.Kind() || c.RopeScaling.Factor != p.Factor:
		return fmt.Errorf("rope_scaling (%s, factor %v) and rope_parameters (%s, factor %v) disagree",
			c.RopeScaling.Kind(), c.RopeScaling.Factor, p.Kind(), p.Factor)
	}
	return nil
}

// slidingWindow is the window transformers attends within for this config:
// Mistral's sliding_window (4096 when the key is absent, none when null);
// Qwen2's and Qwen3's only under use_sliding_window (false by default);
// none for Llama, whose attention has no window.
func (c *Config) slidingWindow(keys map[string]json.RawMessage) int {
	w := 0
	if c.SlidingWindow != nil {
		w = max(*c.SlidingWindow, 0)
	}
	for _, a := range c.Architectures {
		switch a {
		case "MistralForCausalLM":
			if _, set := keys["sliding_window"]; !set {
				return 4096
			}
			return w
		case "Qwen2ForCausalLM", "Qwen3ForCausalLM":
			if c.UseSlidingWindow == nil || !*c.UseSlidingWindow {
				return 0
			}
			return w
		}
	}
	return 0
}
