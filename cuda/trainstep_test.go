//go:build cuda

package cuda_test

import (
	"math"
	"testing"

	"distill/core/lora"
	"distill/core/model"
	"distill/core/quant"
	"distill/core/tensor"
	"distill/core/train"
	"distill/cuda"
)

// One QLoRA training step (forward, chunked cross-entropy, backward through
// the frozen NF4 base into the adapter) on the CUDA backend against the CPU
// backend: core/train's step code calls MatMul and MatMulTAdd on the
// backend, so this is the path a QLoRA run takes today. Two packed
// sequences, every projection targeted, A and B both random so both get
// gradients.
func TestQLoRAStepParity(t *testing.T) {
	d := device(t)
	dir := t.TempDir()
	s := model.Shape{Arch: "Qwen2ForCausalLM", Hidden: 128, Intermediate: 320, Layers: 2, Heads: 4, KVHeads: 2,
		Vocab: 777, Tied: true, RopeTheta: 1e6, RMSNormEps: 1e-6, MaxPositions: 256, BOS: 1, EOS: 2}
	ok(t, model.WriteRandom(dir, s, tensor.BF16, 9))
	be := cuda.NewBackend(d)
	t.Cleanup(func() { be.Release() })

	step := func(be tensor.Backend) (float64, []float32) {
		m, err := model.Load(dir)
		ok(t, err)
		t.Cleanup(func() { m.Close() })
		_, err = quant.QuantizeModel(m, "nf4", true, false)
		ok(t, err)
		a, err := lora.NewFor(m, lora.Config{R: 8, Alpha: 16, Targets: lora.Modules})
		ok(t, err)
		r := rng(4)
		for i := range a.Params {
			a.Params[i] = float32(0.05 * r.NormFloat64())
		}
		net, err := train.NewNet(be, m, a)
		ok(t, err)
		b := &train.Batch{}
		for _, L := range []int{37, 21} {
			ids, mask := make([]int, L), make([]bool, L)
			for i := range ids {
				ids[i], mask[i] = r.IntN(s.Vocab), i >= L/3
			}
			b.AddSequence(ids, mask)
		}
		loss, err := net.Step(b, b.Counted())
		ok(t, err)
		return loss, append([]float32(nil), net.Grads...)
	}
	wantLoss, wantG := step(tensor.CPU{})
	gotLoss, gotG := step(be)
	// bf16 activations into the GPU's GEMMs: ~1e-2 relative on what passes
	// through them. The loss sums log-probs, whose errors partly cancel:
	// 1e-3 relative. Gradients as a whole: 1e-2 relative in L2.
	if math.Abs(gotLoss-wantLoss) > 1e-3*math.Abs(wantLoss) {
		t.Errorf("loss %.6f, CPU %.6f", gotLoss, wantLoss)
	}
	var num, den float64
	for i := range wantG {
		dg := float64(gotG[i] - wantG[i])
		num += dg * dg
		den += float64(wantG[i]) * float64(wantG[i])
	}
	if rel := math.Sqrt(num / den); rel > 1e-2 || math.IsNaN(rel) {
		t.Errorf("adapter gradients differ from the CPU's by %.2e relative (L2)", rel)
	} else {
		t.Logf("loss %.6f (CPU %.6f), gradients %.2e relative", gotLoss, wantLoss, rel)
	}
}
