package lora

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"distill/core/model"
	"distill/core/tensor"
)

const llama3 = "../model/testdata/llama3-f32" // 2 layers, hidden 64, 4 heads, 2 kv, head_dim 16, inter 128

func loadModel(t testing.TB, dir string) *model.Model {
	t.Helper()
	m, err := model.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func allTargets() Config {
	return Config{R: 4, Alpha: 8, Targets: append([]string(nil), Modules...)}
}

// randomAdapter is Init plus a non-zero B ~ N(0, std²), so the adapter
// changes the model.
func randomAdapter(t testing.TB, m *model.Model, cfg Config, seed uint64, std float64) *Adapter {
	t.Helper()
	a, err := NewFor(m, cfg)
	if err != nil {
		t.Fatal(err)
	}
	Init(a, seed)
	rng := rand.New(rand.NewPCG(seed, 99))
	for _, layer := range a.Layers {
		for _, p := range layer {
			if p != nil {
				for i := range p.B {
					p.B[i] = float32(std * rng.NormFloat64())
				}
			}
		}
	}
	return a
}

func TestDimsOf(t *testing.T) {
	for _, tc := range []struct {
		dir  string
		want map[string][2]int // module: (in, out)
	}{
		{llama3, map[string][2]int{"q_proj": {64, 64}, "k_proj": {64, 32}, "v_proj": {64, 32}, "o_proj": {64, 64}, "gate_proj": {64, 128}, "up_proj": {64, 128}, "down_proj": {128, 64}}},
		// Qwen3: head_dim 32 ≠ hidden/heads, so q is 64 → 128 and o 128 → 64.
		{"../model/testdata/qwen3-f32", map[string][2]int{"q_proj": {64, 128}, "k_proj": {64, 64}, "v_proj": {64, 64}, "o_proj": {128, 64}, "gate_proj": {64, 128}, "up_proj": {64, 128}, "down_proj": {128, 64}}},
	} {
		m := loadModel(t, tc.dir)
		dims := DimsOf(m)
		for mod, want := range tc.want {
			in, out := dims(mod)
			if in != want[0] || out != want[1] {
				t.Errorf("%s %s: (in %d, out %d), want %v", tc.dir, mod, in, out, want)
			}
			// and the base weight it adapts is (out, in)
			w := Weight(&m.Layers[0], ModuleIndex(mod)).(*tensor.Tensor)
			if w.Shape[0] != out || w.Shape[1] != in {
				t.Errorf("%s %s: weight %v, dims say (out %d, in %d)", tc.dir, mod, w.Shape, out, in)
			}
		}
	}
}

func TestNewFor(t *testing.T) {
	m := loadModel(t, llama3)
	a, err := NewFor(m, Config{R: 2, Alpha: 4, Targets: []string{"v_proj", "q_proj"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Layers) != 2 || a.Config.BaseModel != llama3 {
		t.Fatalf("layers %d, base %q", len(a.Layers), a.Config.BaseModel)
	}
	if want := 2 * (2*(64+64) + 2*(64+32)); len(a.Params) != want {
		t.Errorf("%d params, want %d", len(a.Params), want)
	}
	if err := a.Matches(m); err != nil {
		t.Error(err)
	}
	for l := range a.Layers {
		for i, p := range a.Layers[l] {
			if targeted := Modules[i] == "q_proj" || Modules[i] == "v_proj"; targeted != (p != nil) {
				t.Errorf("layer %d %s: pair %v", l, Modules[i], p)
			}
		}
	}
	if _, err := NewFor(m, Config{R: 0, Targets: []string{"q_proj"}}); err == nil {
		t.Error("rank 0 accepted")
	}
}

func TestInitBoundIsKaimingUniform(t *testing.T) {
	// torch.nn.init.kaiming_uniform_(A, a=√5) on A (r, in): 1/√in.
	for _, in := range []int{1, 64, 896, 4864} {
		if got, want := InitBound(in), 1/math.Sqrt(float64(in)); math.Abs(got-want) > 1e-15*want {
			t.Errorf("InitBound(%d) = %v, want %v", in, got, want)
		}
	}
}

func TestInit(t *testing.T) {
	m := loadModel(t, llama3)
	a, err := NewFor(m, allTargets())
	if err != nil {
		t.Fatal(err)
	}
	for i := range a.Params {
		a.Params[i] = 1 // Init must overwrite everything
	}
	Init(a, 7)
	for l, layer := range a.Layers {
		for i, p := range layer {
			bound := float32(InitBound(p.In))
			var sum, sq float64
			for _, v := range p.A {
				if v < -bound || v > bound {
					t.Fatalf("layer %d %s: A value %v outside ±%v", l, Modules[i], v, bound)
				}
				sum += float64(v)
				sq += float64(v) * float64(v)
			}
			n := float64(len(p.A))
			mean, variance := sum/n, sq/n-(sum/n)*(sum/n)
			// U(-b, b): mean 0 (sd b/√(3n)), variance b²/3.
			b := float64(bound)
			if math.Abs(mean) > 5*b/math.Sqrt(3*n) {
				t.Errorf("layer %d %s: mean %.4f for bound %.4f over %v values", l, Modules[i], mean, b, n)
			}
			// Var(x²)/E[x²]² = 4/5 for a uniform: 4 standard errors.
			if math.Abs(variance/(b*b/3)-1) > 4*math.Sqrt(0.8/n) {
				t.Errorf("layer %d %s: variance %.5f, want ≈ %.5f", l, Modules[i], variance, b*b/3)
			}
			if slices.ContainsFunc(p.B, func(v float32) bool { return v != 0 }) {
				t.Errorf("layer %d %s: B not zero", l, Modules[i])
			}
		}
	}
	again, _ := NewFor(m, allTargets())
	Init(again, 7)
	if !slices.Equal(a.Params, again.Params) {
		t.Error("the same seed gave different parameters")
	}
	other, _ := NewFor(m, allTargets())
	Init(other, 8)
	if slices.Equal(a.Params, other.Params) {
		t.Error("seeds 7 and 8 gave the same parameters")
	}
	// Pairs draw from their own streams: q_proj's A does not depend on what
	// else is targeted.
	qOnly, _ := NewFor(m, Config{R: 4, Alpha: 8, Targets: []string{"q_proj"}})
	Init(qOnly, 7)
	if !slices.Equal(qOnly.Layers[1][0].A, a.Layers[1][0].A) {
		t.Error("layer 1 q_proj A depends on the other targets")
	}
	if slices.Equal(a.Layers[0][0].A, a.Layers[1][0].A) {
		t.Error("layers 0 and 1 share q_proj's A")
	}
}
