//go:build cuda

package devnet_test

import (
	"math"
	"testing"

	"distill/core/model"
	"distill/core/tensor"
	"distill/core/train"
	"distill/cuda"
)

// DPO on the device against core/train's on the CPU: the reference and
// policy sequence log-probs, and one DPO step's pair statistics and adapter
// gradients, on two chosen/rejected pairs packed in one batch (with LoRA
// dropout on the second model pair of the table).
func TestDPOParity(t *testing.T) {
	d := device(t)
	for _, s := range []setup{setups[0], setups[3]} {
		t.Run(s.name, func(t *testing.T) {
			dir := t.TempDir()
			ok(t, model.WriteRandom(dir, s.shape, tensor.BF16, 21))
			b := batch(rng(8), s.shape.Vocab, 30, 26, 41, 35) // (chosen, rejected) × 2
			dpo := &train.DPO{Beta: 0.1, Loss: "sigmoid", LabelSmoothing: 0.1}

			m, a := build(t, dir, s)
			cpu, err := train.NewNet(tensor.CPU{}, m, a)
			ok(t, err)
			cpu.DropoutSeed = 5
			m2, a2 := build(t, dir, s)
			gpu, err := train.NewNet(tensor.CPU{}, m2, a2)
			ok(t, err)
			gpu.Checkpoint = true // the default run's recomputation (a run's config: grad_checkpointing)
			gpu.DropoutSeed = 5
			if attached, err := gpu.Accelerate("cuda"); !attached {
				t.Fatal(err)
			}
			t.Cleanup(gpu.Close)

			maxLP := 0.0 // the largest |log-prob| of a segment
			for _, off := range []bool{true, false} {
				want, err := cpu.SequenceLogProbs(b, off)
				ok(t, err)
				for _, w := range want {
					maxLP = max(maxLP, math.Abs(w))
				}
				got, err := gpu.SequenceLogProbs(b, off)
				ok(t, err)
				for i := range want {
					// Sums of ~20 log-probs through bf16 GEMMs: 1e-3 relative.
					if math.Abs(got[i]-want[i]) > 1e-3*math.Abs(want[i]) || math.IsNaN(got[i]) {
						t.Errorf("adapter off %v: segment %d log-prob %.5f, CPU %.5f", off, i, got[i], want[i])
					}
				}
			}
			ref, err := cpu.SequenceLogProbs(b, true)
			ok(t, err)
			wantSt, err := cpu.StepDPO(b, ref, 2, dpo)
			ok(t, err)
			before := d.Pool.Stats()
			gotSt, err := gpu.StepDPO(b, ref, 2, dpo)
			ok(t, err)
			ranOnDevice(t, d, before)
			// A reward is β·(policy − reference) log-prob: a difference of two
			// sums each within 1e-3 of its size, so its error is β·2e-3 of the
			// log-probs, not of the (much smaller) reward; the loss takes it
			// through the sigmoid's slope (≤ 1).
			rtol := 2e-3 * dpo.Beta * maxLP
			if gotSt.Pairs != 2 || gotSt.Correct != wantSt.Correct ||
				math.Abs(gotSt.Loss-wantSt.Loss) > rtol+1e-4 ||
				math.Abs(gotSt.RewardChosen-wantSt.RewardChosen) > rtol+1e-4 ||
				math.Abs(gotSt.RewardRejected-wantSt.RewardRejected) > rtol+1e-4 {
				t.Errorf("stats %+v, CPU %+v", gotSt, wantSt)
			}
			// The pair losses' gradients weigh each row by its pair's
			// coefficient: 1e-2 relative in L2, as the SFT step's.
			if rel := relL2(gpu.Grads, cpu.Grads); rel > 1e-2 || math.IsNaN(rel) {
				t.Errorf("adapter gradients differ from the CPU's by %.2e relative (L2)", rel)
			} else {
				t.Logf("loss %.6f (CPU %.6f), gradients %.2e relative", gotSt.Loss, wantSt.Loss, rel)
			}
		})
	}
}

// ranOnDevice fails the test unless the device pool served allocations
// since before: a step that silently took the CPU path would compare the
// CPU with itself.
func ranOnDevice(t *testing.T, d *cuda.Device, before cuda.PoolStats) {
	t.Helper()
	s := d.Pool.Stats()
	if s.Mallocs+s.Reuses == before.Mallocs+before.Reuses {
		t.Fatal("the step did not run on the device")
	}
}
