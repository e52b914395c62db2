//go:build cuda

package devnet_test

import (
	"fmt"
	"testing"

	"distill/core/lora"
	"distill/core/model"
	"distill/cuda/devnet"
)

// TestFusedDQMatchesSplit: a training step whose attention backward adds
// dq up in the dk/dv kernel (DISTILL_CUDA_FLASH_FUSED_DQ) gives the loss
// and gradients of the step that runs dq's own kernel, recomputing and
// keeping the activations (in f32 and compact): the same bf16 products,
// dq's sums in another order — f32 rounding, ~1e-7 of dq carried into every gradient before
// it, where a row attends three key blocks or more (here, sequences of
// 21–70 tokens, two at most: the same bits on the emulator); on a GPU the
// atomics' order changes run to run. The fused path ran — once a layer
// and micro-batch — and never with the gate closed.
// cuda's TestAttentionFlashParity holds the kernel to the f64 reference.
func TestFusedDQMatchesSplit(t *testing.T) {
	d := device(t)
	for _, s := range setups[:2] {
		t.Run(s.name, func(t *testing.T) {
			gateSweep(t, d, s, "DISTILL_CUDA_FLASH_FUSED_DQ", devnet.FusedDQ, layerBackwards(s),
				func(what string, l0, l1 float64, g0, g1 []float32) {
					sameStep(t, what+": fused dq against dq's kernel", l1, l0, g1, g0, 1e-5)
				})
		})
	}
}

// layerBackwards is how many times stepFixture's two micro-batches run a
// layer's backward: each layer once, whatever the mode.
func layerBackwards(s setup) func(keep, compact bool) int64 {
	return func(bool, bool) int64 { return int64(2 * s.shape.Layers) }
}

// TestSplitKVStep: a training step whose attention backward splits each
// key block's query tiles between two dk/dv blocks and each row tile's key
// tiles between two dq blocks (DISTILL_CUDA_FLASH_SPLIT) gives the loss of
// the unsplit step bit for bit (the forward is the same) and its gradients
// within f32 rounding (dk, dv and dq each the sum of two halves' sums,
// each half's products summed from zero), recomputing and keeping the
// activations, with grouped heads (the shares of a group's heads and both
// halves summed in one pass) and without (llama's four KV heads: the
// halves alone). The split ran once a layer and micro-batch and never with
// the gate closed; the 70-token sequence gives key block 0 three query
// tiles, so the halves are one and two tiles. cuda's
// TestAttentionFlashParity holds the kernel to the f64 reference.
func TestSplitKVStep(t *testing.T) {
	d := device(t)
	for _, s := range setups[:3] {
		t.Run(s.name, func(t *testing.T) {
			gateSweep(t, d, s, "DISTILL_CUDA_FLASH_SPLIT", devnet.SplitKV, layerBackwards(s),
				func(what string, l0, l1 float64, g0, g1 []float32) {
					if l1 != l0 {
						t.Errorf("%s: loss %v split, %v not: the forward is the same", what, l1, l0)
					}
					// Rounding moved them by up to 1e-5 on the emulator; a
					// tile taken twice or left out, by 1e-1 and more.
					sameStep(t, what+": the backward split against one block a tile", l1, l0, g1, g0, 1e-4)
				})
		})
	}
}

// TestFlashBuildStep: a training step whose attention runs the dk/dv
// kernel built for three blocks an SM (DISTILL_CUDA_FLASH_OCC3: head size
// 128, here Qwen3's, on an SM with an H100's shared memory — emulated so)
// or the kernels with three buffers of tiles (DISTILL_CUDA_FLASH_STAGES3:
// dk/dv alone at 128 on a consumer card's SM; the forward, dq and dk/dv at
// 64 on a 64 KB one — TestFlashBuild) gives the default step's loss bit
// for bit and its gradients too (the same products in the same order) —
// within rounding with the fused dq, whose atomics land in another order
// run to run on a GPU — recomputing and keeping the activations, with
// dq's kernel and with the fused dq (its own launch of dk/dv). Each option
// ran once a layer and micro-batch and never with its gate closed. cuda's
// TestAttentionFlashParity and TestFlashBuild hold the kernels and the
// choice.
func TestFlashBuildStep(t *testing.T) {
	d := device(t)
	qwen3 := func(hd int) setup {
		return setup{fmt.Sprintf("qwen3-nf4-hd%d", hd), model.Shape{Arch: "Qwen3ForCausalLM", Hidden: 64, Intermediate: 160,
			Layers: 2, Heads: 2, KVHeads: 1, HeadDim: hd, Vocab: 300, Tied: true, RopeTheta: 1e6, RMSNormEps: 1e-6,
			MaxPositions: 256, BOS: 1, EOS: 2}, "nf4", lora.Modules, 0, 0}
	}
	for _, o := range []struct {
		env, smem string
		s         setup
		count     func() int64
	}{
		{"DISTILL_CUDA_FLASH_OCC3", "233472", qwen3(128), devnet.DKVOccupancy},
		{"DISTILL_CUDA_FLASH_STAGES3", "102400", qwen3(128), devnet.Stages3},
		{"DISTILL_CUDA_FLASH_STAGES3", "65536", qwen3(64), devnet.Stages3},
	} {
		for _, c := range []struct {
			fused string
			tol   float64
		}{{"0", 0}, {"1", 1e-5}} {
			t.Run(fmt.Sprintf("%s, %s, %s bytes an SM, fused dq %s", o.env, o.s.name, o.smem, c.fused), func(t *testing.T) {
				t.Setenv("DISTILL_CUDA_EMU_SMEM_SM", o.smem)
				t.Setenv("DISTILL_CUDA_FLASH_FUSED_DQ", c.fused)
				gateSweep(t, d, o.s, o.env, o.count, layerBackwards(o.s),
					func(what string, l0, l1 float64, g0, g1 []float32) {
						if l1 != l0 {
							t.Errorf("%s: loss %v with the option, %v without: the forward's results are the same", what, l1, l0)
						}
						sameStep(t, what+": built with the option against without", l1, l0, g1, g0, c.tol)
					})
			})
		}
	}
}
