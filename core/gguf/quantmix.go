package gguf

import (
	"fmt"
	"strings"
)

// mixModel is what llama-quantize's choice of a tensor's type depends on
// besides the tensor itself.
type mixModel struct {
	layers int  // block_count
	tied   bool // no output.weight: token_embd is the output projection too
	// is70B is llama.cpp's LLM_TYPE_70B, which alone of its model sizes
	// changes a K-quant mix: an 80-layer "llama" with grouped-query
	// attention (Llama 2/3 70B), or an 80-layer "qwen2" (Qwen2 72B).
	is70B bool
}

func newMixModel(arch string, layers, heads, kvHeads int, tied bool) mixModel {
	return mixModel{
		layers: layers,
		tied:   tied,
		is70B:  layers == 80 && ((arch == "llama" && heads != kvHeads) || arch == "qwen2"),
	}
}

// tensorType is the type a matrix named name (llama.cpp's name), with rows
// of cols weights, is stored at in a file of type f; vectors are always f32
// (tensorInfo).
//
// f32, f16, bf16 and q8_0 store every matrix alike, as llama.cpp's
// converter (convert_hf_to_gguf.py --outtype) does, and like it fall back
// to f16 for rows q8_0 cannot block.
//
// q4_k_m and q6_k are llama-quantize's file types, and each tensor gets the
// type llama-quantize gives it when it quantises an f32/f16/bf16 GGUF
// without an importance matrix or overrides: llama_tensor_get_type in
// llama.cpp's src/llama-quant.cpp (the release tools/llamacpp pins), for
// architectures without experts and other than Falcon. The rules it applies
// to these architectures' tensors, each marked in the code below:
//
//   - the default is the file type's: Q4_K for q4_k_m, Q6_K for q6_k;
//   - output.weight, and token_embd.weight when it doubles as the output
//     (tied embeddings), are Q6_K, or Q8_0 when their rows do not fill
//     super-blocks of 256;
//   - q4_k_m only: attn_v.weight and ffn_down.weight of the layers
//     use_more_bits picks are Q6_K;
//   - an attn_v.weight still Q4_K in a 70B model is Q5_K;
//   - then tensor_type_fallback: a row not a multiple of 256 takes Q5_0 in
//     place of Q4_K, Q5_1 in place of Q5_K and Q8_0 in place of Q6_K, and
//     f16 when it does not fill blocks of 32 either.
//
// llama-quantize counts attn_v and ffn_down tensors as it meets them,
// ordered by layer; with one of each per layer the count is the layer.
// The quantised cases of TestLlamaCppReadsExport (quantized_test.go) check
// every tensor's type against llama-quantize itself; TestTensorTypeMix the
// rules on shapes the fixtures do not have.
func (f FileType) tensorType(name string, cols int, mm mixModel) (Type, error) {
	switch f {
	case AllF32:
		return F32, nil
	case MostlyF16:
		return F16, nil
	case MostlyBF16:
		return BF16, nil
	case MostlyQ8_0:
		if cols%q8Block != 0 {
			return F16, nil
		}
		return Q8_0, nil
	case MostlyQ4_K_M, MostlyQ6_K:
	default:
		return 0, fmt.Errorf("file type %s has no tensor types here", f)
	}
	t := Q4_K // llama_ftype_get_default_type
	if f == MostlyQ6_K {
		t = Q6_K
	}
	layer := blockIndex(name)
	switch {
	case name == "output.weight" || (mm.tied && name == "token_embd.weight"):
		// "quantize the token embeddings with the quantization of the
		// output tensor": Q8_0 where rows do not fill the default's blocks.
		if cols%qkK != 0 {
			t = Q8_0
		} else {
			t = Q6_K
		}
	case name == "token_embd.weight":
		// Untied: neither file type changes it.
	case strings.HasSuffix(name, ".attn_v.weight"):
		if f == MostlyQ4_K_M && useMoreBits(layer, mm.layers) {
			t = Q6_K
		}
		if mm.is70B && t == Q4_K {
			// "In the 70B model we have 8 heads sharing the same attn_v
			// weights": more bits for a tensor 8x smaller than attn_q.
			t = Q5_K
		}
	case strings.HasSuffix(name, ".ffn_down.weight"):
		if f == MostlyQ4_K_M && useMoreBits(layer, mm.layers) {
			t = Q6_K
		}
	}
	return fallbackType(name, t, cols)
}

// useMoreBits is llama-quantize's choice of layers that keep more bits in
// a K-quant mix: the first and last eighth, and every third one between.
func useMoreBits(layer, layers int) bool {
	return layer < layers/8 || layer >= 7*layers/8 || (layer-layers/8)%3 == 2
}

// fallbackType is llama-quantize's tensor_type_fallback: the type a row of
// cols takes when t's blocks do not divide it.
func fallbackType(name string, t Type, cols int) (Type, error) {
	if _, err := t.rowBytes(cols); err == nil {
		return t, nil
	}
	switch t {
	case Q4_K:
		t = Q5_0
	case Q6_K:
		t = Q8_0
	case Q5_K:
		// llama-quantize's Q5_1, which distill does not write: refuse
		// rather than store a tensor llama-quantize would not.
		return 0, fmt.Errorf("tensor %s: rows of %d do not fill q5_K's super-blocks of %d, and llama-quantize's fallback for them, q5_1, is not one distill writes: export --type q6_k or q8_0", name, cols, qkK)
	}
	if _, err := t.rowBytes(cols); err != nil {
		t = F16 // "must use F16 due to unusual shape"
	}
	return t, nil
}

// blockIndex is the layer of a tensor named blk.N.…, or -1.
func blockIndex(name string) int {
	var n int
	if _, err := fmt.Sscanf(name, "blk.%d.", &n); err != nil {
		return -1
	}
	return n
}
