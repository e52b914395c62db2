//go:build cuda

package devnet_test

import (
	"math"
	"testing"

	"distill/core/model"
	"distill/core/tensor"
	"distill/core/train"
)

// kdTeacher is a wider, differently shaped Qwen2 with s's vocabulary.
func kdTeacher(t *testing.T, s setup) *model.Model {
	dir := t.TempDir()
	ts := model.Shape{Arch: "Qwen2ForCausalLM", Hidden: 192, Intermediate: 512, Layers: 2, Heads: 6, KVHeads: 2,
		Vocab: s.shape.Vocab, Tied: true, RopeTheta: 1e6, RMSNormEps: 1e-6, MaxPositions: 256, BOS: 1, EOS: 2}
	ok(t, model.WriteRandom(dir, ts, tensor.BF16, 32))
	teacher, err := model.Load(dir)
	ok(t, err)
	t.Cleanup(func() { teacher.Close() })
	return teacher
}

// Logit distillation on the device (the teacher on the device too) against
// core/train's StepKD on the CPU: a wider, differently shaped teacher with
// the student's vocabulary, each divergence, loss and adapter gradients.
func TestKDParity(t *testing.T) {
	d := device(t)
	for i, s := range []setup{setups[0], setups[3]} {
		kd := []train.KD{
			{Divergence: "forward_kl", Temperature: 2, Alpha: 0.5},
			{Divergence: "jsd", Temperature: 1.5, Alpha: 0.2, Beta: 0.5},
			{Divergence: "reverse_kl", Temperature: 1, Alpha: 0},
		}
		for _, k := range kd[i:] {
			t.Run(s.name+"_"+k.Divergence, func(t *testing.T) {
				dir := t.TempDir()
				ok(t, model.WriteRandom(dir, s.shape, tensor.BF16, 31))
				k.Teacher, k.Backend = kdTeacher(t, s), tensor.CPU{}
				b := batch(rng(9), s.shape.Vocab, 33, 40)
				denom := b.Counted()

				m, a := build(t, dir, s)
				ok(t, k.Validate(m))
				cpu, err := train.NewNet(tensor.CPU{}, m, a)
				ok(t, err)
				cpu.DropoutSeed = 3
				want, err := cpu.StepKD(b, denom, &k)
				ok(t, err)

				m2, a2 := build(t, dir, s)
				gpu, err := train.NewNet(tensor.CPU{}, m2, a2)
				ok(t, err)
				gpu.Checkpoint = true // the default run's recomputation (a run's config: grad_checkpointing)
				gpu.DropoutSeed = 3
				if attached, err := gpu.Accelerate("cuda"); !attached {
					t.Fatal(err)
				}
				t.Cleanup(gpu.Close)
				before := d.Pool.Stats()
				got, err := gpu.StepKD(b, denom, &k)
				ok(t, err)
				ranOnDevice(t, d, before)
				// bf16 GEMMs on both models' paths: 2e-3 relative on the summed loss.
				if math.Abs(got-want) > 2e-3*math.Abs(want) || math.IsNaN(got) {
					t.Errorf("loss %.6f, CPU %.6f", got, want)
				}
				if rel := relL2(gpu.Grads, cpu.Grads); rel > 1.5e-2 || math.IsNaN(rel) {
					t.Errorf("adapter gradients differ from the CPU's by %.2e relative (L2)", rel)
				} else {
					t.Logf("loss %.6f (CPU %.6f), gradients %.2e relative", got, want, rel)
				}
			})
		}
	}
}
