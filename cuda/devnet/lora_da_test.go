//go:build cuda

package devnet_test

import (
	"testing"

	"distill/cuda/devnet"
)

// TestColDAStep: a step whose adapter dA are summed by one pass over each
// input (DISTILL_CUDA_COL_DA) has the TF32 products' step's loss bit for
// bit (the forward is untouched) and its gradients within TF32's rounding
// of x and du — recomputing, keeping every layer's activations in f32 and
// compact, with and without LoRA dropout (each member's mask made in the
// kernel), dense and NF4, grouped members and single ones; the modes agree
// among themselves (gateSweep); the CPU's tolerances hold. It ran once a
// micro-batch for every targeted module (the down projection's dA by this
// pass too: DISTILL_CUDA_SWIGLU_DA held closed).
func TestColDAStep(t *testing.T) {
	d := device(t)
	t.Setenv("DISTILL_CUDA_SWIGLU_DA", "0")
	for _, s := range setups {
		mods := int64(len(s.targets))
		t.Run(s.name, func(t *testing.T) {
			want := func(bool, bool) int64 { return mods * layerForwards(s, true) }
			gateSweep(t, d, s, "DISTILL_CUDA_COL_DA", devnet.ColDAMods, want, tracksTF32(t, true, 0, 5e-3))
			t.Setenv("DISTILL_CUDA_COL_DA", "1")
			n0 := devnet.ColDAMods()
			stepParity(t, s)
			if devnet.ColDAMods() == n0 {
				t.Error("against the CPU: the one-pass dA never ran")
			}
		})
	}
}
