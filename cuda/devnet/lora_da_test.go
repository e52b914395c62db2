//go:build cuda

package devnet_test

import (
	"slices"
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
			gateSweep(t, d, s, "DISTILL_CUDA_COL_DA", devnet.ColDAMods, want,
				func(what string, l0, l1 float64, g0, g1 []float32) {
					switch {
					case l1 != l0:
						t.Errorf("%s: loss %v, %v with the TF32 products: the forward changed", what, l1, l0)
					case relL2(g1, g0) > 5e-3 || relL2(g1, g0) != relL2(g1, g0):
						t.Errorf("%s: gradients %.2e relative from the TF32 products'", what, relL2(g1, g0))
					case slices.Equal(g1, g0):
						t.Errorf("%s: gradients bit for bit the TF32 products': did the pass run?", what)
					default:
						t.Logf("%s: gradients %.2e relative from the TF32 products'", what, relL2(g1, g0))
					}
				})
			t.Setenv("DISTILL_CUDA_COL_DA", "1")
			n0 := devnet.ColDAMods()
			stepParity(t, s)
			if devnet.ColDAMods() == n0 {
				t.Error("against the CPU: the one-pass dA never ran")
			}
		})
	}
}
