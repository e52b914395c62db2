//go:build cuda

package devnet_test

import (
	"testing"

	"distill/cuda/devnet"
)

// TestRowsDBStep: a step whose projections' backward sums dB as it rounds
// dy to bf16 (DISTILL_CUDA_ROWS_DB) has the TF32 product's step's loss bit
// for bit (the forward is untouched) and its gradients within TF32's
// rounding of dy and u — recomputing, keeping every layer's activations in
// f32 and compact, with and without LoRA dropout; the modes agree among
// themselves (gateSweep); the CPU's tolerances hold. It ran once a
// micro-batch for every targeted NF4 projection but gate and up (whose dB
// are bf16 products already), q's, k's and v's in their stacked backward
// too; without NF4 projections (the dense setup), never — the step then the
// same bits. Gate's and up's dy stay bf16 (DISTILL_CUDA_HALF_DY held open).
func TestRowsDBStep(t *testing.T) {
	d := device(t)
	t.Setenv("DISTILL_CUDA_HALF_DY", "1")
	for _, s := range setups {
		var mods int64
		if s.quant == "nf4" {
			for _, m := range s.targets {
				if m != "gate_proj" && m != "up_proj" {
					mods++
				}
			}
		}
		t.Run(s.name, func(t *testing.T) {
			want := func(bool, bool) int64 { return mods * layerForwards(s, true) }
			gateSweep(t, d, s, "DISTILL_CUDA_ROWS_DB", devnet.RowsDBMods, want, tracksTF32(t, mods > 0, 0, 5e-3))
			if mods > 0 {
				t.Setenv("DISTILL_CUDA_ROWS_DB", "1")
				n0 := devnet.RowsDBMods()
				stepParity(t, s)
				if devnet.RowsDBMods() == n0 {
					t.Error("against the CPU: the fused dB never ran")
				}
			}
		})
	}
}
