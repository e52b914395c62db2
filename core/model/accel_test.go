package model

import (
	"fmt"
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
// both. It runs the host's layers on the mirror, so a protocol slip (a row
// not uploaded, DevLen wrong after Truncate) shows as different hidden
// states. Opened with CPU layers (--cpu-offload) it holds and runs only the
// layers after them, from the x the host hands it: the CPU layers' rows of
// a mirror stay poisoned, and it never writes them to the host.
type mirrorAccel struct {
	m       *Model
	from    int // the first layer it holds
	mirrors map[*Cache]*Cache
	passes  int
	logits  int
	refuse  bool // Takes nothing: every pass on the host
	full    bool // every pass fails for want of device memory, after syncing
}

func (a *mirrorAccel) Takes(Delta) bool { return !a.refuse }
func (a *mirrorAccel) Close()           {}
func (a *mirrorAccel) CacheBF16() bool  { return false } // its mirror copies f32 rows

func (a *mirrorAccel) Logits(out, hidden []float32, T int) error {
	if a.full {
		return fmt.Errorf("stand-in: %w", ErrAcceleratorFull)
	}
	a.logits++
	tensor.CPU{}.MatMul(out[:T*a.m.Config.VocabSize], hidden[:T*a.m.Config.HiddenSize], a.m.LMHead, T)
	return nil
}

// sync is c's mirror brought up to date by the protocol: host rows
// [DevLen, Len) go up; what it must not rely on (rows past Len) poisoned.
func (a *mirrorAccel) sync(c *Cache) *Cache {
	mc := a.mirrors[c]
	if mc == nil {
		mc = a.m.NewCache(c.Cap)
		a.mirrors[c] = mc
	}
	kvOut := a.m.Config.NumKVHeads * a.m.Config.HeadDim
	for l := range c.K {
		r0 := c.Len * kvOut // rows past it are the pass's; a CPU layer's are the host's alone
		if l < a.from {
			r0 = 0
		} else {
			copy(mc.K[l][c.DevLen*kvOut:c.Len*kvOut], c.K[l][c.DevLen*kvOut:c.Len*kvOut])
			copy(mc.V[l][c.DevLen*kvOut:c.Len*kvOut], c.V[l][c.DevLen*kvOut:c.Len*kvOut])
		}
		for i := r0; i < len(mc.K[l]); i++ {
			mc.K[l][i], mc.V[l][i] = 1e30, 1e30
		}
	}
	mc.Len = c.Len
	c.DevLen = c.Len // as a device does: the rows past Len are the pass's
	return mc
}

// back copies the mirror's n new rows from Len on to the host.
func (a *mirrorAccel) back(c *Cache, n int) {
	mc := a.mirrors[c]
	kvOut := a.m.Config.NumKVHeads * a.m.Config.HeadDim
	r0, r1 := c.Len*kvOut, (c.Len+n)*kvOut
	for l := a.from; l < len(c.K); l++ {
		copy(c.K[l][r0:r1], mc.K[l][r0:r1])
		copy(c.V[l][r0:r1], mc.V[l][r0:r1])
	}
	c.DevLen = c.Len + n
}

// onDevice runs the model's layers from a.from on in ws's workspace, from
// x (the host's CPU layers' output; nil: the ids embedded there), and the
// final norm into out — the "device" computing — after checking it was
// handed x exactly when it holds fewer than every layer.
func (a *mirrorAccel) onDevice(ws *Cache, x, out []float32, layers func(from, to int) []float32) ([]float32, error) {
	a.passes++
	cfg := &a.m.Config
	T := len(out) / cfg.HiddenSize
	if (a.from > 0) != (x != nil) || (x != nil && len(x) != T*cfg.HiddenSize) {
		return nil, fmt.Errorf("stand-in holding layers %d.. was handed %d floats of x for %d rows", a.from, len(x), T)
	}
	if x != nil {
		ws.ws.ensure(T, cfg, ws.BF16())
		copy(ws.ws.x, x)
	}
	tensor.CPU{}.RMSNorm(out, layers(a.from, len(a.m.Layers)), a.m.Norm, float32(cfg.RMSNormEps))
	return out, nil
}

func (a *mirrorAccel) Forward(ids []int, x []float32, c *Cache, out []float32) ([]float32, error) {
	mc := a.sync(c)
	if a.full {
		return nil, fmt.Errorf("stand-in: %w", ErrAcceleratorFull)
	}
	if out == nil {
		out = make([]float32, len(ids)*a.m.Config.HiddenSize)
	}
	h, err := a.onDevice(mc, x, out[:len(ids)*a.m.Config.HiddenSize], func(from, to int) []float32 {
		return a.m.forwardLayers(tensor.CPU{}, ids, mc, from, to)
	})
	if err == nil {
		a.back(c, len(ids))
	}
	return h, err
}

func (a *mirrorAccel) ForwardStep(ids []int, x []float32, caches []*Cache, out []float32) ([]float32, error) {
	mcs := make([]*Cache, len(caches))
	for i, c := range caches {
		mcs[i] = a.sync(c)
	}
	if a.full {
		return nil, fmt.Errorf("stand-in: %w", ErrAcceleratorFull)
	}
	sc := a.m.NewCache(len(ids))
	h, err := a.onDevice(sc, x, out, func(from, to int) []float32 {
		return a.m.stepLayers(tensor.CPU{}, ids, mcs, sc, from, to)
	})
	if err == nil {
		for _, c := range caches {
			a.back(c, 1)
		}
	}
	return h, err
}

func (a *mirrorAccel) ForwardBranches(branches [][]int, x []float32, c *Cache) ([]float32, error) {
	mc := a.sync(c)
	if a.full {
		return nil, fmt.Errorf("stand-in: %w", ErrAcceleratorFull)
	}
	ids, pos, start := branchRows(branches, c.Len)
	h, err := a.onDevice(mc, x, make([]float32, len(ids)*a.m.Config.HiddenSize), func(from, to int) []float32 {
		return a.m.branchLayers(tensor.CPU{}, ids, pos, start, mc, from, to)
	})
	if err == nil { // the branches' rows past Len come down too; DevLen stays
		a.back(c, len(ids))
		c.DevLen = c.Len
	}
	return h, err
}

// TestAcceleratedForwardMirrorsTheCache: plain, batched and branched passes
// (accelerated), passes the host runs (a refused step or prefill), a
// truncation and a re-fed suffix give the hidden states of the same script
// run all on the host, and the accelerator ran the plain and batched
// passes; one that reports a full device is run on the host instead.
func TestAcceleratedForwardMirrorsTheCache(t *testing.T) {
	m := fourLayers(t, tensor.F32, 13) // --cpu-offload's splits below: 1+3, 3+1
	RegisterAccelerated("mirror-stand-in", func(m *Model) (Accelerated, error) {
		return &mirrorAccel{m: m, from: m.CPULayers, mirrors: map[*Cache]*Cache{}}, nil
	})
	hostPass := func(f func()) { f() } // a pass the host must run, accelerator or not
	script := func() []float32 {
		be := tensor.CPU{}
		var all []float32
		keep := func(h []float32, err error) {
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, h...)
		}
		scratch := func(c *Cache, n int) (rows []float32) { // every layer's keys and values in rows [Len, Len+n)
			kvOut := m.Config.NumKVHeads * m.Config.HeadDim
			for l := range c.K {
				rows = append(rows, c.K[l][c.Len*kvOut:(c.Len+n)*kvOut]...)
				rows = append(rows, c.V[l][c.Len*kvOut:(c.Len+n)*kvOut]...)
			}
			return rows
		}
		c, c2 := m.NewCache(40), m.NewCache(40)
		keep(m.Forward(be, []int{1, 2, 3, 4, 5}, c, nil)) // prefill
		keep(m.Forward(be, []int{6}, c, nil))             // decode
		sc := m.NewCache(2)
		hostPass(func() { keep(m.ForwardStep(be, []int{7}, []*Cache{c}, sc)) }) // the host writes row 6
		keep(m.Forward(be, []int{8}, c, nil))                                   // which the mirror must take up
		keep(m.ForwardBranches(be, [][]int{{9, 10}, {11}}, c))
		keep(scratch(c, 3), nil) // the branches' keys and values, past Len (batched prefill copies them)
		keep(m.Forward(be, []int{12}, c, nil))
		hostPass(func() { keep(m.Forward(be, []int{27}, c, nil)) }) // the host writes row 9
		keep(m.ForwardBranches(be, [][]int{{16}, {17, 18, 19}}, c)) // which the branches' prefix must include
		keep(scratch(c, 4), nil)
		keep(m.Forward(be, []int{20, 21, 22}, c2, nil))
		hostPass(func() { keep(m.Forward(be, []int{26}, c2, nil)) }) // the host writes c2's row 3
		keep(m.ForwardStep(be, []int{23, 24}, []*Cache{c, c2}, sc))  // a batched step takes it up
		c.Truncate(4)                                                // forget rows 4.. (the mirror's too)
		keep(m.Forward(be, []int{13, 14}, c, nil))
		keep(m.ForwardStep(be, []int{15, 25}, []*Cache{c2, c}, sc))
		return all
	}
	want := script()
	attached, err := m.Accelerate("mirror-stand-in")
	if !attached {
		t.Fatal(err)
	}
	a := m.accel.(*mirrorAccel)
	hostPass = func(f func()) { was := a.refuse; a.refuse = true; f(); a.refuse = was }
	got := script()
	if !slices.Equal(got, want) {
		t.Error("accelerated passes give other hidden states than the host's")
	}
	if a.passes != 10 {
		t.Errorf("the accelerator ran %d passes, want the 10 plain, stepped and branched ones", a.passes)
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
	a.refuse, m.CPULayers = false, 1 // CPU layers it was not opened for
	if got := script(); !slices.Equal(got, want) || a.passes != 0 {
		t.Errorf("with a CPU layer it does not know of: equal %v, %d accelerated passes", slices.Equal(got, want), a.passes)
	}
	m.CPULayers = 0
	// A device out of memory: every pass falls back to the host.
	a.full, a.passes = true, 0
	if got := script(); !slices.Equal(got, want) {
		t.Error("a full device's passes, run on the host, give other hidden states")
	}
	a.full = false
	// With layers on the CPU (--cpu-offload) it holds the rest: the host
	// runs the first layers and hands it their output, pass by pass, and
	// goes on from there when it is full.
	for _, n := range []int{1, len(m.Layers) - 1} {
		m.CPULayers = n
		if ok, err := m.Accelerate("mirror-stand-in"); !ok {
			t.Fatal(err)
		}
		a = m.accel.(*mirrorAccel)
		if got := script(); !slices.Equal(got, want) || a.passes != 10 {
			t.Errorf("%d CPU layers: equal %v, %d accelerated passes, want 10", n, slices.Equal(got, want), a.passes)
		}
		a.full = true
		if got := script(); !slices.Equal(got, want) {
			t.Errorf("%d CPU layers, a full device: the host's passes from the CPU layers' output give other hidden states", n)
		}
	}
	// Every layer on the CPU: nothing attaches.
	m.CPULayers = len(m.Layers)
	if ok, err := m.Accelerate("mirror-stand-in"); ok || err == nil || !strings.Contains(err.Error(), "--cpu-offload") {
		t.Errorf("every layer on the CPU: attached %v, %v", ok, err)
	}
	m.CPULayers = 0
	m.Detach()
	if m.accel != nil {
		t.Error("Detach left the accelerator attached")
	}
	if ok, err := m.Accelerate("no-such-device"); ok || err == nil || !strings.Contains(err.Error(), `"no-such-device"`) {
		t.Errorf("an unregistered device: attached %v, %v", ok, err)
	}
}

// fullDevice stands for an op-by-op backend on the accelerator's device
// (serve --device cuda's): with the device full it cannot run either.
type fullDevice struct{ tensor.CPU }

func (fullDevice) MatMul([]float32, []float32, tensor.Matrix, int) {
	panic("an op on the full device")
}

// When the accelerator's device is full, the passes and the logits it
// refuses run on the CPU, not on the backend the caller gave (an op-by-op
// one on that same device would fail too: it panicked out of memory),
// with the host's results; with a CPU layer the host goes on from it.
func TestFullAcceleratorFallsBackToTheCPU(t *testing.T) {
	m := fourLayers(t, tensor.F32, 17)
	RegisterAccelerated("full-stand-in", func(m *Model) (Accelerated, error) {
		return &mirrorAccel{m: m, from: m.CPULayers, mirrors: map[*Cache]*Cache{}, full: true}, nil
	})
	V := m.Config.VocabSize
	script := func(be tensor.Backend) (all []float32) {
		keep := func(h []float32, err error) {
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, h...)
		}
		c, c2 := m.NewCache(16), m.NewCache(16)
		keep(m.Forward(be, []int{1, 2, 3}, c, nil))
		keep(m.Forward(be, []int{4, 5}, c2, nil))
		keep(m.ForwardStep(be, []int{6, 7}, []*Cache{c, c2}, m.NewCache(2)))
		h, err := m.ForwardBranches(be, [][]int{{8}, {9, 10}}, c)
		keep(h, err)
		lg := make([]float32, 3*V)
		m.Logits(be, lg, h, 3)
		return append(all, lg...)
	}
	want := script(tensor.CPU{})
	for _, cpu := range []int{0, 1} {
		m.CPULayers = cpu
		if ok, err := m.Accelerate("full-stand-in"); !ok {
			t.Fatal(err)
		}
		if got := script(fullDevice{}); !slices.Equal(got, want) {
			t.Errorf("%d CPU layers: the full device's passes, run on the CPU, give other results", cpu)
		}
		m.Detach()
	}
	m.CPULayers = 0
}

// --cpu-offload auto (AutoCPULayers): the device's opener sets CPULayers
// and the accelerator holds the layers from there; one with no room even
// for the last layer (ErrAcceleratorFull) leaves every layer on the CPU,
// one that fails otherwise — or no accelerator for the device — none (the
// backend runs them op by op), and one that leaves it unresolved attaches
// nothing.
func TestAccelerateResolvesAutoCPULayers(t *testing.T) {
	m := fourLayers(t, tensor.F32, 13)
	var pick int
	var fail error
	RegisterAccelerated("auto-stand-in", func(m *Model) (Accelerated, error) {
		if fail != nil {
			return nil, fail
		}
		if m.CPULayers == AutoCPULayers {
			m.CPULayers = pick
		}
		return &mirrorAccel{m: m, from: m.CPULayers, mirrors: map[*Cache]*Cache{}}, nil
	})
	for _, c := range []struct {
		pick     int
		fail     error
		device   string
		attached bool
		want     int
	}{
		{2, nil, "auto-stand-in", true, 2},
		{0, nil, "auto-stand-in", true, 0},
		{AutoCPULayers, nil, "auto-stand-in", false, 4},
		{0, fmt.Errorf("stand-in: %w", ErrAcceleratorFull), "auto-stand-in", false, 4},
		{0, fmt.Errorf("stand-in: a weight it cannot take"), "auto-stand-in", false, 0},
		{0, nil, "no-such-device", false, 0},
	} {
		pick, fail = c.pick, c.fail
		m.Detach()
		m.CPULayers = AutoCPULayers
		attached, err := m.Accelerate(c.device)
		if attached != c.attached || m.CPULayers != c.want {
			t.Errorf("%+v: attached %v (%v), %d layers on the CPU; want %v, %d", c, attached, err, m.CPULayers, c.attached, c.want)
		}
		if attached && m.accelFrom != c.want {
			t.Errorf("%+v: the accelerator holds layers from %d", c, m.accelFrom)
		}
	}
}

// The decoder's plan shrinks with every layer left to the host, and
// OffloadFor picks the fewest that fit: within a plan's total exactly, its
// layer; a byte short, one more; not even the last layer's, none fit.
func TestOffloadForPicksTheFewestHostLayers(t *testing.T) {
	m := fourLayers(t, tensor.BF16, 3)
	for from := 1; from < len(m.Layers); from++ {
		if a, b := m.DecoderPlan(from-1), m.DecoderPlan(from); b.Total() >= a.Total() || b.Weights >= a.Weights || b.Cache >= a.Cache {
			t.Errorf("holding layers %d.. plans %+v, %d.. %+v", from-1, a, from, b)
		}
	}
	for _, c := range []struct {
		room int64
		from int
		ok   bool
	}{{m.DecoderPlan(0).Total(), 0, true}, {m.DecoderPlan(2).Total(), 2, true}, {m.DecoderPlan(2).Total() - 1, 3, true},
		{m.DecoderPlan(3).Total() - 1, 4, false}} {
		if from, ok := m.OffloadFor(c.room); from != c.from || ok != c.ok {
			t.Errorf("%d bytes: %d layers on the host (%v), want %d (%v)", c.room, from, ok, c.from, c.ok)
		}
	}
}

// fourLayers is a random demo-shaped model of four layers (--cpu-offload's
// splits), closed at the test's end.
func fourLayers(t *testing.T, dt tensor.DType, seed uint64) *Model {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "m")
	s := Shapes["demo"]
	s.Vocab, s.MaxPositions, s.Layers = 512, 64, 4
	if err := WriteRandom(dir, s, dt, seed); err != nil {
		t.Fatal(err)
	}
	m, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}
