package model

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// ContextLimit is the shorter of max_position_embeddings and the sliding
// window transformers would use for the config (CheckContext refuses past
// it): Mistral's window is on unless null (4096 when the key is absent),
// Qwen2's and Qwen3's only under use_sliding_window, Llama has none.
func TestContextLimitHonoursTheSlidingWindow(t *testing.T) {
	for _, c := range []struct {
		arch, keys string
		want       int
	}{
		{"LlamaForCausalLM", ``, 0},
		{"LlamaForCausalLM", `"max_position_embeddings":64`, 64},
		{"LlamaForCausalLM", `"max_position_embeddings":64,"sliding_window":16`, 64},
		{"MistralForCausalLM", `"max_position_embeddings":64,"sliding_window":16`, 16},
		{"MistralForCausalLM", `"max_position_embeddings":64,"sliding_window":16,"use_sliding_window":false`, 16},
		{"MistralForCausalLM", `"max_position_embeddings":64,"sliding_window":null`, 64},
		{"MistralForCausalLM", `"max_position_embeddings":32768`, 4096},
		{"MistralForCausalLM", `"sliding_window":16`, 16},
		{"MistralForCausalLM", `"max_position_embeddings":8,"sliding_window":16`, 8},
		{"Qwen2ForCausalLM", `"max_position_embeddings":64,"sliding_window":16`, 64},
		{"Qwen2ForCausalLM", `"max_position_embeddings":64,"sliding_window":16,"use_sliding_window":false`, 64},
		{"Qwen2ForCausalLM", `"max_position_embeddings":64,"sliding_window":16,"use_sliding_window":true`, 16},
		{"Qwen3ForCausalLM", `"max_position_embeddings":64,"sliding_window":16,"use_sliding_window":true`, 16},
	} {
		cfg, err := parseConfig(t, c.arch, c.keys)
		if err != nil {
			t.Fatalf("%s %s: %v", c.arch, c.keys, err)
		}
		m := &Model{Config: *cfg}
		if got := m.ContextLimit(); got != c.want {
			t.Errorf("%s {%s}: limit %d, want %d", c.arch, c.keys, got, c.want)
		}
		if w := m.Config.Window; w > 0 && (m.CheckContext(w) != nil || m.CheckContext(w+1) == nil) {
			t.Errorf("%s {%s}: CheckContext does not refuse past the window %d", c.arch, c.keys, w)
		}
	}
}

// parseConfig loads a small config.json of arch with extra keys.
func parseConfig(t *testing.T, arch, keys string) (*Config, error) {
	t.Helper()
	body := `"architectures":["` + arch + `"],"hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,"num_attention_heads":4,"vocab_size":100`
	if keys != "" {
		body += "," + keys
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte("{"+body+"}"), 0o644); err != nil {
		t.Fatal(err)
	}
	return LoadConfig(dir)
}

// transformers v5 writes rope_theta and the scaling into rope_parameters,
// with no top-level keys: both are read from there (before, theta fell back
// to 10000 and the scaling was dropped), and forms that disagree, settings
// per layer type and scalings the engine lacks are refused.
func TestConfigReadsRopeParameters(t *testing.T) {
	cfg, err := parseConfig(t, "LlamaForCausalLM", `"rope_parameters":{"rope_theta":500000,"rope_type":"llama3","factor":8,"low_freq_factor":1,"high_freq_factor":4,"original_max_position_embeddings":64}`)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RopeTheta != 500000 || cfg.RopeScaling.Kind() != "llama3" || cfg.RopeScaling.Factor != 8 {
		t.Errorf("theta %v scaling %+v, want 500000 and llama3 ×8", cfg.RopeTheta, cfg.RopeScaling)
	}
	cfg, err = parseConfig(t, "Qwen2ForCausalLM", `"rope_theta":null,"rope_parameters":{"rope_theta":1000000,"rope_type":"default"}`)
	if err != nil || cfg.RopeTheta != 1000000 || cfg.RopeScaling.Kind() != "default" {
		t.Errorf("qwen2 v5 config: theta %v scaling %v, err %v", cfg.RopeTheta, cfg.RopeScaling.Kind(), err)
	}
	for _, c := range []struct{ keys, want string }{
		{`"rope_parameters":{"rope_theta":10000,"rope_type":"yarn","factor":4}`, `"yarn" is not supported`},
		{`"rope_theta":10000,"rope_parameters":{"rope_theta":500000}`, "disagree"},
		{`"rope_scaling":{"rope_type":"linear","factor":2},"rope_parameters":{"rope_type":"linear","factor":4}`, "disagree"},
		{`"rope_parameters":{"full_attention":{"rope_theta":10000},"sliding_attention":{"rope_theta":10000}}`, "per layer type"},
		{`"partial_rotary_factor":0.5`, "partial_rotary_factor"},
	} {
		if _, err := parseConfig(t, "LlamaForCausalLM", c.keys); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("{%s}: %v, want an error saying %q", c.keys, err, c.want)
		}
	}
	if _, err := parseConfig(t, "LlamaForCausalLM", `"hidden_act":"swish","partial_rotary_factor":1.0`); err != nil {
		t.Errorf("swish is SiLU and a factor of 1 is the whole head: %v", err)
	}
}

// A config.json whose numbers would make every logit NaN, or whose head
// counts are negative, is refused naming the keys.
func TestConfigRefusesNonsense(t *testing.T) {
	base := `"architectures":["LlamaForCausalLM"],"hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,"num_attention_heads":4,"vocab_size":100`
	for _, c := range []struct{ extra, want string }{
		{`"rope_theta":-10000`, "rope_theta"},
		{`"rms_norm_eps":-1e-6`, "rms_norm_eps"},
		{`"num_key_value_heads":-2`, "num_key_value_heads"},
		{`"head_dim":-16`, "head_dim"},
	} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte("{"+base+","+c.extra+"}"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadConfig(dir); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error naming %s", c.extra, err, c.want)
		}
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "config.json"), []byte("{"+base+"}"), 0o644)
	if _, err := LoadConfig(dir); err != nil {
		t.Errorf("a plain config: %v", err)
	}
}
