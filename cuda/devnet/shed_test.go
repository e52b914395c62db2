//go:build cuda

package devnet_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"distill/core/model"
	"distill/core/tensor"
	"distill/core/train"
)

// TestFullDeviceShedsActivations: a run keeping every layer's activations
// whose device fills up mid-step (the pool limited to between what a kept
// step and a recomputing one take, as if another process took the rest:
// the step's short first micro-batch fits kept, its gradients accumulated
// on the device, the long second does not) goes on: the kept step fails
// with model.ErrAcceleratorFull, core/train takes the whole step again
// recomputing and says so — and its parameters are bit for bit those of a
// run that took that step recomputing from the start (nothing of the
// failed attempt left behind).
func TestFullDeviceShedsActivations(t *testing.T) {
	d := device(t)
	// Bit for bit needs a backward whose sums have one order: the fused
	// dq's atomics (gated) land in the GPU's order, run to run.
	t.Setenv("DISTILL_CUDA_FLASH_FUSED_DQ", "0")
	// And a pool peak measured over what stays resident between steps: step
	// graphs (gated) hold their arena between steps, so the kept step's
	// workspace would read as the arena's growth alone. With every gate
	// open (devcheck's second test run) they stay closed here; shedding
	// under step graphs is not this test's.
	t.Setenv("DISTILL_CUDA_STEP_GRAPHS", "0")
	s := setups[0]
	dir := t.TempDir()
	ok(t, model.WriteRandom(dir, s.shape, tensor.BF16, 9))
	r := rng(17)
	data := cycle{batch(r, s.shape.Vocab, 40, 20), batch(r, s.shape.Vocab, 150, 50)}
	type run struct {
		net *train.Net
		opt *train.AdamW
		cfg train.Config
	}
	newRun := func() *run {
		m, a := build(t, dir, s)
		net, err := train.NewNet(tensor.CPU{}, m, a)
		ok(t, err)
		if attached, err := net.Accelerate("cuda"); !attached {
			t.Fatal(err)
		}
		t.Cleanup(net.Close)
		return &run{net, train.NewAdamW(len(net.Params), 0),
			train.Config{Steps: 0, Accum: 2, MaxGradNorm: 1, Schedule: train.Schedule{Kind: "constant", Peak: 1e-3, Total: 4}}}
	}
	// step takes one optimizer step, recomputing or keeping, and returns the
	// pool's peak over what stays resident between Train calls.
	step := func(r *run, recompute bool) (peak int64, ev []train.Event) {
		ok(t, d.Pool.Trim())
		d.Pool.ResetPeak()
		base := d.Pool.Stats().InUse
		r.net.Checkpoint = recompute
		r.cfg.Steps++
		ch := make(chan train.Event, 4)
		ok(t, train.Train(context.Background(), r.net, r.opt, r.cfg, data, ch))
		close(ch)
		for e := range ch {
			ev = append(ev, e)
		}
		return d.Pool.Stats().Peak - base, ev
	}
	ref := newRun() // recompute, keep, recompute
	rec, _ := step(ref, true)
	keep, _ := step(ref, false)
	_, want := step(ref, true)
	if keep <= rec {
		t.Fatalf("a kept step takes %d bytes of workspace, a recomputing one %d", keep, rec)
	}
	got := newRun() // recompute, keep, keep on a full device
	step(got, true)
	step(got, false)
	ok(t, d.Pool.Trim())
	d.Pool.SetLimit(d.Pool.Stats().InUse + (rec+keep)/2)
	defer d.Pool.SetLimit(0)
	_, ev := step(got, false)
	if !got.net.Checkpoint || len(ev) != 1 || len(ev[0].Notes) != 1 || !strings.Contains(ev[0].Notes[0], "ran out of memory keeping every layer's activations") {
		t.Fatalf("recomputing %v after a full device; events %+v", got.net.Checkpoint, ev)
	}
	if ev[0].Loss != want[0].Loss || !slices.Equal(got.net.Params, ref.net.Params) {
		t.Errorf("after shedding: loss %v, the recomputing run's %v; parameters equal %v", ev[0].Loss, want[0].Loss, slices.Equal(got.net.Params, ref.net.Params))
	}
	t.Logf("workspace kept %d, recomputing %d bytes; %s", keep, rec, ev[0].Notes[0])
}
