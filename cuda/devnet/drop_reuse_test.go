//go:build cuda

package devnet_test

import (
	"fmt"
	"slices"
	"testing"

	"distill/cuda/devnet"
)

// TestDropReuseSameStep: under LoRA dropout the down projection's dA
// reading the masked input its layer's recomputation left in the dropout
// buffer (DISTILL_CUDA_DROPOUT_REUSE) gives the step's loss and gradients
// bit for bit as making the mask again — the same values, one kernel less.
// Recomputing, every layer reuses it once a micro-batch (down is the last
// product of the recomputation and the first of the backward); keeping
// every layer's activations, only the last layer's forward is that close to
// its backward, and kept compact its dA waits for the SwiGLU backward to
// write its input again, so none does.
func TestDropReuseSameStep(t *testing.T) {
	d := device(t)
	s := setups[3]
	if s.dropout == 0 {
		t.Fatalf("setup %s has no dropout", s.name)
	}
	dir, batches, denom := stepFixture(t, s)
	for _, c := range []struct {
		keep, compact string
		want          int
	}{{"0", "1", s.shape.Layers * len(batches)}, {"1", "0", len(batches)}, {"1", "1", 0}} {
		keep := c.keep == "1"
		t.Setenv("DISTILL_CUDA_KEEP_COMPACT", c.compact)
		run := func(gate string) (float64, []float32, int64) {
			return gatedStep(t, d, dir, s, batches, denom, "DISTILL_CUDA_DROPOUT_REUSE", gate, keep, devnet.ReusedDrop)
		}
		l0, g0, n0 := run("0")
		l1, g1, n1 := run("1")
		what := fmt.Sprintf("keep %v, compact %s", keep, c.compact)
		if n0 != 0 || n1 != int64(c.want) {
			t.Errorf("%s: %d reuses with the gate closed, %d open; want 0 and %d", what, n0, n1, c.want)
		}
		if l1 != l0 || !slices.Equal(g1, g0) {
			t.Errorf("%s: loss %v reusing, %v not; gradients %.2e relative apart, want bit for bit", what, l1, l0, relL2(g1, g0))
		}
	}
}
