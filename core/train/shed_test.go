package train

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"distill/core/lora"
	"distill/core/model"
	"distill/core/tensor"
)

// shedAccel is cpuAccel on a device that runs out of memory keeping every
// layer's activations: from its fail-th step on, a step that keeps them
// (SetCheckpoint(false)) fails with model.ErrAcceleratorFull after leaving
// some gradient behind, as a step that failed midway would.
type shedAccel struct {
	cpuAccel
	checkpoint  bool
	steps, fail int
	always      bool // fail recomputing too: a device too full for anything
}

func init() {
	RegisterAccelerated("cpu-shed-stand-in", func(m *model.Model, a *lora.Adapter) (Accelerated, error) {
		n, err := NewNet(tensor.CPU{}, m, a)
		return &shedAccel{cpuAccel: cpuAccel{net: n}, fail: 4}, err
	})
}

func (s *shedAccel) SetCheckpoint(on bool) { s.checkpoint = on; s.cpuAccel.SetCheckpoint(on) }

// shedOptAccel is cpuOptAccel (the optimizer, and so the gradients between
// micro-batches, on its "device") running out of memory as shedAccel does.
type shedOptAccel struct {
	cpuOptAccel
	checkpoint  bool
	steps, fail int
}

func init() {
	RegisterAccelerated("cpu-opt-shed-stand-in", func(m *model.Model, a *lora.Adapter) (Accelerated, error) {
		clone, err := lora.NewFor(m, a.Config)
		if err != nil {
			return nil, err
		}
		copy(clone.Params, a.Params)
		n, err := NewNet(tensor.CPU{}, m, clone)
		return &shedOptAccel{cpuOptAccel: cpuOptAccel{cpuAccel: cpuAccel{net: n}, host: a.Params}, fail: 4}, err
	})
}

func (s *shedOptAccel) SetCheckpoint(on bool) { s.checkpoint = on; s.cpuAccel.SetCheckpoint(on) }

func (s *shedOptAccel) Step(b *Batch, denom int, drop DropoutMask) (float64, error) {
	s.steps++
	if !s.checkpoint && s.steps >= s.fail {
		for i := range s.net.Grads { // the device's gradients, the first micro-batch's in them already
			s.net.Grads[i] += 1
		}
		return 0, fmt.Errorf("stand-in: %w", model.ErrAcceleratorFull)
	}
	return s.cpuAccel.Step(b, denom, drop)
}

func (s *shedAccel) Step(b *Batch, denom int, drop DropoutMask) (float64, error) {
	s.steps++
	if (!s.checkpoint || s.always) && s.steps >= s.fail {
		for i := range s.net.Grads {
			s.net.Grads[i] += 1
		}
		return 0, fmt.Errorf("stand-in: %w", model.ErrAcceleratorFull)
	}
	return s.cpuAccel.Step(b, denom, drop)
}

// A run keeping its activations whose device fills up mid-step (the second
// micro-batch of the second step, the first's gradients accumulated) takes
// that step again from its first micro-batch, recomputing them from then
// on, and says so: its parameters are the host's, which never ran out; a
// device too full even to recompute fails the run, naming why.
func TestTrainShedsActivationsWhenTheDeviceFills(t *testing.T) {
	cfg, host, dev, data := shedRuns(t, "cpu-shed-stand-in")
	var notes []string
	ev := make(chan Event, 8)
	if err := Train(context.Background(), host, NewAdamW(len(host.Params), 0), cfg, data, nil); err != nil {
		t.Fatal(err)
	}
	if err := Train(context.Background(), dev, NewAdamW(len(dev.Params), 0), cfg, data, ev); err != nil {
		t.Fatal(err)
	}
	close(ev)
	for e := range ev {
		for _, n := range e.Notes {
			notes = append(notes, fmt.Sprintf("%d: %s", e.Step, n))
		}
	}
	if !slices.Equal(dev.Params, host.Params) {
		t.Error("the parameters after shedding differ from the host's")
	}
	if !dev.Checkpoint || len(notes) != 1 || !strings.HasPrefix(notes[0], "2: step 2: the device ran out of memory keeping every layer's activations") {
		t.Errorf("recomputing %v after; notes %q", dev.Checkpoint, notes)
	}
	if dev.MicroBatches() != host.MicroBatches() {
		t.Errorf("%d micro-batches counted, the host %d (the retried step's again)", dev.MicroBatches(), host.MicroBatches())
	}
	a := dev.accel.(*shedAccel)
	a.always, a.steps, a.fail = true, 0, 1
	cfg.Steps = 4
	err := Train(context.Background(), dev, NewAdamW(len(dev.Params), 0), cfg, data, nil)
	if err == nil || !strings.Contains(err.Error(), "step 1") || !strings.Contains(err.Error(), "memory is full") || a.steps != 1 {
		t.Errorf("a device too full to recompute: %v after %d tries", err, a.steps)
	}
}

// With the optimizer on the device the gradients of a step's micro-batches
// accumulate there: a step that fails on its second micro-batch, the
// device's gradients holding the first's and more, is taken again from
// zero — its parameters and moments the host's, which never ran out.
func TestTrainShedsWithTheOptimizerOnTheDevice(t *testing.T) {
	cfg, host, dev, data := shedRuns(t, "cpu-opt-shed-stand-in")
	optH, optD := NewAdamW(len(host.Params), 0), NewAdamW(len(dev.Params), 0)
	if err := Train(context.Background(), host, optH, cfg, data, nil); err != nil {
		t.Fatal(err)
	}
	ev := make(chan Event, 8)
	if err := Train(context.Background(), dev, optD, cfg, data, ev); err != nil {
		t.Fatal(err)
	}
	close(ev)
	notes := 0
	for e := range ev {
		notes += len(e.Notes)
		if !e.OptimizerOnDevice {
			t.Errorf("step %d: the optimizer left the device", e.Step)
		}
	}
	if !dev.Checkpoint || notes != 1 || dev.accel.(*shedOptAccel).steps != 8 {
		t.Errorf("recomputing %v after, %d notes, %d device steps (want 2, 2 tried, 2 again, 2)", dev.Checkpoint, notes, dev.accel.(*shedOptAccel).steps)
	}
	for _, p := range []struct {
		name      string
		got, want []float32
	}{{"parameters", dev.Params, host.Params}, {"first moments", optD.M, optH.M}, {"second moments", optD.V, optH.V}} {
		worst := 0.0
		for i := range p.want {
			worst = max(worst, math.Abs(float64(p.got[i]-p.want[i]))/(math.Abs(float64(p.want[i]))+1e-3))
		}
		if worst > 1e-4 {
			t.Errorf("%s: up to %.2e relative from the host's", p.name, worst)
		}
	}
}

// shedRuns is a three-step run's config, a host Net and one on the stand-in
// device accel, both keeping their activations, and the data.
func shedRuns(t *testing.T, accel string) (Config, *Net, *Net, *cycle) {
	t.Helper()
	cfg := Config{Steps: 3, Accum: 2, MaxGradNorm: 1, Schedule: Schedule{Kind: "constant", Peak: 5e-3, Total: 10}}
	host, bf, _ := fixtureNet(t, "llama3-f32", "adapter")
	dev, _, _ := fixtureNet(t, "llama3-f32", "adapter")
	for _, n := range []*Net{host, dev} {
		n.Checkpoint = false
	}
	if ok, err := dev.Accelerate(accel); !ok {
		t.Fatal(err)
	}
	return cfg, host, dev, &cycle{batches: []*Batch{bf.batch(), bf.packedBatch()}}
}
