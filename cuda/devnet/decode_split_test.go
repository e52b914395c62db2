//go:build cuda

package devnet_test

import (
	"testing"

	"distill/core/model"
	"distill/core/tensor"
	"distill/cuda/devnet"
)

// TestDecodeSplit: decoded tokens with their attention split into chunks
// of keys (DISTILL_CUDA_DECODE_SPLIT=1: cuda.AttnRowsSplit, 64 keys a
// chunk, three chunks and more here) against the same decoder without —
// by the general pass, the fused kernels and their graphs, a batched step
// over two caches, and with the first layer on the host. The split rows
// attend in f32 over the cache as held where the flash kernels round q and
// P to bf16, so a token's hidden state moves by that rounding: within
// 5e-3 relative (the fused against the general pass's margin in
// TestDecoderParity); the prompts, attended by the flash kernels either
// way, bit for bit.
func TestDecodeSplit(t *testing.T) {
	device(t)
	m, s := firstSetup(t, 47)
	for _, mode := range []string{"general", "fused", "fused_graphs", "offload_fused_graphs"} {
		t.Run(mode, func(t *testing.T) {
			t.Setenv("DISTILL_CUDA_FUSED", map[bool]string{false: "0", true: "1"}[mode != "general"])
			t.Setenv("DISTILL_CUDA_GRAPHS", map[bool]string{false: "0", true: "1"}[mode == "fused_graphs" || mode == "offload_fused_graphs"])
			m.CPULayers = 0
			if mode == "offload_fused_graphs" {
				m.CPULayers = 1
			}
			defer func() { m.CPULayers = 0 }()
			run := func(split bool) (passes [][]float32, ran int64) {
				t.Setenv("DISTILL_CUDA_DECODE_SPLIT", map[bool]string{false: "0", true: "1"}[split])
				if attached, err := m.Accelerate("cuda"); !attached {
					t.Fatal(err)
				}
				defer m.Detach()
				before := devnet.SplitPasses()
				be := tensor.CPU{}
				keep := func(h []float32, err error) {
					t.Helper()
					ok(t, err)
					passes = append(passes, append([]float32(nil), h...))
				}
				tok := tokens(rng(12), s.shape.Vocab)
				c, c2 := m.NewCache(256), m.NewCache(256)
				keep(m.Forward(be, tok(150), c, nil))
				for range 4 {
					keep(m.Forward(be, tok(1), c, nil))
				}
				keep(m.Forward(be, tok(70), c2, nil))
				keep(m.ForwardStep(be, tok(2), []*model.Cache{c, c2}, m.NewCache(2)))
				keep(m.ForwardStep(be, tok(2), []*model.Cache{c, c2}, m.NewCache(2)))
				keep(m.Forward(be, tok(1), c2, nil))
				return passes, devnet.SplitPasses() - before
			}
			want, ranOff := run(false)
			got, ranOn := run(true)
			if ranOff != 0 || ranOn == 0 {
				t.Fatalf("%d attentions split with the gate shut, %d with it open", ranOff, ranOn)
			}
			t.Logf("%d attentions split", ranOn)
			for i := range want {
				prompt := i == 0 || i == 5
				switch rel := relL2(got[i], want[i]); {
				case prompt && !sameBits(got[i], want[i]):
					t.Errorf("pass %d (a prompt): %.2e relative to the unsplit run's, want bit for bit", i, rel)
				case rel > 5e-3 || rel != rel:
					t.Errorf("pass %d: %.2e relative to the unsplit run's", i, rel)
				default:
					t.Logf("pass %d: %.2e", i, rel)
				}
			}
		})
	}
}

// TestDecodeSplitLeavesWideHeads: heads the row kernels do not take (256
// wide: the GEMM attention's) decode with the gate open as with it shut —
// nothing split, the same hidden states bit for bit.
func TestDecodeSplitLeavesWideHeads(t *testing.T) {
	device(t)
	s := setup{"llama-hd256", model.Shape{Arch: "LlamaForCausalLM", Hidden: 512, Intermediate: 256, Layers: 1, Heads: 2, KVHeads: 2,
		Vocab: 300, RopeTheta: 1e4, RMSNormEps: 1e-5, MaxPositions: 64, BOS: 1, EOS: 2}, "none", []string{"q_proj"}, 0, 0}
	dir := t.TempDir()
	ok(t, model.WriteRandom(dir, s.shape, tensor.BF16, 48))
	m, _ := build(t, dir, s)
	run := func(split bool) (passes [][]float32) {
		t.Setenv("DISTILL_CUDA_DECODE_SPLIT", map[bool]string{false: "0", true: "1"}[split])
		if attached, err := m.Accelerate("cuda"); !attached {
			t.Fatal(err)
		}
		defer m.Detach()
		before := devnet.SplitPasses()
		tok := tokens(rng(13), s.shape.Vocab)
		c := m.NewCache(32)
		for _, n := range []int{5, 1, 1, 1} {
			h, err := m.Forward(tensor.CPU{}, tok(n), c, nil)
			ok(t, err)
			passes = append(passes, append([]float32(nil), h...))
		}
		if n := devnet.SplitPasses() - before; n != 0 {
			t.Errorf("%d attentions split over heads of 256", n)
		}
		return passes
	}
	want, got := run(false), run(true)
	for i := range want {
		if !sameBits(got[i], want[i]) {
			t.Errorf("pass %d: %.2e relative to the gate shut's", i, relL2(got[i], want[i]))
		}
	}
}
