//go:build cuda

package devnet_test

import (
	"errors"
	"math/bits"
	"testing"

	"distill/core/model"
	"distill/core/tensor"
	"distill/cuda"
)

// fillDevice takes the device's free memory down to about left bytes (the
// pool trimmed first; within 4 KiB), in powers of two, which the pool
// takes as they are; the returned func gives it back.
func fillDevice(t *testing.T, d *cuda.Device, left int64) (release func()) {
	t.Helper()
	ok(t, d.Pool.Trim())
	free, _, err := d.MemInfo()
	ok(t, err)
	var bufs []*cuda.Buffer
	for rest := free - left; rest >= 4096; {
		n := int64(1) << (63 - bits.LeadingZeros64(uint64(rest)))
		b, err := d.Alloc(cuda.U8, int(n))
		ok(t, err)
		bufs = append(bufs, b)
		rest -= n
	}
	return func() {
		for _, b := range bufs {
			b.Free()
		}
	}
}

// TestDecoderAutoOffload: --cpu-offload auto (model.AutoCPULayers) keeps
// every layer on a device with room for them, and on one with room for
// half — its free memory within a tenth of what holding layers 3.. takes —
// runs the first three on the host, the device-resident decoder over the
// rest giving the host's hidden states, every pass of a 200-token prompt
// on the device within that room and the pool's peak within the bytes it
// was chosen by; a device without room for even
// the last layer leaves every layer on the host, saying the device is
// full.
func TestDecoderAutoOffload(t *testing.T) {
	d := device(t)
	s := setups[0]
	s.shape.Layers = 6
	dir := t.TempDir()
	ok(t, model.WriteRandom(dir, s.shape, tensor.BF16, 23))
	m, _ := build(t, dir, s)
	tok := tokens(rng(3), s.shape.Vocab)
	prompt, next := tok(200), tok(1)
	c := m.NewCache(256)
	want, err := m.Forward(tensor.CPU{}, prompt, c, nil)
	ok(t, err)
	want1, err := m.Forward(tensor.CPU{}, next, c, nil)
	ok(t, err)

	for _, c := range []struct {
		room int64 // free memory, 0: as the device has it
		from int
	}{{0, 0}, {m.DecoderPlan(3).Total()*10/9 + 8192, 3}, {m.DecoderPlan(5).Total() * 9 / 10, 6}} {
		release := func() {}
		if c.room > 0 {
			release = fillDevice(t, d, c.room)
		}
		base := d.Pool.Stats().InUse
		d.Pool.ResetPeak()
		m.CPULayers = model.AutoCPULayers
		attached, err := m.Accelerate("cuda")
		if m.CPULayers != c.from {
			t.Fatalf("room %d: %d layers on the CPU, want %d (%v)", c.room, m.CPULayers, c.from, err)
		}
		if c.from == len(m.Layers) {
			release()
			if attached || !errors.Is(err, model.ErrAcceleratorFull) {
				t.Errorf("no room even for the last layer: attached %v, %v", attached, err)
			}
			continue
		}
		if !attached {
			t.Fatal(err)
		}
		gc := m.NewCache(256)
		got, err := m.Forward(tensor.CPU{}, prompt, gc, nil)
		ok(t, err)
		got1, err := m.Forward(tensor.CPU{}, next, gc, nil)
		ok(t, err)
		// Within the room it chose by (the filler still there): every
		// pass ran on the device, and the pool's peak is within the need.
		if gc.DevLen != gc.Len {
			t.Errorf("from %d: the device holds %d rows of %d: a pass ran on the host", c.from, gc.DevLen, gc.Len)
		}
		if peak, need := d.Pool.Stats().Peak-base, m.DecoderPlan(c.from).Total(); peak > need {
			t.Errorf("from %d: the decoder took %d bytes at its peak, more than the %d it was chosen by", c.from, peak, need)
		} else {
			t.Logf("from %d: peak %d bytes of the %d reserved", c.from, peak, need)
		}
		release()
		for i, p := range [][2][]float32{{got, want}, {got1, want1}} {
			if rel := relL2(p[0], p[1]); rel > 2e-2 || rel != rel {
				t.Errorf("from %d, pass %d: %.2e relative to the host's", c.from, i, rel)
			}
		}
		m.Detach()
	}
}
