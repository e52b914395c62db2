//go:build cuda

package devnet_test

import (
	"fmt"
	"testing"

	"distill/cuda/devnet"
)

// TestDropDXMatchesGEMM: under LoRA dropout the adapter's dx term in one
// pass (DISTILL_CUDA_DROPOUT_DX, lora_dropout.go) gives the loss and
// gradients of the TF32 GEMM and dropout_add it replaces, recomputing and
// keeping the activations — up to the GEMM's TF32 rounding of du and A
// (2⁻¹¹ relative a product, carried into every earlier layer's gradients:
// 1.9–2.1e-3 relative here, 5e-3 bounds it; against the CPU the one pass
// is the closer, 3.8e-3 to the GEMM's 4.1e-3). The one-pass path ran (a launch a
// group or module), and never with the gate closed. TestStepParity's
// dropout case holds the default path to the CPU.
func TestDropDXMatchesGEMM(t *testing.T) {
	d := device(t)
	s := setups[3]
	if s.dropout == 0 {
		t.Fatalf("setup %s has no dropout", s.name)
	}
	dir, batches, denom := stepFixture(t, s)
	for _, keep := range []bool{false, true} {
		run := func(gate string) (float64, []float32, int64) {
			return gatedStep(t, d, dir, s, batches, denom, "DISTILL_CUDA_DROPOUT_DX", gate, keep, devnet.DroppedDX)
		}
		l0, g0, n0 := run("0")
		l1, g1, n1 := run("1")
		if n0 != 0 {
			t.Errorf("keep %v: %d one-pass dx terms with the gate closed", keep, n0)
		}
		// Per layer and micro-batch: q, k, v's launch, o's, gate and up's, down's.
		if want := int64(4 * s.shape.Layers * len(batches)); n1 != want {
			t.Errorf("keep %v: %d one-pass dx launches, want %d", keep, n1, want)
		}
		sameStep(t, fmt.Sprintf("keep %v: one pass against the GEMM", keep), l1, l0, g1, g0, 5e-3)
	}
}
