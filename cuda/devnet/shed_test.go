//go:build cuda

package devnet_test

import (
	"context"
	"math/bits"
	"strings"
	"testing"

	"distill/core/model"
	"distill/core/tensor"
	"distill/core/train"
	"distill/cuda"
)

// TestFullDeviceShedsActivations: a run keeping every layer's activations
// whose device fills up (another allocation takes the room a kept step
// needs, leaving a recomputing one's) goes on: the kept step fails with
// model.ErrAcceleratorFull, core/train takes the step again recomputing
// them and says so, and the loss stays the recomputing run's.
func TestFullDeviceShedsActivations(t *testing.T) {
	d := device(t)
	s := setups[0]
	dir := t.TempDir()
	ok(t, model.WriteRandom(dir, s.shape, tensor.BF16, 9))
	r := rng(17)
	data := cycle{batch(r, s.shape.Vocab, 120, 80), batch(r, s.shape.Vocab, 150, 50)}
	cfg := train.Config{Steps: 1, Accum: 2, MaxGradNorm: 1, Schedule: train.Schedule{Kind: "constant", Peak: 1e-3, Total: 4}}
	m, a := build(t, dir, s)
	net, err := train.NewNet(tensor.CPU{}, m, a)
	ok(t, err)
	if attached, err := net.Accelerate("cuda"); !attached {
		t.Fatal(err)
	}
	t.Cleanup(net.Close)
	opt := train.NewAdamW(len(net.Params), 0)
	// Each way's workspace over what stays resident between Train calls.
	step := func(recompute bool) (peak int64, ev []train.Event) {
		ok(t, d.Pool.Trim())
		d.Pool.ResetPeak()
		base := d.Pool.Stats().InUse
		net.Checkpoint = recompute
		ch := make(chan train.Event, 4)
		ok(t, train.Train(context.Background(), net, opt, cfg, data, ch))
		close(ch)
		for e := range ch {
			ev = append(ev, e)
		}
		cfg.Steps++
		return d.Pool.Stats().Peak - base, ev
	}
	rec, _ := step(true)
	keep, _ := step(false)
	if keep <= rec {
		t.Fatalf("a kept step takes %d bytes of workspace, a recomputing one %d", keep, rec)
	}
	ok(t, d.Pool.Trim())
	free, _, err := d.MemInfo()
	ok(t, err)
	// The pool rounds a buffer up to its size class: the filler in powers
	// of two, which it takes as they are.
	for left := free - (rec+keep)/2; left >= 1<<16; {
		n := int64(1) << (63 - bits.LeadingZeros64(uint64(left)))
		b, err := d.Alloc(cuda.U8, int(n))
		ok(t, err)
		defer b.Free()
		left -= n
	}
	_, ev := step(false)
	if !net.Checkpoint || len(ev) != 1 || len(ev[0].Notes) != 1 || !strings.Contains(ev[0].Notes[0], "ran out of memory keeping every layer's activations") {
		t.Fatalf("recomputing %v after a full device; events %+v", net.Checkpoint, ev)
	}
	if ev[0].Loss != ev[0].Loss || ev[0].Loss <= 0 {
		t.Errorf("loss %v after shedding", ev[0].Loss)
	}
	t.Logf("workspace kept %d, recomputing %d bytes; %s", keep, rec, ev[0].Notes[0])
}
