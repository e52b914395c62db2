package train

import (
	"math"
	"testing"
)

// TestAdamWMatchesTorch: two steps of torch.optim.AdamW(lr=0.1, wd=0.01) on
// p = [1, -2, 0.5] with grads [0.1, -0.3, 0] then [0.2, 0.1, -0.5], written
// out by hand from the update rule (float64), as torch computes it.
func TestAdamWMatchesTorch(t *testing.T) {
	p := []float32{1, -2, 0.5}
	o := NewAdamW(3, 0.01)
	want := []float64{1, -2, 0.5}
	m, v := make([]float64, 3), make([]float64, 3)
	for step, g := range [][]float32{{0.1, -0.3, 0}, {0.2, 0.1, -0.5}} {
		if err := o.Update(p, g, 0.1); err != nil {
			t.Fatal(err)
		}
		for i := range want {
			gi := float64(g[i])
			m[i] = 0.9*m[i] + 0.1*gi
			v[i] = 0.999*v[i] + 0.001*gi*gi
			mh := m[i] / (1 - math.Pow(0.9, float64(step+1)))
			vh := v[i] / (1 - math.Pow(0.999, float64(step+1)))
			want[i] = want[i]*(1-0.1*0.01) - 0.1*mh/(math.Sqrt(vh)+1e-8)
		}
	}
	// The update runs in f32 (a few roundings of ~6e-8 relative each, the
	// step size lr·m̂/√v̂ ≈ 0.1): a few e-6 of the f64 value.
	for i := range p {
		if math.Abs(float64(p[i])-want[i]) > 5e-6 {
			t.Errorf("p[%d] = %.7f, want %.7f", i, p[i], want[i])
		}
	}
}

func TestClipGradNorm(t *testing.T) {
	g := []float32{3, 4}
	if n := ClipGradNorm(g, 1); n != 5 || math.Abs(float64(g[0])-0.6) > 1e-6 || math.Abs(float64(g[1])-0.8) > 1e-6 {
		t.Fatalf("norm %v, clipped %v", n, g)
	}
	g = []float32{0.3, 0.4}
	if ClipGradNorm(g, 1); g[0] != 0.3 {
		t.Fatalf("clipped below the limit: %v", g)
	}
}

func TestSchedules(t *testing.T) {
	for _, tc := range []struct {
		s    Schedule
		step int
		want float64
	}{
		{Schedule{"linear", 1, 10, 110}, 0, 0},
		{Schedule{"linear", 1, 10, 110}, 5, 0.5},
		{Schedule{"linear", 1, 10, 110}, 10, 1},
		{Schedule{"linear", 1, 10, 110}, 60, 0.5},
		{Schedule{"linear", 1, 10, 110}, 110, 0},
		{Schedule{"cosine", 2, 0, 100}, 50, 1},
		{Schedule{"cosine", 2, 0, 100}, 100, 0},
		{Schedule{"cosine", 2, 0, 100}, 25, 1 + math.Sqrt(0.5)},
		{Schedule{"constant", 3, 4, 100}, 2, 1.5},
		{Schedule{"constant", 3, 4, 100}, 90, 3},
	} {
		if got := tc.s.LR(tc.step); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("%+v at %d: %v, want %v", tc.s, tc.step, got, tc.want)
		}
	}
	if err := (Schedule{"step", 1, 0, 10}).Validate(); err == nil {
		t.Error("unknown schedule accepted")
	}
}
