//go:build cuda

package devnet_test

import (
	"fmt"
	"testing"

	"distill/cuda"
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
			gateTwice(t, d, s, "DISTILL_CUDA_FLASH_FUSED_DQ", devnet.FusedDQ, false, 1e-5, "fused dq against dq's kernel")
		})
	}
}

// gateTwice runs s's step (stepFixture's micro-batches) with env's gate
// closed then open, recomputing and keeping the activations, and checks
// that the path ran — count rose once a layer and micro-batch open, not at
// all closed — and that the loss (bit for bit with exactLoss, the forward
// untouched) and the gradients (within gradTol) are the closed gate's.
func gateTwice(t *testing.T, d *cuda.Device, s setup, env string, count func() int64, exactLoss bool, gradTol float64, what string) {
	t.Helper()
	dir, batches, denom := stepFixture(t, s)
	for _, keep := range []bool{false, true} {
		l0, g0, n0 := gatedStep(t, d, dir, s, batches, denom, env, "0", keep, count)
		l1, g1, n1 := gatedStep(t, d, dir, s, batches, denom, env, "1", keep, count)
		if n0 != 0 {
			t.Errorf("keep %v: %d passes took the path with %s closed", keep, n0, env)
		}
		if want := int64(s.shape.Layers * len(batches)); n1 != want {
			t.Errorf("keep %v: %d passes took the path, want %d (a layer and micro-batch)", keep, n1, want)
		}
		if exactLoss && l1 != l0 {
			t.Errorf("keep %v: loss %v with %s open, %v closed: the forward is the same", keep, l1, env, l0)
		}
		sameStep(t, fmt.Sprintf("keep %v: %s", keep, what), l1, l0, g1, g0, gradTol)
	}
}

// TestSplitKVStep: a training step whose attention backward splits each
// key block's query tiles between two dk/dv blocks and each row tile's key
// tiles between two dq blocks (DISTILL_CUDA_FLASH_SPLIT) gives the loss of
// the unsplit step bit for bit (the forward is the same) and its gradients
// within f32 rounding (dk, dv and dq each the sum of two halves' sums,
// each half's products summed from zero), recomputing and keeping the
// activations, with grouped
// heads (the shares of a group's heads and both halves summed in one
// pass) and without (llama's four KV heads: the halves alone). The split
// ran once a layer and micro-batch and never with the gate closed; the
// 70-token sequence gives key block 0 three query tiles, so the halves are
// one and two tiles. cuda's TestAttentionFlashParity holds the kernel to
// the f64 reference.
func TestSplitKVStep(t *testing.T) {
	d := device(t)
	for _, s := range setups[:3] {
		t.Run(s.name, func(t *testing.T) {
			// Rounding moved them by up to 1e-5 on the emulator; a tile
			// taken twice or left out, by 1e-1 and more.
			gateTwice(t, d, s, "DISTILL_CUDA_FLASH_SPLIT", devnet.SplitKV, true, 1e-4, "the backward split against one block a tile")
		})
	}
}
