//go:build cuda

package devnet_test

import (
	"fmt"
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
		bare := !slices.Contains(s.targets, "gate_proj")
		t.Run(s.name, func(t *testing.T) {
			dir, batches, denom := stepFixture(t, s)
			for _, c := range []struct {
				keep    bool
				compact string
			}{{false, "1"}, {true, "0"}, {true, "1"}} {
				t.Setenv("DISTILL_CUDA_KEEP_COMPACT", c.compact)
				run := func(gate string) (float64, []float32, int64) {
					return gatedStep(t, d, dir, s, batches, denom, "DISTILL_CUDA_HALF_DY", gate, c.keep, devnet.HalfDyLayers)
				}
				l0, g0, n0 := run("0")
				l1, g1, n1 := run("1")
				what := fmt.Sprintf("keep %v, compact %s", c.keep, c.compact)
				if want := int64(s.shape.Layers * len(batches)); n0 != 0 || n1 != want {
					t.Errorf("%s: %d layers with the gate closed, %d open; want 0 and %d", what, n0, n1, want)
				}
				if l1 != l0 {
					t.Errorf("%s: loss %v, %v from f32 dy: the forward changed", what, l1, l0)
				}
				tol := 4e-3
				if bare {
					tol = 1e-6
				}
				if rel := relL2(g1, g0); rel > tol || rel != rel {
					t.Errorf("%s: gradients %.2e relative from the f32 dy's", what, rel)
				} else {
					t.Logf("%s: gradients %.2e relative from the f32 dy's", what, rel)
				}
			}
			t.Setenv("DISTILL_CUDA_HALF_DY", "1")
			n0 := devnet.HalfDyLayers()
			stepParity(t, s)
			if devnet.HalfDyLayers() == n0 {
				t.Error("against the CPU: the bf16 dy never ran")
			}
		})
	}
}
