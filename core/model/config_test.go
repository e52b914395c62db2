package model

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// ContextLimit is the shorter of max_position_embeddings and a sliding
// window the config turns on (CheckContext refuses past it).
func TestContextLimitHonoursTheSlidingWindow(t *testing.T) {
	m := &Model{}
	w, on, off := 16, true, false
	for _, c := range []struct {
		maxPos int
		window *int
		use    *bool
		want   int
	}{
		{0, nil, nil, 0},
		{64, nil, nil, 64},
		{64, &w, nil, 16},
		{64, &w, &on, 16},
		{64, &w, &off, 64},
		{0, &w, nil, 16},
		{8, &w, nil, 8},
	} {
		m.Config.MaxPositionEmbeddings, m.Config.SlidingWindow, m.Config.UseSlidingWindow = c.maxPos, c.window, c.use
		if got := m.ContextLimit(); got != c.want {
			t.Errorf("max positions %d, window %v, use %v: limit %d, want %d", c.maxPos, c.window != nil, c.use, got, c.want)
		}
		if c.want > 0 && (m.CheckContext(c.want) != nil || (c.window != nil && c.want == w && m.CheckContext(c.want+1) == nil)) {
			t.Errorf("max positions %d, window %v, use %v: CheckContext disagrees with the limit %d", c.maxPos, c.window != nil, c.use, c.want)
		}
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
