package lora

import (
	"math"
	"testing"

	"distill/core/model"
	"distill/core/tensor"
)

// TestApplyEqualsMerged: running the adapter unmerged through model.Delta
// gives the logits of the merged weights.
func TestApplyEqualsMerged(t *testing.T) {
	be, _ := tensor.Open("cpu")
	m, err := model.Load("../model/testdata/qwen3-f32")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	a, err := Load("../train/testdata/qwen3-f32/adapter", m)
	if err != nil {
		t.Fatal(err)
	}
	ids := []int{1, 17, 33, 5, 250, 17, 9}
	logits := func() []float32 {
		c := m.NewCache(len(ids))
		h, err := m.Forward(be, ids, c, nil)
		if err != nil {
			t.Fatal(err)
		}
		out := make([]float32, len(ids)*m.Config.VocabSize)
		m.Logits(be, out, h, len(ids))
		return out
	}
	base := logits()
	m.Delta = a
	unmerged := logits()
	m.Delta = nil
	for l := range m.Layers {
		L := &m.Layers[l]
		fields := []*tensor.Matrix{&L.Q, &L.K, &L.V, &L.O, &L.Gate, &L.Up, &L.Down}
		for i, p := range a.Layers[l] {
			if p != nil {
				*fields[i] = MergedWeight((*fields[i]).(*tensor.Tensor), p, a.Config.Scaling())
			}
		}
	}
	merged := logits()
	moved, worst := 0.0, 0.0
	for i := range merged {
		moved = math.Max(moved, math.Abs(float64(unmerged[i]-base[i])))
		worst = math.Max(worst, math.Abs(float64(unmerged[i]-merged[i])))
	}
	if moved < 0.1 {
		t.Fatalf("the adapter moved logits by only %g: the test would not see a wrong delta", moved)
	}
	if worst > 1e-4 {
		t.Fatalf("unmerged vs merged logits differ by %g", worst)
	}
}
