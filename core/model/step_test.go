package model

import (
	"math"
	"path/filepath"
	"testing"

	"distill/core/tensor"
)

// TestForwardStepEqualsForward: three sequences of different lengths
// stepped together give each the hidden state (and cache) that Forward
// gives it alone.
func TestForwardStepEqualsForward(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "m")
	s := Shapes["demo"]
	s.Vocab, s.MaxPositions = 512, 64
	if err := WriteRandom(dir, s, tensor.F32, 11); err != nil {
		t.Fatal(err)
	}
	m, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	be, _ := tensor.Open("cpu")
	prompts := [][]int{{1, 2, 3}, {7}, {9, 8, 7, 6, 5, 4}}
	next := [][]int{{10, 11, 12}, {20, 21, 22}, {30, 31, 32}}
	D := m.Config.HiddenSize
	alone := make([][]float32, len(prompts)) // per sequence, the hidden rows of its steps
	for i, p := range prompts {
		c := m.NewCache(16)
		if _, err := m.Forward(be, p, c, nil); err != nil {
			t.Fatal(err)
		}
		for _, id := range next[i] {
			h, err := m.Forward(be, []int{id}, c, nil)
			if err != nil {
				t.Fatal(err)
			}
			alone[i] = append(alone[i], h...)
		}
	}
	caches := make([]*Cache, len(prompts))
	for i, p := range prompts {
		caches[i] = m.NewCache(16)
		if _, err := m.Forward(be, p, caches[i], nil); err != nil {
			t.Fatal(err)
		}
	}
	scratch := m.NewCache(len(prompts))
	for step := range 3 {
		ids := []int{next[0][step], next[1][step], next[2][step]}
		h, err := m.ForwardStep(be, ids, caches, scratch)
		if err != nil {
			t.Fatal(err)
		}
		for i := range prompts {
			want := alone[i][step*D : (step+1)*D]
			for j, v := range h[i*D : (i+1)*D] {
				if d := math.Abs(float64(v - want[j])); d > 1e-5 {
					t.Fatalf("step %d sequence %d: hidden[%d] %g, alone %g", step, i, j, v, want[j])
				}
			}
		}
	}
	for i, c := range caches {
		if c.Len != len(prompts[i])+3 {
			t.Fatalf("sequence %d: cache length %d, want %d", i, c.Len, len(prompts[i])+3)
		}
	}
}
