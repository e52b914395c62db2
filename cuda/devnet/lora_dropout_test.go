//go:build cuda

package devnet_test

import (
	"testing"

	"distill/cuda/devnet"
)

// TestDropDXMatchesGEMM: under LoRA dropout the adapter's dx term in one
// pass (DISTILL_CUDA_DROPOUT_DX, lora_dropout.go) gives the loss and
// gradients of the TF32 GEMM and dropout_add it replaces, recomputing and
// keeping the activations — up to the GEMM's TF32 rounding of du and A
// (2⁻¹¹ relative a product, carried into every earlier layer's gradients:
// 1.9–2.1e-3 relative here, 5e-3 bounds it; against the CPU the one pass
// is the closer, 3.8e-3 to the GEMM's 4.1e-3) — recomputing, keeping in f32
// and kept compact (gateSweep). The one-pass path ran (a launch a group or
// module), and never with the gate closed. TestStepParity's dropout case
// holds the default path to the CPU.
func TestDropDXMatchesGEMM(t *testing.T) {
	d := device(t)
	s := setups[3]
	if s.dropout == 0 {
		t.Fatalf("setup %s has no dropout", s.name)
	}
	// Per layer and micro-batch: q, k, v's launch, o's, gate and up's, down's.
	want := func(bool, bool) int64 { return int64(4 * s.shape.Layers * 2) }
	gateSweep(t, d, s, "DISTILL_CUDA_DROPOUT_DX", devnet.DroppedDX, want, func(what string, l0, l1 float64, g0, g1 []float32) {
		sameStep(t, what+": one pass against the GEMM", l1, l0, g1, g0, 5e-3)
	})
}
