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
	bf16 := tensor.AttentionBF16(be)
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
		hidden, scale := 0.0, 0.0 // the worst difference, relative to the largest state
		for i := range want {
			hidden, scale = max(hidden, math.Abs(float64(got[row*D+i]-want[i]))), max(scale, math.Abs(float64(want[i])))
		}
		hidden /= max(scale, 1)
		// The branch's keys and values, left in c's rows after the prefix
		// in branch order: those of its own continuation. kv is the worst
		// difference (f32), or with bf16 attention in units of the value's
		// bf16 ulp; moved counts those that differ at all.
		kvO := m.Config.NumKVHeads * m.Config.HeadDim
		kv, moved, n := 0.0, 0, 0
		for l := range c.K {
			o := (len(prefix) + row) * kvO
			for i := range len(br) * kvO {
				for _, p := range [][2]float32{{c.K[l][o+i], c2.K[l][len(prefix)*kvO+i]}, {c.V[l][o+i], c2.V[l][len(prefix)*kvO+i]}} {
					d := math.Abs(float64(p[0] - p[1]))
					if d > 0 {
						moved++
					}
					if bf16 && d > 0 {
						d /= bf16ULP(max(math.Abs(float64(p[0])), math.Abs(float64(p[1]))))
					}
					kv = max(kv, d)
				}
				n += 2
			}
		}
		t.Logf("%s, %d-token prefix, a branch of %d: hidden states differ by %.2g (of the largest), keys and values by %.2g (%d of %d moved)",
			dir, len(prefix), len(br), hidden, kv, moved, n)
		// f32: the same sums in another order. bf16 attention: those
		// orders may flip a rounding to bf16 (2⁻⁹ relative) in the
		// attention's operands and in the keys and values, and a flip
		// moves the next layers' sums — the prompt run alone sums its f32
		// products on OpenBLAS, whose kernel the machine's
		// OPENBLAS_CORETYPE picks (on a Zen 4, 2026-11, under Haswell's
		// kernel: up to 1.6e-3 of the largest hidden state, keys and
		// values by up to 3 ulps, 26 of 256 moved; under SkylakeX's 8e-6
		// and none). A branch at the wrong rows or positions moves its
		// states by far more; one whose keys and values were not rounded
		// as the backend rounds them moves every one.
		hTol, kvTol, movedMax := 1e-4, 1e-4, n
		if bf16 {
			hTol, kvTol, movedMax = 5e-3, 8, n/4
		}
		if !(hidden <= hTol && kv <= kvTol && moved <= movedMax) {
			t.Fatalf("%s, %d-token prefix, a branch of %d: hidden states differ by %g (of the largest), keys and values by %g (ulps with bf16 attention), %d of %d moved",
				dir, len(prefix), len(br), hidden, kv, moved, n)
		}
		row += len(br)
	}
	if c.Len != len(prefix) {
		t.Fatalf("ForwardBranches moved the cache to %d", c.Len)
	}
}

// bf16ULP is bf16's unit in the last place at magnitude v (8 bits of
// mantissa): one rounding's flip moves a value by at most this.
func bf16ULP(v float64) float64 {
	_, e := math.Frexp(v) // v = f·2^e, f in [0.5, 1)
	return math.Ldexp(1, e-8)
}
