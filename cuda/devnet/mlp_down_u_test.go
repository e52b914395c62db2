//go:build cuda

package devnet_test

import (
	"fmt"
	"math"
	"slices"
	"testing"

	"distill/cuda/devnet"
)

// TestSwiGLUUStep: a step whose SwiGLU forward sums the down adapter's u
// (DISTILL_CUDA_SWIGLU_U) tracks the step whose TF32 GEMM does — u in f32
// where TF32 rounded its inputs to 10 bits — recomputing, keeping every
// layer's activations in f32 and compact (where the forward writes no f32
// a), with g and up in f32 and in bf16 (DISTILL_CUDA_HALF_GU); the modes
// agree among themselves (the recomputing step and the f32-kept one bit for
// bit); the CPU's tolerances hold. It ran in every forward and
// recomputation of a layer whose down projection is targeted; under LoRA
// dropout (its mask on a) and without an adapter on down, never — the
// step then the same bits.
func TestSwiGLUUStep(t *testing.T) {
	d := device(t)
	for _, s := range setups {
		runs := slices.Contains(s.targets, "down_proj") && s.dropout == 0
		t.Run(s.name, func(t *testing.T) {
			dir, batches, denom := stepFixture(t, s)
			for _, gu := range []string{"0", "1"} {
				t.Setenv("DISTILL_CUDA_HALF_GU", gu)
				var refLoss float64
				var ref []float32
				for _, c := range []struct {
					keep      bool
					compact   string
					recompute bool
				}{{false, "0", true}, {true, "0", false}, {true, "1", false}} {
					t.Setenv("DISTILL_CUDA_KEEP_COMPACT", c.compact)
					run := func(gate string) (float64, []float32, int64) {
						return gatedStep(t, d, dir, s, batches, denom, "DISTILL_CUDA_SWIGLU_U", gate, c.keep, devnet.SwiGLUULayers)
					}
					l0, g0, n0 := run("0")
					l1, g1, n1 := run("1")
					what := fmt.Sprintf("half g, up %s, keep %v, compact %s", gu, c.keep, c.compact)
					want := int64(0)
					if runs {
						want = int64(s.shape.Layers * len(batches))
						if c.recompute {
							want += int64((s.shape.Layers - 1) * len(batches))
						}
					}
					if n0 != 0 || n1 != want {
						t.Errorf("%s: %d layers with the gate closed, %d open; want 0 and %d", what, n0, n1, want)
					}
					if !runs {
						if l1 != l0 || !slices.Equal(g1, g0) {
							t.Errorf("%s: never ran, yet loss %v, %v and gradients %.2e apart", what, l1, l0, relL2(g1, g0))
						}
						continue
					}
					if math.Abs(l1-l0) > 1e-4*math.Abs(l0) {
						t.Errorf("%s: loss %v, %v with the TF32 product", what, l1, l0)
					}
					if rel := relL2(g1, g0); rel > 5e-3 || rel != rel {
						t.Errorf("%s: gradients %.2e relative from the TF32 product's", what, rel)
					} else {
						t.Logf("%s: loss %.6f / %.6f, gradients %.2e relative from the TF32 product's", what, l1, l0, rel)
					}
					switch {
					case ref == nil:
						ref, refLoss = g1, l1
					case c.compact == "0":
						if l1 != refLoss || relL2(g1, ref) > 1e-6 {
							t.Errorf("%s: loss %v, gradients %.2e relative from the recomputing step's (%v)", what, l1, relL2(g1, ref), refLoss)
						}
					default:
						if math.Abs(l1-refLoss) > 1e-6*math.Abs(refLoss) {
							t.Errorf("%s: loss %v, the recomputing step's %v", what, l1, refLoss)
						}
					}
				}
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
