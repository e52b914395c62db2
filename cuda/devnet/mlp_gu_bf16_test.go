//go:build cuda

package devnet_test

import (
	"fmt"
	"math"
	"testing"

	"distill/cuda/devnet"
)

// TestHalfGUForward: a step whose gate and up GEMMs write bf16
// (DISTILL_CUDA_HALF_GU) tracks the f32 step — loss and gradients within
// bf16's rounding of g and up — recomputing, keeping every layer's
// activations in f32 and compact, with and without dropout; the modes
// agree among themselves as before (the recomputing step and the f32-kept
// one bit for bit: the same kernels); and the CPU's tolerances hold —
// every setup: gate and up with their adapters, and without (q, v only,
// dense and NF4), where their GEMMs write bf16 alone. It
// ran in every layer's forward, and recomputing in every recomputation.
func TestHalfGUForward(t *testing.T) {
	d := device(t)
	t.Setenv("DISTILL_CUDA_HALF_DY", "1")
	for _, s := range setups {
		t.Run(s.name, func(t *testing.T) {
			dir, batches, denom := stepFixture(t, s)
			var ref []float32
			var refLoss float64
			for _, c := range []struct {
				keep      bool
				compact   string
				recompute bool // each layer but the last run again before its backward
			}{{false, "0", true}, {true, "0", false}, {true, "1", false}} {
				t.Setenv("DISTILL_CUDA_KEEP_COMPACT", c.compact)
				run := func(gate string) (float64, []float32, int64) {
					return gatedStep(t, d, dir, s, batches, denom, "DISTILL_CUDA_HALF_GU", gate, c.keep, devnet.HalfGULayers)
				}
				l0, g0, n0 := run("0")
				l1, g1, n1 := run("1")
				what := fmt.Sprintf("keep %v, compact %s", c.keep, c.compact)
				want := int64(s.shape.Layers * len(batches))
				if c.recompute {
					want += int64((s.shape.Layers - 1) * len(batches))
				}
				if n0 != 0 || n1 != want {
					t.Errorf("%s: %d layers with the gate closed, %d open; want 0 and %d", what, n0, n1, want)
				}
				if math.Abs(l1-l0) > 2e-4*math.Abs(l0) || l1 == l0 {
					t.Errorf("%s: loss %v, %v with f32 g and up: want near, not equal", what, l1, l0)
				}
				if rel := relL2(g1, g0); rel > 1e-2 || rel != rel {
					t.Errorf("%s: gradients %.2e relative from the f32 path's", what, rel)
				} else {
					t.Logf("%s: loss %.6f / %.6f, gradients %.2e relative from the f32 path's", what, l1, l0, rel)
				}
				switch {
				case ref == nil:
					ref, refLoss = g1, l1
				case c.compact == "0": // kept in f32: the recomputing step's numbers
					if l1 != refLoss || relL2(g1, ref) > 1e-6 {
						t.Errorf("%s: loss %v, gradients %.2e relative from the recomputing step's (%v)", what, l1, relL2(g1, ref), refLoss)
					}
				default: // compact: the same forward
					if math.Abs(l1-refLoss) > 1e-6*math.Abs(refLoss) {
						t.Errorf("%s: loss %v, the recomputing step's %v", what, l1, refLoss)
					}
				}
			}
			t.Setenv("DISTILL_CUDA_HALF_GU", "1")
			n0 := devnet.HalfGULayers()
			stepParity(t, s)
			if devnet.HalfGULayers() == n0 {
				t.Error("against the CPU: g and up never in bf16")
			}
		})
	}
}
