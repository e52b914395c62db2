//go:build cuda

package devnet_test

import (
	"slices"
	"testing"

	"distill/cuda/devnet"
)

// TestDropReuseSameStep: under LoRA dropout the down projection's dA
// reading the masked input its layer's recomputation left in the dropout
// buffer (DISTILL_CUDA_DROPOUT_REUSE) gives the step's loss and gradients
// bit for bit as making the mask again — the same values, one kernel less.
// Recomputing, every layer reuses it once a micro-batch (down is the last
// product of the recomputation and the first of the backward); keeping
// every layer's activations, only the last layer's forward is that close to
// its backward, and kept compact its dA waits for the SwiGLU backward to
// write its input again, so none does. The kernels that make the mask
// themselves (the forward then leaves no masked copy, the backward needs
// none: DISTILL_CUDA_SWIGLU_U, _SWIGLU_DA, _COL_DA, _ROW_SUMS) are held
// closed.
func TestDropReuseSameStep(t *testing.T) {
	d := device(t)
	for _, g := range []string{"SWIGLU_U", "SWIGLU_DA", "COL_DA", "ROW_SUMS"} {
		t.Setenv("DISTILL_CUDA_"+g, "0")
	}
	s := setups[3]
	if s.dropout == 0 {
		t.Fatalf("setup %s has no dropout", s.name)
	}
	want := func(keep, compact bool) int64 {
		switch {
		case !keep:
			return int64(2 * s.shape.Layers)
		case !compact:
			return 2
		}
		return 0
	}
	gateSweep(t, d, s, "DISTILL_CUDA_DROPOUT_REUSE", devnet.ReusedDrop, want, func(what string, l0, l1 float64, g0, g1 []float32) {
		if l1 != l0 || !slices.Equal(g1, g0) {
			t.Errorf("%s: loss %v reusing, %v not; gradients %.2e relative apart, want bit for bit", what, l1, l0, relL2(g1, g0))
		}
	})
}
