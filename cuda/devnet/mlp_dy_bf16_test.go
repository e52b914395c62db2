//go:build cuda

package devnet_test

import (
	"slices"
	"testing"

	"distill/cuda/devnet"
)

// TestHalfDyTracksF32: a step whose gate and up backward read dy in bf16
// (DISTILL_CUDA_HALF_DY) has the f32 step's loss bit for bit (the forward
// is untouched) and its gradients within bf16's rounding of dy in the
// adapter's du and dB — recomputing, keeping the activations in f32 and
// kept compact, with and without dropout — and the CPU's within the
// tolerances TestFusedLoRAStepParity holds the f32 step to. Where gate and
// up carry no adapter (the q, v setups, dense and NF4) their GEMMs read the
// same bf16 values a conversion made before: the f32 step's gradients to
// 1e-6. It ran once a layer and micro-batch, never with the gate closed.
// g and up stay f32 (DISTILL_CUDA_HALF_GU, which rides on this, closed).
func TestHalfDyTracksF32(t *testing.T) {
	d := device(t)
	t.Setenv("DISTILL_CUDA_HALF_GU", "0")
	for _, s := range setups {
		tol := 4e-3
		if !slices.Contains(s.targets, "gate_proj") {
			tol = 1e-6
		}
		t.Run(s.name, func(t *testing.T) {
			gateSweep(t, d, s, "DISTILL_CUDA_HALF_DY", devnet.HalfDyLayers, func(bool, bool) int64 { return layerForwards(s, true) },
				func(what string, l0, l1 float64, g0, g1 []float32) {
					if l1 != l0 {
						t.Errorf("%s: loss %v, %v from f32 dy: the forward changed", what, l1, l0)
					}
					if rel := relL2(g1, g0); rel > tol || rel != rel {
						t.Errorf("%s: gradients %.2e relative from the f32 dy's", what, rel)
					} else {
						t.Logf("%s: gradients %.2e relative from the f32 dy's", what, rel)
					}
				})
			t.Setenv("DISTILL_CUDA_HALF_DY", "1")
			n0 := devnet.HalfDyLayers()
			stepParity(t, s)
			if devnet.HalfDyLayers() == n0 {
				t.Error("against the CPU: the bf16 dy never ran")
			}
		})
	}
}
