package train

import (
	"context"
	"math/rand/v2"
	"testing"

	"distill/core/lora"
)

// TestDPOLearnsPreferences: on a synthetic preference set (chosen answers
// drawn from one band of the vocabulary, rejected from another, prompts
// random) held-out preference accuracy rises from chance to ≥ 90% and the
// reward margin grows.
func TestDPOLearnsPreferences(t *testing.T) {
	net, _, _ := fixtureNet(t, "llama3-f32", "adapter")
	lora.Init(net.Adapter, 3) // B = 0: the policy starts as the reference
	V := net.M.Config.VocabSize
	r := rand.New(rand.NewPCG(9, 9))
	pairBatch := func(nPairs int) *Batch {
		b := &Batch{}
		for p := 0; p < nPairs; p++ {
			prompt := []int{1, 3 + r.IntN(V-3), 3 + r.IntN(V-3)}
			good := []int{20 + r.IntN(30), 20 + r.IntN(30), 2}
			bad := []int{200 + r.IntN(30), 200 + r.IntN(30), 2}
			for _, c := range [][]int{good, bad} {
				ids := append(append([]int(nil), prompt...), c...)
				mask := make([]bool, len(ids))
				for i := len(prompt); i < len(ids); i++ {
					mask[i] = true
				}
				b.AddSequence(ids, mask)
			}
		}
		return b
	}
	var train []*Batch
	for i := 0; i < 32; i++ {
		train = append(train, pairBatch(4))
	}
	held := pairBatch(40)
	accuracy := func() (float64, float64) {
		pol, _ := net.SequenceLogProbs(held, false)
		ref, _ := net.SequenceLogProbs(held, true)
		correct, margin := 0, 0.0
		for p := 0; p < len(pol); p += 2 {
			m := (pol[p] - ref[p]) - (pol[p+1] - ref[p+1])
			margin += m
			if m > 0 {
				correct++
			}
		}
		n := float64(len(pol) / 2)
		return float64(correct) / n, margin / n
	}
	acc0, m0 := accuracy()
	obj := &DPOObjective{DPO: &DPO{Beta: 0.1, Loss: "sigmoid"}}
	cfg := Config{Steps: 120, Accum: 1, MaxGradNorm: 1, Schedule: Schedule{Kind: "constant", Peak: 1e-2, Total: 120}, Objective: obj}
	ev := make(chan Event, cfg.Steps)
	if err := Train(context.Background(), net, NewAdamW(len(net.Params), 0), cfg, &Shuffled{Batches: train, Seed: 1}, ev); err != nil {
		t.Fatal(err)
	}
	close(ev)
	var last Event
	for e := range ev {
		last = e
	}
	acc1, m1 := accuracy()
	t.Logf("held-out accuracy %.2f → %.2f, margin %.3f → %.3f; last step %v", acc0, acc1, m0, m1, last.Extra)
	if acc1 < 0.9 || m1 <= m0 {
		t.Fatalf("accuracy %.2f → %.2f, margin %.3f → %.3f", acc0, acc1, m0, m1)
	}
	if last.Extra["rewards/accuracy"] == 0 {
		t.Fatalf("no DPO metrics in the events: %v", last.Extra)
	}
}
