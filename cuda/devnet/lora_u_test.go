//go:build cuda

package devnet_test

import (
	"testing"

	"distill/cuda/devnet"
)

// TestRowSumsStep: a step whose adapter u and du are summed by one pass
// over each input (DISTILL_CUDA_ROW_SUMS) tracks the TF32 products' step —
// its losses within 1e-4 relative, its gradients within 1e-2 (u feeds the
// forward, so TF32's rounding of x and A moves every later layer: measured
// 2.5–6.9e-3 over the setups, each as far from the CPU's as the TF32
// step's) — recomputing, keeping every layer's activations
// in f32 and compact, with and without LoRA dropout (each member's mask
// made in the kernel), dense and NF4, grouped members and single ones; the
// modes agree among themselves (gateSweep); the CPU's tolerances hold. It
// ran for every targeted module's u in every forward and recomputation, and
// for its du once a micro-batch — but gate's and up's, bf16 products of
// their bf16 dy (DISTILL_CUDA_HALF_DY held open; the SwiGLU's fused u held
// closed).
func TestRowSumsStep(t *testing.T) {
	d := device(t)
	t.Setenv("DISTILL_CUDA_HALF_DY", "1")
	t.Setenv("DISTILL_CUDA_SWIGLU_U", "0")
	for _, s := range setups {
		mods, gu := int64(len(s.targets)), int64(0)
		if s.quant == "nf4" {
			for _, m := range s.targets {
				if m == "gate_proj" || m == "up_proj" {
					gu++
				}
			}
		}
		t.Run(s.name, func(t *testing.T) {
			want := func(keep, _ bool) int64 { return mods*layerForwards(s, keep) + (mods-gu)*layerForwards(s, true) }
			gateSweep(t, d, s, "DISTILL_CUDA_ROW_SUMS", devnet.RowSumsMods, want, tracksTF32(t, true, 1e-4, 1e-2))
			t.Setenv("DISTILL_CUDA_ROW_SUMS", "1")
			n0 := devnet.RowSumsMods()
			stepParity(t, s)
			if devnet.RowSumsMods() == n0 {
				t.Error("against the CPU: the one-pass u never ran")
			}
		})
	}
}
