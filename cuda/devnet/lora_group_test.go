//go:build cuda

package devnet_test

import (
	"fmt"
	"slices"
	"testing"

	"distill/core/lora"
	"distill/core/model"
	"distill/core/tensor"
	"distill/cuda/devnet"
)

// The device's adapter layout (each layer's A's, then its B's) gives the
// host's parameters back unchanged, and holds q's, k's and v's A — and
// gate's and up's — back to back, which the grouped products need.
func TestAdapterLayout(t *testing.T) {
	for _, s := range setups {
		t.Run(s.name, func(t *testing.T) {
			dir := t.TempDir()
			ok(t, model.WriteRandom(dir, s.shape, tensor.BF16, 3))
			m, a := build(t, dir, s)
			dev, back, aOff := devnet.AdapterLayout(a, len(m.Layers))
			if !slices.Equal(back, a.Params) {
				t.Fatal("device layout and back: the parameters changed")
			}
			if slices.Equal(dev, a.Params) && len(a.Layers[0]) > 1 && a.Layers[0][0] != nil && a.Layers[0][2] != nil {
				t.Error("device layout is the host's: the A's are not grouped")
			}
			r := a.Config.R
			for l, ps := range a.Layers {
				for _, g := range [][]int{{0, 1, 2}, {4, 5}} { // q, k, v; gate, up
					for j := 1; j < len(g); j++ {
						p0, p := ps[g[0]], ps[g[j]]
						if p0 == nil || p == nil || ps[g[j-1]] == nil {
							continue
						}
						if want := aOff[l][g[0]] + j*r*p0.In; aOff[l][g[j]] != want {
							t.Errorf("layer %d %s's A at %d, want %d (after %s's)", l, lora.Modules[g[j]], aOff[l][g[j]], want, lora.Modules[g[0]])
						}
					}
				}
			}
		})
	}
}

// TestLoRAGroupMatchesApart: the adapter products of modules that share
// an input as one batch (DISTILL_CUDA_LORA_GROUP) give the loss and
// gradients of one module at a time, recomputing and keeping the
// activations, with and without LoRA dropout (the same masks), over two
// accumulated micro-batches. The same TF32 products, another launch: on a
// GPU cuBLAS may pick kernels that sum in another order (1e-4 relative
// bounds that for TF32 inputs); on the emulated device they are equal. And
// the batches ran where every member is targeted, and only there.
func TestLoRAGroupMatchesApart(t *testing.T) {
	d := device(t)
	for _, s := range setups {
		t.Run(s.name, func(t *testing.T) {
			dir, batches, denom := stepFixture(t, s)
			run := func(keep bool) (float64, []float32) {
				return stepGrads(t, d, dir, s, batches, denom, func(net *devnet.Net) { net.KeepActivations = keep })
			}
			groupable := len(s.targets) == len(lora.Modules)
			keeps := []bool{false, true}
			if !groupable { // only that nothing is batched: one way suffices
				keeps = keeps[:1]
			}
			for _, keep := range keeps {
				t.Setenv("DISTILL_CUDA_LORA_GROUP", "0")
				g0 := devnet.GroupedLoRA()
				l0, grad0 := run(keep)
				if g1 := devnet.GroupedLoRA(); g1 != g0 {
					t.Errorf("keep %v: %d groups batched with the gate closed", keep, g1-g0)
				}
				t.Setenv("DISTILL_CUDA_LORA_GROUP", "1")
				g0 = devnet.GroupedLoRA()
				l1, grad1 := run(keep)
				if ran := devnet.GroupedLoRA() > g0; ran != groupable {
					t.Errorf("keep %v: groups batched %v, every module targeted %v", keep, ran, groupable)
				}
				sameStep(t, fmt.Sprintf("keep %v: grouped against apart", keep), l1, l0, grad1, grad0, 1e-4)
			}
		})
	}
}
