package train

import (
	"context"
	"math"
	"os"
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

// Saving a step's checkpoint again replaces it whole (the older one renamed
// aside, then removed); a crash between the two renames leaves only the
// one aside, which LoadCheckpoint then takes.
func TestCheckpointSavedAgainReplacesIt(t *testing.T) {
	net, _, _ := fixtureNet(t, "llama3-f32", "adapter")
	opt := NewAdamW(len(net.Params), 0.01)
	dir := filepath.Join(t.TempDir(), "step-000003")
	opt.Step = 3
	if err := SaveCheckpoint(dir, net, opt, State{Step: 3, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	net.Params[0] += 1
	if err := SaveCheckpoint(dir, net, opt, State{Step: 3, Seed: 2}); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(filepath.Dir(dir))
	if len(entries) != 1 {
		t.Errorf("the checkpoints folder holds %d entries, want the step's alone", len(entries))
	}
	if err := os.Rename(dir, dir+aside); err != nil { // as a crash between the renames leaves it
		t.Fatal(err)
	}
	want := net.Params[0]
	net.Params[0] = 0
	st, err := LoadCheckpoint(dir, net, NewAdamW(len(net.Params), 0.01))
	if err != nil || st.Seed != 2 || net.Params[0] != want {
		t.Errorf("the checkpoint aside: seed %d, parameter %v (want 2, %v), %v", st.Seed, net.Params[0], want, err)
	}
}
