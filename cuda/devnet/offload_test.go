//go:build cuda

package devnet_test

import (
	"errors"
	"testing"

	"distill/core/lora"
	"distill/core/model"
	"distill/core/quant"
	"distill/core/tensor"
	"distill/cuda"
)

// TestDecoderAutoOffload: --cpu-offload auto (model.AutoCPULayers) keeps
// every layer on a device with room for them; on one with room for half —
// the pool limited to a ninth over what holding layers 3.. plans — it runs
// the first three on the host and the device-resident decoder over the
// rest, giving the host's hidden states, every pass of a 512-token prompt
// on the device within that limit and the pool's peak within the plan it
// was chosen by; on a device without room for even the last layer every
// layer stays on the host (the device full). A model whose weights the
// decoder does not take (q8) gets no decoder and no CPU layers: op by op.
func TestDecoderAutoOffload(t *testing.T) {
	d := device(t)
	s := setups[0]
	s.shape.Layers, s.shape.MaxPositions = 6, 600
	dir := t.TempDir()
	ok(t, model.WriteRandom(dir, s.shape, tensor.BF16, 23))
	m, _ := build(t, dir, s)
	tok := tokens(rng(3), s.shape.Vocab)
	prompt, next := tok(model.DecoderPlanPrompt), tok(1)
	c := m.NewCache(600)
	want, err := m.Forward(tensor.CPU{}, prompt, c, nil)
	ok(t, err)
	want1, err := m.Forward(tensor.CPU{}, next, c, nil)
	ok(t, err)
	defer d.Pool.SetLimit(0)
	for _, c := range []struct {
		room int64 // the pool's limit over what it holds (0: none)
		from int
	}{{0, 0}, {m.DecoderPlan(3).Total()*10/9 + 1024, 3}, {m.DecoderPlan(5).Total() * 9 / 10, 6}} {
		ok(t, d.Pool.Trim())
		base := d.Pool.Stats().InUse
		if c.room > 0 {
			d.Pool.SetLimit(base + c.room)
		}
		d.Pool.ResetPeak()
		m.CPULayers = model.AutoCPULayers
		attached, err := m.Accelerate("cuda")
		if m.CPULayers != c.from {
			t.Fatalf("room %d: %d layers on the CPU, want %d (%v)", c.room, m.CPULayers, c.from, err)
		}
		if c.from == len(m.Layers) {
			if attached || !errors.Is(err, model.ErrAcceleratorFull) {
				t.Errorf("no room even for the last layer: attached %v, %v", attached, err)
			}
			d.Pool.SetLimit(0)
			continue
		}
		if !attached {
			t.Fatal(err)
		}
		gc := m.NewCache(600)
		got, err := m.Forward(tensor.CPU{}, prompt, gc, nil)
		ok(t, err)
		got1, err := m.Forward(tensor.CPU{}, next, gc, nil)
		ok(t, err)
		if gc.DevLen != gc.Len {
			t.Errorf("from %d: the device holds %d rows of %d: a pass ran on the host", c.from, gc.DevLen, gc.Len)
		}
		for i, p := range [][2][]float32{{got, want}, {got1, want1}} {
			if rel := relL2(p[0], p[1]); rel > 2e-2 || rel != rel {
				t.Errorf("from %d, pass %d: %.2e relative to the host's", c.from, i, rel)
			}
		}
		if peak, plan := d.Pool.Stats().Peak-base, m.DecoderPlan(c.from).Total(); peak > plan {
			t.Errorf("from %d: the decoder took %d bytes at its peak, more than the %d it was chosen by", c.from, peak, plan)
		} else {
			t.Logf("from %d: peak %d bytes of the %d planned", c.from, peak, plan)
		}
		m.Detach()
		d.Pool.SetLimit(0)
	}

	q8, _ := build(t, dir, setup{quant: "none", targets: s.targets})
	_, err = quant.QuantizeModel(q8, "q8", false, false)
	ok(t, err)
	q8.CPULayers = model.AutoCPULayers
	if attached, err := q8.Accelerate("cuda"); attached || q8.CPULayers != 0 || err == nil {
		t.Errorf("q8 weights: attached %v, %d layers on the CPU, %v", attached, q8.CPULayers, err)
	}
}

// TestDecoderEvictsAdaptersWhenFull: on a device with room for one
// adapter's upload beside the base, not two (the pool limited), decoding
// under another adapter drops the last one's upload to make room and runs
// on the device, under each in turn — the host's hidden states, every pass
// on the device (a host pass leaves the mirror behind the cache).
func TestDecoderEvictsAdaptersWhenFull(t *testing.T) {
	d, s, m, a1 := bigAdapter(t, 29) // an upload large beside a token's pass
	a2 := negated(t, m, a1)
	tok := tokens(rng(5), s.shape.Vocab)
	prompt, steps := tok(4), [][]int{tok(1), tok(1), tok(1)}
	script := func(c *model.Cache) (out [][]float32) {
		for i, ad := range []*lora.Adapter{a1, a2, a1} {
			m.Delta = ad
			h, err := m.Forward(tensor.CPU{}, steps[i], c, nil)
			ok(t, err)
			out = append(out, h)
			if m.Attached() && c.DevLen != c.Len {
				t.Errorf("pass %d: the device holds %d rows of %d: it ran on the host", i, c.DevLen, c.Len)
			}
		}
		return out
	}
	start := func() *model.Cache {
		c := m.NewCache(16)
		m.Delta = a1
		_, err := m.Forward(tensor.CPU{}, prompt, c, nil)
		ok(t, err)
		return c
	}
	want := script(start())
	if attached, err := m.Accelerate("cuda"); !attached {
		t.Fatal(err)
	}
	defer m.Detach()
	c := start() // a1's upload, the mirror
	ok(t, d.Pool.Trim())
	d.Pool.SetLimit(d.Pool.Stats().InUse + int64(len(a1.Params))*4/2)
	defer d.Pool.SetLimit(0)
	got := script(c)
	matchHost(t, got, want)
}

// TestDecoderPassDropsIdleAdapters: a prompt's pass that finds the device
// full while another adapter's upload sits idle drops that upload (loaded
// again on use) and runs on the device, as it drops other caches' mirrors;
// before, it fell back to the host. The pool is limited to a like pass's
// measured workspace over what is held, less half the idle upload.
func TestDecoderPassDropsIdleAdapters(t *testing.T) {
	d, s, m, a1 := bigAdapter(t, 37) // an upload large beside the pass's workspace
	a2 := negated(t, m, a1)
	tok := tokens(rng(9), s.shape.Vocab)
	passes := []struct {
		a   *lora.Adapter
		ids []int
	}{{a1, tok(4)}, {a2, tok(1)}, {a1, tok(100)}, {a1, tok(100)}}
	script := func(before func(i int)) (out [][]float32, c *model.Cache) {
		c = m.NewCache(256)
		for i, p := range passes {
			before(i)
			m.Delta = p.a
			h, err := m.Forward(tensor.CPU{}, p.ids, c, nil)
			ok(t, err)
			out = append(out, h)
		}
		return out, c
	}
	want, _ := script(func(int) {})
	if attached, err := m.Accelerate("cuda"); !attached {
		t.Fatal(err)
	}
	defer m.Detach()
	defer d.Pool.SetLimit(0)
	var held int64
	got, c := script(func(i int) {
		switch i {
		case 2: // both uploads held: the first long pass's workspace is its peak over them
			ok(t, d.Pool.Trim())
			held = d.Pool.Stats().InUse
			d.Pool.ResetPeak()
		case 3:
			work := d.Pool.Stats().Peak - held
			ok(t, d.Pool.Trim())
			d.Pool.SetLimit(d.Pool.Stats().InUse + work - int64(len(a2.Params))*4/2)
		}
	})
	if c.DevLen != c.Len {
		t.Errorf("the last pass ran on the host: the device holds %d rows of %d", c.DevLen, c.Len)
	}
	matchHost(t, got, want)
}

// TestDecoderFullDropsIdleMirrors: a device filled by idle caches' mirrors
// (requests that finished, their caches not yet collected) makes room for
// an adapter's upload and for the logits by dropping them (the host keeps
// their rows), so those still run on the device; before, the upload fell
// back to the host every token and the logits to the caller's backend.
func TestDecoderFullDropsIdleMirrors(t *testing.T) {
	d, s, m, a1 := bigAdapter(t, 43)
	tok := tokens(rng(11), s.shape.Vocab)
	if attached, err := m.Accelerate("cuda"); !attached {
		t.Fatal(err)
	}
	defer m.Detach()
	defer d.Pool.SetLimit(0)
	idle := make([]*model.Cache, 8) // mirrors of 3 layers × 2 × 256 rows × 64 bf16 each: ~1.6 MB in all, the adapter ~1.7
	for i := range idle {
		idle[i] = m.NewCache(256)
		_, err := m.Forward(tensor.CPU{}, tok(3), idle[i], nil)
		ok(t, err)
	}
	c := m.NewCache(256)
	_, err := m.Forward(tensor.CPU{}, tok(3), c, nil) // its mirror, the base's pass
	ok(t, err)
	ok(t, d.Pool.Trim())
	d.Pool.SetLimit(d.Pool.Stats().InUse + int64(len(a1.Params))*4/2) // half the adapter's upload
	m.Delta = a1
	ids := tok(2)
	h, err := m.Forward(tensor.CPU{}, ids, c, nil)
	ok(t, err)
	if c.DevLen != c.Len {
		t.Errorf("the adapter's pass ran on the host: the device holds %d rows of %d", c.DevLen, c.Len)
	}
	for i, ic := range idle {
		if ic.DevLen != 0 {
			t.Errorf("idle cache %d still mirrored (%d rows)", i, ic.DevLen)
		}
		_, err := m.Forward(tensor.CPU{}, tok(1), ic, nil) // mirrored again, or on the host: right either way
		ok(t, err)
	}

	// The logits of the last pass's rows with the device full again.
	V := s.shape.Vocab
	want := make([]float32, 2*V)
	tensor.CPU{}.MatMul(want, h, m.LMHead, 2)
	ok(t, d.Pool.Trim())
	d.Pool.SetLimit(d.Pool.Stats().InUse + 4<<10)
	got := make([]float32, 2*V)
	m.Logits(fullDevice{}, got, h, 2)
	if rel := relL2(got, want); rel > 2e-2 || rel != rel || rel == 0 {
		t.Errorf("logits %.2e relative to the host's (0: not the device's bf16 head)", rel)
	}
	for i, ic := range idle {
		if ic.DevLen != 0 {
			t.Errorf("idle cache %d still mirrored (%d rows) after the logits", i, ic.DevLen)
		}
	}
}

// fullDevice stands for an op-by-op backend on the full device: the
// logits must not fall back to it.
type fullDevice struct{ tensor.CPU }

func (fullDevice) MatMul([]float32, []float32, tensor.Matrix, int) { panic("an op on the full device") }

// bigAdapter is setups[0]'s model (seeded) with a rank-64 adapter: an
// upload large beside a pass's workspace.
func bigAdapter(t *testing.T, seed uint64) (*cuda.Device, setup, *model.Model, *lora.Adapter) {
	d := device(t)
	s := setups[0]
	s.rank = 64
	dir := t.TempDir()
	ok(t, model.WriteRandom(dir, s.shape, tensor.BF16, seed))
	m, a := build(t, dir, s)
	return d, s, m, a
}

// matchHost compares each pass's hidden states with the host's (bf16
// products: 2e-2 relative in L2).
func matchHost(t *testing.T, got, want [][]float32) {
	t.Helper()
	for i := range want {
		if rel := relL2(got[i], want[i]); rel > 2e-2 || rel != rel {
			t.Errorf("pass %d: %.2e relative to the host's", i, rel)
		}
	}
}

// TestDecoderFreesRetiredAdapters: an adapter its owner retired (serve's
// cache evicted it) has its upload freed at the next pass with another
// delta, not kept until memory runs short; a retired adapter that is
// running keeps its upload.
func TestDecoderFreesRetiredAdapters(t *testing.T) {
	d, s, m, a1 := bigAdapter(t, 53)
	a2 := negated(t, m, a1)
	tok := tokens(rng(11), s.shape.Vocab)
	if attached, err := m.Accelerate("cuda"); !attached {
		t.Fatal(err)
	}
	defer m.Detach()
	c := m.NewCache(64)
	pass := func(a *lora.Adapter) int64 {
		m.Delta = a
		_, err := m.Forward(tensor.CPU{}, tok(2), c, nil)
		ok(t, err)
		ok(t, d.Pool.Trim())
		return d.Pool.Stats().InUse
	}
	pass(a1)
	both := pass(a2)
	a1.Retire()
	after := pass(a2)
	if freed := both - after; freed < int64(len(a1.Params)) {
		t.Errorf("the retired adapter's pass freed %d bytes; its upload holds %d parameters", freed, len(a1.Params))
	}
	a2.Retire()
	if again := pass(a2); again != after {
		t.Errorf("the running adapter's upload went with its retirement: %d bytes in use, was %d", again, after)
	}
}
