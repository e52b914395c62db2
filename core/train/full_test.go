package train

import (
	"math"
	"path/filepath"
	"testing"

	"distill/core/model"
	"distill/core/tensor"
)

// TestFullFineTuningGradientsMatchPyTorch: every base weight trainable; the
// gradient of every tensor against the float64 reference, by HF name (tied
// embeddings receive both their input and output-head gradients).
func TestFullFineTuningGradientsMatchPyTorch(t *testing.T) {
	type golden struct {
		LossFull float64 `json:"loss_full"`
	}
	for _, name := range trainFixtures {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join("testdata", name)
			var bf batchFile
			var g golden
			readJSON(t, filepath.Join(dir, "batch.json"), &bf)
			readJSON(t, filepath.Join(dir, "golden.json"), &g)
			m, err := model.Load(filepath.Join(dir, bf.Model))
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			be, _ := tensor.Open("cpu")
			net, err := NewFullNet(be, m)
			if err != nil {
				t.Fatal(err)
			}
			b := bf.batch()
			sum, err := net.Step(b, b.Counted())
			if err != nil {
				t.Fatal(err)
			}
			if loss := sum / float64(b.Counted()); math.Abs(loss-g.LossFull) > 1e-4*g.LossFull {
				t.Errorf("loss %.7f, want %.7f", loss, g.LossFull)
			}
			ref, err := model.OpenSafetensors(filepath.Join(dir, "full_grads.safetensors"))
			if err != nil {
				t.Fatal(err)
			}
			defer ref.Close()
			if len(ref.Names()) != len(net.fullNames) {
				t.Errorf("%d gradient tensors, golden has %d", len(net.fullNames), len(ref.Names()))
			}
			worst := 0.0
			for _, sp := range net.fullNames {
				rt := ref.Tensor(sp.Name)
				if rt == nil {
					t.Errorf("golden lacks %s", sp.Name)
					continue
				}
				want := rt.ToF32()
				got := net.Grads[sp.Off : sp.Off+sp.Len]
				var num, den float64
				for i := range got {
					d := float64(got[i]) - float64(want[i])
					num += d * d
					den += float64(want[i]) * float64(want[i])
				}
				rel := math.Sqrt(num / max(den, 1e-30))
				worst = max(worst, rel)
				if rel > gradTol {
					t.Errorf("%s: relative error %.2e", sp.Name, rel)
				}
			}
			t.Logf("worst relative gradient error %.2e over %d tensors", worst, len(net.fullNames))
		})
	}
}
