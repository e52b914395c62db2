//go:build cuda

package devnet_test

import (
	"math"
	"testing"

	"distill/cuda/devnet"
)

// TestHalfGUForward: a step whose gate and up GEMMs write bf16
// (DISTILL_CUDA_HALF_GU) tracks the f32 step — loss and gradients within
// bf16's rounding of g and up — recomputing, keeping every layer's
// activations in f32 and compact, with and without dropout; the modes
// agree among themselves as before (gateSweep); and the CPU's tolerances
// hold — every setup: gate and up with their adapters, and without (q, v
// only, dense and NF4), where their GEMMs write bf16 alone. It ran in every
// layer's forward, and recomputing in every recomputation.
func TestHalfGUForward(t *testing.T) {
	d := device(t)
	t.Setenv("DISTILL_CUDA_HALF_DY", "1")
	for _, s := range setups {
		t.Run(s.name, func(t *testing.T) {
			gateSweep(t, d, s, "DISTILL_CUDA_HALF_GU", devnet.HalfGULayers, func(keep, _ bool) int64 { return layerForwards(s, keep) },
				func(what string, l0, l1 float64, g0, g1 []float32) {
					if math.Abs(l1-l0) > 2e-4*math.Abs(l0) || l1 == l0 {
						t.Errorf("%s: loss %v, %v with f32 g and up: want near, not equal", what, l1, l0)
					}
					if rel := relL2(g1, g0); rel > 1e-2 || rel != rel {
						t.Errorf("%s: gradients %.2e relative from the f32 path's", what, rel)
					} else {
						t.Logf("%s: loss %.6f / %.6f, gradients %.2e relative from the f32 path's", what, l1, l0, rel)
					}
				})
			t.Setenv("DISTILL_CUDA_HALF_GU", "1")
			n0 := devnet.HalfGULayers()
			stepParity(t, s)
			if devnet.HalfGULayers() == n0 {
				t.Error("against the CPU: g and up never in bf16")
			}
		})
	}
}
