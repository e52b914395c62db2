package model

import (
	"os"

	"distill/core/tensor"
)

// The device-resident decoder's memory (cuda/devnet's Decoder), for
// --cpu-offload auto and `distill plan serve`: what it holds over the
// layers from some first one on, and what it must find room for besides.

// Reserved beside the weights: one sequence's KV cache of this many
// positions (or the model's context, if shorter), one pass of a prompt of
// this many tokens, and one adapter (DecoderPlanRank).
const (
	DecoderPlanContext = 4096
	DecoderPlanPrompt  = 512
)

// DecoderPlan is the device memory of a decoder holding layers From.. in
// bytes: weights, the LM head, a KV cache, a prompt's pass, an adapter.
type DecoderPlan struct {
	From    int   `json:"cpu_layers"` // the layers before it run on the host (--cpu-offload)
	Weights int64 `json:"weights"`    // its layers' projections (NF4 as stored, dense as bf16), norms and biases (f32)
	Head    int64 `json:"head"`       // the LM head in bf16 and the final norm; the embedding too when it holds every layer
	Cache   int64 `json:"kv_cache"`   // keys and values (bf16, or f32: DeviceKVBF16) of DecoderPlanContext positions over its layers
	Pass    int64 `json:"pass"`       // a DecoderPlanPrompt-token prompt's activations, a dequantised projection, 64 rows of logits
	Adapter int64 `json:"adapter"`    // one LoRA adapter's upload: rank DecoderPlanRank on every projection, f32 (every layer's: a view uploads them all)
}

// DecoderPlanRank is the adapter rank a DecoderPlan reserves for.
const DecoderPlanRank = 16

// Total is every part.
func (p DecoderPlan) Total() int64 { return p.Weights + p.Head + p.Cache + p.Pass + p.Adapter }

// DecoderPlan is the device memory a decoder holding layers from.. of m
// takes, its projections as m holds them now (quantise first).
func (m *Model) DecoderPlan(from int) DecoderPlan {
	c := &m.Config
	D, F, V := int64(c.HiddenSize), int64(c.IntermediateSize), int64(c.VocabSize)
	qO, kvO := int64(c.NumHeads*c.HeadDim), int64(c.NumKVHeads*c.HeadDim)
	p := DecoderPlan{From: from}
	var tile int64 // the largest NF4 projection, dequantised into bf16 before its GEMM
	for l := from; l < len(m.Layers); l++ {
		L := &m.Layers[l]
		for _, w := range L.Projections() {
			n := int64(w.Rows()) * int64(w.Cols())
			if q, ok := w.(tensor.NF4Matrix); ok {
				if _, ok := q.NF4(); ok {
					p.Weights += w.Bytes()
					tile = max(tile, n)
					continue
				}
			}
			p.Weights += 2 * n
		}
		for _, v := range [][]float32{L.AttnNorm, L.MLPNorm, L.QNorm, L.KNorm, L.QBias, L.KBias, L.VBias, L.OBias} {
			p.Weights += 4 * int64(len(v))
		}
	}
	for l := range m.Layers {
		for _, w := range m.Layers[l].Projections() {
			p.Adapter += 4 * DecoderPlanRank * int64(w.Rows()+w.Cols())
		}
	}
	p.Head = 4 * D // the final norm
	switch tied := m.LMHead == m.Embed && m.Embed.DType == tensor.BF16; {
	case from == 0 && tied: // the head is the embedding
		p.Head += m.Embed.Bytes()
	case from == 0:
		p.Head += m.Embed.Bytes() + 2*V*D
	default: // the host embeds
		p.Head += 2 * V * D
	}
	kvBytes := int64(4)
	if DeviceKVBF16(c.HeadDim) {
		kvBytes = 2
	}
	p.Cache = 2 * kvBytes * kvO * int64(m.DecoderPlanContext()) * int64(len(m.Layers)-from)
	P := int64(DecoderPlanPrompt)
	p.Pass = 4*P*(6*D+3*F+4*qO+2*kvO) + 2*tile + 64*V*(4+2)
	return p
}

// FlashAttention says whether cuda/devnet attends with the flash kernels
// (scores in registers, scratch linear in n) for head size hd — the sizes
// cuda.FlashHeadDim takes (a cuda test checks they agree) — rather than
// cuBLAS's score buffers.
func FlashAttention(hd int) bool {
	switch hd {
	case 16, 32, 64, 80, 96, 128:
		return true
	}
	return false
}

// DeviceKVBF16 says whether the device-resident decoder holds its caches'
// mirrors in bf16 for head size hd: wherever it attends with the flash
// kernels, which round keys and values to bf16 before their products
// anyway — so the same results in half the memory and half the reads.
// DISTILL_CUDA_KV_BF16=0 keeps them in f32 (comparisons), and so does
// DISTILL_CUDA_FLASH_ASYNC=0 (the synchronous flash kernel reads f32 alone;
// devnet's gate, verified on, so only "0" shuts it: TestMirrorKindIsPlanned).
func DeviceKVBF16(hd int) bool {
	return FlashAttention(hd) && os.Getenv("DISTILL_CUDA_KV_BF16") != "0" && os.Getenv("DISTILL_CUDA_FLASH_ASYNC") != "0"
}

// DecoderPlanContext is the positions of the KV cache a DecoderPlan
// reserves: DecoderPlanContext, or the model's context if shorter.
func (m *Model) DecoderPlanContext() int {
	if n := m.Config.MaxPositionEmbeddings; n > 0 {
		return min(DecoderPlanContext, n)
	}
	return DecoderPlanContext
}

// OffloadRoom is what --cpu-offload auto lets the decoder's plan take of
// free bytes of device memory: nine tenths, a tenth kept for what the plan
// does not count — the pool's rounding of each buffer up to its size class
// (≤ 1/8 of it), cuBLAS's workspaces, a second sequence's cache.
func OffloadRoom(free int64) int64 { return free - free/10 }

// OffloadFor is --cpu-offload auto's choice within room bytes of device
// memory: the fewest first layers to run on the host for the decoder's
// plan over the rest to fit; ok is false when even the last layer's does
// not.
func (m *Model) OffloadFor(room int64) (from int, ok bool) {
	for from := range len(m.Layers) {
		if m.DecoderPlan(from).Total() <= room {
			return from, true
		}
	}
	return len(m.Layers), false
}
