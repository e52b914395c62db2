package model

import (
	"path/filepath"
	"slices"
	"testing"

	"distill/core/tensor"
)

// recorder is the CPU backend counting the matrix products it is given: a
// stand-in for a device, to see which layers reach it.
type recorder struct {
	tensor.CPU
	products int
}

func (r *recorder) MatMul(out, x []float32, w tensor.Matrix, T int) {
	r.products++
	r.CPU.MatMul(out, x, w, T)
}

func (r *recorder) Embed(out []float32, table *tensor.Tensor, ids []int) {
	r.products += 1000 // the embedding lookup: counted apart
	r.CPU.Embed(out, table, ids)
}

// TestCPULayersStayOnTheCPU (--cpu-offload): with CPULayers = 2 the first
// two layers' seven projections each, and the embedding lookup, never reach
// the backend the pass is given — so a device never holds their weights —
// and every path (Forward, ForwardStep, ForwardBranches) computes exactly
// what it computes without the split.
func TestCPULayersStayOnTheCPU(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "m")
	s := Shapes["demo"]
	s.Vocab, s.MaxPositions, s.Layers = 512, 64, 4
	if err := WriteRandom(dir, s, tensor.F32, 12); err != nil {
		t.Fatal(err)
	}
	m, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	L := len(m.Layers)
	run := func(cpuLayers int) (hidden []float32, products int) {
		m.CPULayers = cpuLayers
		r := &recorder{}
		c := m.NewCache(32)
		h, err := m.Forward(r, []int{5, 6, 7, 8}, c, nil)
		if err != nil {
			t.Fatal(err)
		}
		hidden = append(hidden, h...)
		sc := m.NewCache(1)
		if h, err = m.ForwardStep(r, []int{9}, []*Cache{c}, sc); err != nil {
			t.Fatal(err)
		}
		hidden = append(hidden, h...)
		if h, err = m.ForwardBranches(r, [][]int{{10, 11}, {12}}, c); err != nil {
			t.Fatal(err)
		}
		hidden = append(hidden, h...)
		return hidden, r.products
	}
	all, n0 := run(0)
	split, n2 := run(2)
	if want := 3 * 7 * L; n0 != want+3000 {
		t.Errorf("all layers on the backend: %d products, want %d and 3 embedding lookups", n0, want)
	}
	if want := 3 * 7 * (L - 2); n2 != want {
		t.Errorf("2 layers on the CPU: the backend got %d products, want %d (no embedding)", n2, want)
	}
	if !slices.Equal(all, split) {
		t.Error("the split computes different hidden states")
	}
}
