//go:build cuda

package devnet_test

import (
	"fmt"
	"testing"

	"distill/cuda/devnet"
)

// TestFusedDQMatchesSplit: a training step whose attention backward adds
// dq up in the dk/dv kernel (DISTILL_CUDA_FLASH_FUSED_DQ) gives the loss
// and gradients of the step that runs dq's own kernel, recomputing and
// keeping the activations: the same bf16 products, dq's sums in another
// order — f32 rounding, ~1e-7 of dq carried into every gradient before
// it, where a row attends three key blocks or more (here, sequences of
// 21–70 tokens, two at most: the same bits on the emulator); on a GPU the
// atomics' order changes run to run. The fused path ran — once a layer
// and micro-batch — and never with the gate closed.
// cuda's TestAttentionFlashParity holds the kernel to the f64 reference.
func TestFusedDQMatchesSplit(t *testing.T) {
	d := device(t)
	for _, s := range setups[:2] {
		t.Run(s.name, func(t *testing.T) {
			dir, batches, denom := stepFixture(t, s)
			for _, keep := range []bool{false, true} {
				run := func(gate string) (float64, []float32, int64) {
					return gatedStep(t, d, dir, s, batches, denom, "DISTILL_CUDA_FLASH_FUSED_DQ", gate, keep, devnet.FusedDQ)
				}
				l0, g0, n0 := run("0")
				l1, g1, n1 := run("1")
				if n0 != 0 {
					t.Errorf("keep %v: %d fused passes with the gate closed", keep, n0)
				}
				if want := int64(s.shape.Layers * len(batches)); n1 != want {
					t.Errorf("keep %v: %d fused passes, want %d (a layer and micro-batch)", keep, n1, want)
				}
				sameStep(t, fmt.Sprintf("keep %v: fused dq against dq's kernel", keep), l1, l0, g1, g0, 1e-5)
			}
		})
	}
}
