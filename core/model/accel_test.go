package model

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"distill/core/tensor"
)

// mirrorAccel stands in for a device (cuda/devnet's decoder) so that the
// mirror protocol is tested where there is no GPU: its "device" copy of
// each cache is another Cache, kept by the rules an accelerator follows —
// bring rows [DevLen, Len) up, then compute there and write the new rows to
// both. It runs the host forward on the mirror, so a protocol slip (a row
// not uploaded, DevLen wrong after Truncate) shows as different hidden
// states.
type mirrorAccel struct {
	m       *Model
	mirrors map[*Cache]*Cache
	passes  int
	logits  int
	refuse  bool // Takes nothing: every pass on the host
}

func (a *mirrorAccel) Takes(Delta) bool { return !a.refuse }
func (a *mirrorAccel) Close()           {}

func (a *mirrorAccel) Logits(out, hidden []float32, T int) error {
	a.logits++
	tensor.CPU{}.MatMul(out[:T*a.m.Config.VocabSize], hidden[:T*a.m.Config.HiddenSize], a.m.LMHead, T)
	return nil
}

func (a *mirrorAccel) Forward(ids []int, c *Cache, out []float32) ([]float32, error) {
	mc := a.mirrors[c]
	if mc == nil {
		mc = a.m.NewCache(c.Cap)
		a.mirrors[c] = mc
	}
	kvOut := a.m.Config.NumKVHeads * a.m.Config.HeadDim
	for l := range c.K { // bring the mirror up to date
		copy(mc.K[l][c.DevLen*kvOut:c.Len*kvOut], c.K[l][c.DevLen*kvOut:c.Len*kvOut])
		copy(mc.V[l][c.DevLen*kvOut:c.Len*kvOut], c.V[l][c.DevLen*kvOut:c.Len*kvOut])
	}
	// Poison what the mirror must not rely on: rows past Len.
	for l := range mc.K {
		for i := c.Len * kvOut; i < len(mc.K[l]); i++ {
			mc.K[l][i], mc.V[l][i] = 1e30, 1e30
		}
	}
	mc.Len = c.Len
	saved := a.m.accel
	a.m.accel = nil // the "device" computes with the host code
	h, err := a.m.Forward(tensor.CPU{}, ids, mc, out)
	a.m.accel = saved
	if err != nil {
		return nil, err
	}
	n := c.Len + len(ids)
	for l := range c.K { // the new rows to the host too
		copy(c.K[l][c.Len*kvOut:n*kvOut], mc.K[l][c.Len*kvOut:n*kvOut])
		copy(c.V[l][c.Len*kvOut:n*kvOut], mc.V[l][c.Len*kvOut:n*kvOut])
	}
	c.DevLen = n
	a.passes++
	return h, nil
}

// TestAcceleratedForwardMirrorsTheCache: a sequence of plain passes
// (accelerated), host-only passes (ForwardStep, ForwardBranches), a
// truncation and a re-fed suffix gives the hidden states of the same
// sequence run all on the host, and the accelerator ran the plain passes.
func TestAcceleratedForwardMirrorsTheCache(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "m")
	s := Shapes["demo"]
	s.Vocab, s.MaxPositions = 512, 64
	if err := WriteRandom(dir, s, tensor.F32, 13); err != nil {
		t.Fatal(err)
	}
	m, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	RegisterAccelerated("mirror-stand-in", func(m *Model) (Accelerated, error) {
		return &mirrorAccel{m: m, mirrors: map[*Cache]*Cache{}}, nil
	})
	script := func() []float32 {
		be := tensor.CPU{}
		var all []float32
		keep := func(h []float32, err error) {
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, h...)
		}
		c := m.NewCache(40)
		keep(m.Forward(be, []int{1, 2, 3, 4, 5}, c, nil)) // prefill
		keep(m.Forward(be, []int{6}, c, nil))             // decode
		sc := m.NewCache(1)
		keep(m.ForwardStep(be, []int{7}, []*Cache{c}, sc)) // a host pass writes row 6
		keep(m.Forward(be, []int{8}, c, nil))              // which the mirror must take up
		keep(m.ForwardBranches(be, [][]int{{9, 10}, {11}}, c))
		keep(m.Forward(be, []int{12}, c, nil))
		c.Truncate(4) // forget rows 4.. (the mirror's too)
		keep(m.Forward(be, []int{13, 14}, c, nil))
		keep(m.Forward(be, []int{15}, c, nil))
		return all
	}
	want := script()
	attached, err := m.Accelerate("mirror-stand-in")
	if !attached {
		t.Fatal(err)
	}
	a := m.accel.(*mirrorAccel)
	got := script()
	if !slices.Equal(got, want) {
		t.Error("accelerated passes give other hidden states than the host's")
	}
	if a.passes != 6 {
		t.Errorf("the accelerator ran %d passes, want the 6 plain ones", a.passes)
	}
	lg := make([]float32, 2*m.Config.VocabSize)
	m.Logits(tensor.CPU{}, lg, got[:2*m.Config.HiddenSize], 2)
	if a.logits != 1 {
		t.Errorf("Logits went to the accelerator %d times, want 1", a.logits)
	}
	// A delta it does not take, or CPU layers: the host runs those passes.
	a.refuse, a.passes = true, 0
	if got := script(); !slices.Equal(got, want) || a.passes != 0 {
		t.Errorf("refused: equal %v, %d accelerated passes", slices.Equal(got, want), a.passes)
	}
	a.refuse, m.CPULayers = false, 1
	if got := script(); !slices.Equal(got, want) || a.passes != 0 {
		t.Errorf("with a CPU layer: equal %v, %d accelerated passes", slices.Equal(got, want), a.passes)
	}
	m.CPULayers = 0
	if ok, err := m.Accelerate("no-such-device"); ok || err == nil || !strings.Contains(err.Error(), `"no-such-device"`) {
		t.Errorf("an unregistered device: attached %v, %v", ok, err)
	}
}
