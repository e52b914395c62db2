package model_test

import (
	"math"
	"testing"

	"distill/core/model"
)

// TestForwardBranchesEqualsSeparateContinuations: each branch's hidden
// states equal those of running it alone after the same prefix.
func TestForwardBranchesEqualsSeparateContinuations(t *testing.T) {
	be := cpu(t)
	for _, dir := range []string{"testdata/qwen2-f32", "testdata/qwen3-bf16", "testdata/llama3-f32"} {
		m, err := model.Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		prefix := []int{1, 17, 42, 99, 5}
		branches := [][]int{{7}, {8, 9, 10}, {}, {11, 12}}
		c := m.NewCache(len(prefix) + 6)
		if _, err := m.Forward(be, prefix, c, nil); err != nil {
			t.Fatal(err)
		}
		got, err := m.ForwardBranches(be, branches, c)
		if err != nil {
			t.Fatal(err)
		}
		D := m.Config.HiddenSize
		row := 0
		for _, br := range branches {
			if len(br) == 0 {
				continue
			}
			c2 := m.NewCache(len(prefix) + len(br))
			want, err := m.Forward(be, append(append([]int(nil), prefix...), br...), c2, nil)
			if err != nil {
				t.Fatal(err)
			}
			want = want[len(prefix)*D:]
			for i := range want {
				if d := math.Abs(float64(got[row*D+i] - want[i])); d > 1e-4 {
					t.Fatalf("%s branch %v: hidden differs by %g", dir, br, d)
				}
			}
			row += len(br)
		}
		if c.Len != len(prefix) {
			t.Fatalf("ForwardBranches moved the cache to %d", c.Len)
		}
		m.Close()
	}
}
