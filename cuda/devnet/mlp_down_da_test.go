//go:build cuda

package devnet_test

import (
	"slices"
	"testing"

	"distill/cuda/devnet"
)

// TestSwiGLUDAStep: a step whose SwiGLU backward sums the down adapter's dA
// (DISTILL_CUDA_SWIGLU_DA) has the TF32 product's step's loss bit for bit
// (the forward is untouched) and its gradients within TF32's rounding of a
// and du — recomputing, keeping every layer's activations in f32 and
// compact (where the backward writes no f32 a), with and without LoRA
// dropout (the mask made in the kernel), and with the forward's fused u
// too (DISTILL_CUDA_SWIGLU_U, whose recomputation then writes no f32 a);
// the modes agree among themselves (gateSweep); the CPU's tolerances hold.
// It ran once a layer and micro-batch where down is targeted and gate's
// and up's dy are bf16; elsewhere never, the step then the same bits.
func TestSwiGLUDAStep(t *testing.T) {
	d := device(t)
	t.Setenv("DISTILL_CUDA_COL_DA", "0") // else the gate closed sums the same dA the same way (lora_da.go)
	for _, s := range setups {
		runs := slices.Contains(s.targets, "down_proj")
		t.Run(s.name, func(t *testing.T) {
			for _, fu := range []string{"0", "1"} {
				t.Setenv("DISTILL_CUDA_SWIGLU_U", fu)
				want := func(bool, bool) int64 {
					if !runs {
						return 0
					}
					return layerForwards(s, true)
				}
				check := tracksTF32(t, runs, 0, 5e-3)
				gateSweep(t, d, s, "DISTILL_CUDA_SWIGLU_DA", devnet.SwiGLUDALayers, want,
					func(what string, l0, l1 float64, g0, g1 []float32) { check("fused u "+fu+", "+what, l0, l1, g0, g1) })
			}
			if runs {
				t.Setenv("DISTILL_CUDA_SWIGLU_DA", "1")
				n0 := devnet.SwiGLUDALayers()
				stepParity(t, s)
				if devnet.SwiGLUDALayers() == n0 {
					t.Error("against the CPU: the fused dA never ran")
				}
			}
		})
	}
}
