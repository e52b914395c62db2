//go:build cuda

package devnet_test

import (
	"slices"
	"testing"

	"distill/cuda/devnet"
)

// TestSwiGLUUStep: a step whose SwiGLU forward sums the down adapter's u
// (DISTILL_CUDA_SWIGLU_U) tracks the step whose TF32 GEMM does — u in f32
// where TF32 rounded its inputs to 10 bits — recomputing, keeping every
// layer's activations in f32 and compact (where the forward writes no f32
// a), with g and up in f32 and in bf16 (DISTILL_CUDA_HALF_GU); the modes
// agree among themselves (gateSweep); the CPU's tolerances hold. It ran in
// every forward and recomputation of a layer whose down projection is
// targeted, under LoRA dropout too (the kernel masks a for the product);
// without an adapter on down, never — the step then the same bits.
func TestSwiGLUUStep(t *testing.T) {
	d := device(t)
	t.Setenv("DISTILL_CUDA_ROW_SUMS", "0") // else the gate closed sums the same u the same way (lora_u.go)
	for _, s := range setups {
		runs := slices.Contains(s.targets, "down_proj")
		t.Run(s.name, func(t *testing.T) {
			for _, gu := range []string{"0", "1"} {
				t.Setenv("DISTILL_CUDA_HALF_GU", gu)
				want := func(keep, _ bool) int64 {
					if !runs {
						return 0
					}
					return layerForwards(s, keep)
				}
				check := tracksTF32(t, runs, 1e-4, 5e-3)
				gateSweep(t, d, s, "DISTILL_CUDA_SWIGLU_U", devnet.SwiGLUULayers, want,
					func(what string, l0, l1 float64, g0, g1 []float32) { check("half g, up "+gu+", "+what, l0, l1, g0, g1) })
			}
			if runs {
				t.Setenv("DISTILL_CUDA_SWIGLU_U", "1")
				n0 := devnet.SwiGLUULayers()
				stepParity(t, s)
				if devnet.SwiGLUULayers() == n0 {
					t.Error("against the CPU: the fused u never ran")
				}
			}
		})
	}
}
