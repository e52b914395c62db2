package train

import (
	"context"
	"math"
	"path/filepath"
	"testing"
)

// TestResumeIsBitwiseIdentical: 3 steps, a checkpoint, a fresh process state
// (new net, new optimizer) restored from it, 3 more steps — the losses and
// the final parameters equal those of 6 uninterrupted steps bit for bit,
// with LoRA dropout on so the random stream is part of the test.
func TestResumeIsBitwiseIdentical(t *testing.T) {
	cfg := Config{Steps: 6, Accum: 2, MaxGradNorm: 1, Schedule: Schedule{Kind: "cosine", Peak: 5e-3, Warmup: 2, Total: 6}}
	newRun := func() (*Net, *AdamW, *cycle) {
		net, bf, _ := fixtureNet(t, "llama3-f32", "adapter")
		net.Adapter.Config.Dropout = 0.1
		net.DropoutSeed = 42
		net.Checkpoint = true
		return net, NewAdamW(len(net.Params), 0.01), &cycle{batches: []*Batch{bf.batch(), bf.packedBatch()}}
	}
	collect := func(net *Net, opt *AdamW, data *cycle, c Config) []float64 {
		ev := make(chan Event, 16)
		if err := Train(context.Background(), net, opt, c, data, ev); err != nil {
			t.Fatal(err)
		}
		close(ev)
		var losses []float64
		for e := range ev {
			losses = append(losses, e.Loss)
		}
		return losses
	}
	netA, optA, dataA := newRun()
	straight := collect(netA, optA, dataA, cfg)

	netB, optB, dataB := newRun()
	half := cfg
	half.Steps = 3
	first := collect(netB, optB, dataB, half)
	dir := filepath.Join(t.TempDir(), "step-3")
	if err := SaveCheckpoint(dir, netB, optB, State{Step: optB.Step, Seed: 42}); err != nil {
		t.Fatal(err)
	}
	netC, optC, dataC := newRun()
	st, err := LoadCheckpoint(dir, netC, optC)
	if err != nil {
		t.Fatal(err)
	}
	if st.Step != 3 || st.MicroBatches != 6 {
		t.Fatalf("restored state %+v", st)
	}
	second := collect(netC, optC, dataC, cfg)
	resumed := append(first, second...)
	if len(resumed) != len(straight) {
		t.Fatalf("%d losses resumed, %d straight", len(resumed), len(straight))
	}
	for i := range straight {
		if math.Float64bits(resumed[i]) != math.Float64bits(straight[i]) {
			t.Fatalf("step %d: loss %.17g resumed, %.17g straight", i+1, resumed[i], straight[i])
		}
	}
	for i := range netA.Params {
		if math.Float32bits(netA.Params[i]) != math.Float32bits(netC.Params[i]) {
			t.Fatalf("parameter %d differs after resume: %g vs %g", i, netC.Params[i], netA.Params[i])
		}
	}
	t.Logf("losses %v", straight)
}
