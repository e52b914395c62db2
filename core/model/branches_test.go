package model_test

import (
	"math"
	"testing"

	"distill/core/model"
	"distill/core/tensor"
)

// TestForwardBranchesEqualsSeparateContinuations: each branch's hidden
// states equal those of running it alone after the same prefix, with f32
// arithmetic and with --cpu-bf16's (the branches' attention rounding what
// the backend's does: unrounded, they move by ~10⁻³).
func TestForwardBranchesEqualsSeparateContinuations(t *testing.T) {
	for _, be := range []tensor.Backend{cpu(t), tensor.CPU{BF16Products: true, BF16Attention: true}} {
		t.Run(be.Name()+map[bool]string{false: "", true: "-bf16"}[tensor.AttentionBF16(be)], func(t *testing.T) {
			testBranches(t, be)
		})
	}
}

func testBranches(t *testing.T, be tensor.Backend) {
	for _, dir := range []string{"testdata/qwen2-f32", "testdata/qwen3-bf16", "testdata/llama3-f32"} {
		m, err := model.Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		short := [][]int{{7}, {8, 9, 10}, {}, {11, 12}}
		// Long branches (batched prompts) take attention's blocks, the
		// second's rows moved beside the prefix for them.
		long := [][]int{longPrefix(35, m.Config.VocabSize/2), {3}, longPrefix(40, m.Config.VocabSize)[5:]}
		for _, prefix := range [][]int{{1, 17, 42, 99, 5}, longPrefix(40, m.Config.VocabSize)} {
			branchesAfter(t, be, m, dir, prefix, short)
			branchesAfter(t, be, m, dir, prefix, long)
		}
		m.Close()
	}
}

// longPrefix is n ids below vocab: a prompt long enough for attention's
// blocks (and, with bf16 attention, the bf16 GEMM).
func longPrefix(n, vocab int) []int {
	ids := make([]int, n)
	for i := range ids {
		ids[i] = (7*i + 3) % vocab
	}
	return ids
}

func branchesAfter(t *testing.T, be tensor.Backend, m *model.Model, dir string, prefix []int, branches [][]int) {
	t.Helper()
	T := 0
	for _, br := range branches {
		T += len(br)
	}
	c := m.NewCache(len(prefix) + T)
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
		worst := 0.0
		for i := range want {
			worst = max(worst, math.Abs(float64(got[row*D+i]-want[i])))
		}
		// The branch's keys and values, left in c's rows after the prefix
		// in branch order: those of its own continuation.
		kvO := m.Config.NumKVHeads * m.Config.HeadDim
		for l := range c.K {
			a, b := c.K[l][(len(prefix)+row)*kvO:(len(prefix)+row+len(br))*kvO], c2.K[l][len(prefix)*kvO:]
			for i := range a {
				worst = max(worst, math.Abs(float64(a[i]-b[i])), math.Abs(float64(c.V[l][(len(prefix)+row)*kvO+i]-c2.V[l][len(prefix)*kvO+i])))
			}
		}
		t.Logf("%s, %d-token prefix, a branch of %d: hidden, keys and values differ by %.2g", dir, len(prefix), len(br), worst)
		if !(worst <= 1e-4) {
			t.Fatalf("%s, %d-token prefix, a branch of %d: hidden, keys and values differ by %g", dir, len(prefix), len(br), worst)
		}
		row += len(br)
	}
	if c.Len != len(prefix) {
		t.Fatalf("ForwardBranches moved the cache to %d", c.Len)
	}
}
