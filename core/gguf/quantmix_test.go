package gguf

import (
	"strings"
	"testing"
)

// llama-quantize's rules as tensorType applies them, on shapes the
// fixtures checked against llama-quantize itself (TestLlamaCppReadsExport's
// quantised cases) do not reach: more layers, and a 70B model.
func TestTensorTypeMix(t *testing.T) {
	small := newMixModel("llama", 32, 32, 8, false)
	tied := newMixModel("qwen3", 28, 16, 8, true)
	big := newMixModel("llama", 80, 64, 8, false) // Llama 3 70B
	for _, tc := range []struct {
		ft   FileType
		mm   mixModel
		name string
		cols int
		want Type
	}{
		// 32 layers: use_more_bits keeps layers 0-3 and 28-31, and every
		// third from 4 (6, 9, …, 27) at Q6_K.
		{MostlyQ4_K_M, small, "blk.0.attn_v.weight", 4096, Q6_K},
		{MostlyQ4_K_M, small, "blk.3.ffn_down.weight", 14336, Q6_K},
		{MostlyQ4_K_M, small, "blk.4.attn_v.weight", 4096, Q4_K},
		{MostlyQ4_K_M, small, "blk.5.ffn_down.weight", 14336, Q4_K},
		{MostlyQ4_K_M, small, "blk.6.attn_v.weight", 4096, Q6_K},
		{MostlyQ4_K_M, small, "blk.27.ffn_down.weight", 14336, Q6_K},
		{MostlyQ4_K_M, small, "blk.26.ffn_down.weight", 14336, Q4_K},
		{MostlyQ4_K_M, small, "blk.28.attn_v.weight", 4096, Q6_K},
		{MostlyQ4_K_M, small, "blk.6.attn_q.weight", 4096, Q4_K},
		{MostlyQ4_K_M, small, "blk.6.ffn_up.weight", 4096, Q4_K},
		{MostlyQ4_K_M, small, "output.weight", 4096, Q6_K},
		{MostlyQ4_K_M, small, "token_embd.weight", 4096, Q4_K},
		{MostlyQ6_K, small, "blk.4.attn_v.weight", 4096, Q6_K},
		{MostlyQ6_K, small, "token_embd.weight", 4096, Q6_K},
		// Tied embeddings: token_embd is the output.
		{MostlyQ4_K_M, tied, "token_embd.weight", 1024, Q6_K},
		{MostlyQ4_K_M, tied, "token_embd.weight", 896, Q8_0},
		// Rows that do not fill super-blocks (Qwen2.5-0.5B's 896).
		{MostlyQ4_K_M, tied, "blk.1.attn_q.weight", 896, Q5_0},
		{MostlyQ4_K_M, tied, "blk.0.attn_v.weight", 896, Q8_0},
		{MostlyQ6_K, tied, "blk.1.attn_q.weight", 896, Q8_0},
		{MostlyQ4_K_M, small, "output.weight", 896, Q8_0},
		{MostlyQ4_K_M, small, "blk.1.attn_q.weight", 100, F16},
		// 70B: attn_v left at Q4_K becomes Q5_K.
		{MostlyQ4_K_M, big, "blk.10.attn_v.weight", 8192, Q5_K},
		{MostlyQ4_K_M, big, "blk.12.attn_v.weight", 8192, Q6_K},
		{MostlyQ4_K_M, big, "blk.10.ffn_down.weight", 28672, Q4_K},
		{MostlyQ6_K, big, "blk.10.attn_v.weight", 8192, Q6_K},
		// The converter's types.
		{MostlyQ8_0, small, "blk.0.attn_v.weight", 4096, Q8_0},
		{MostlyQ8_0, small, "blk.0.attn_v.weight", 100, F16},
		{MostlyBF16, small, "output.weight", 4096, BF16},
	} {
		got, err := tc.ft.tensorType(tc.name, tc.cols, tc.mm)
		if err != nil || got != tc.want {
			t.Errorf("%s, %s with rows of %d: %s (%v), want %s", tc.ft, tc.name, tc.cols, got, err, tc.want)
		}
	}
	// What llama.cpp calls a 70B.
	for _, tc := range []struct {
		arch                   string
		layers, heads, kvHeads int
		want                   bool
	}{
		{"llama", 80, 64, 8, true}, {"llama", 80, 64, 64, false}, {"qwen2", 80, 64, 8, true},
		{"qwen3", 80, 64, 8, false}, {"llama", 32, 32, 8, false},
	} {
		if got := newMixModel(tc.arch, tc.layers, tc.heads, tc.kvHeads, false).is70B; got != tc.want {
			t.Errorf("%s with %d layers, %d/%d heads: 70B %v", tc.arch, tc.layers, tc.heads, tc.kvHeads, got)
		}
	}
	// Q5_K rows that do not fill super-blocks would be Q5_1, which distill
	// does not write: refused, naming the tensor and what to do instead.
	_, err := MostlyQ4_K_M.tensorType("blk.10.attn_v.weight", 8000, big)
	if err == nil || !strings.Contains(err.Error(), "blk.10.attn_v.weight") || !strings.Contains(err.Error(), "--type q6_k") {
		t.Errorf("q5_K rows of 8000: %v", err)
	}
}

// --type takes llama-quantize's names in either case, and an unknown one
// is refused with the list.
func TestParseFileType(t *testing.T) {
	for s, want := range map[string]FileType{"q4_k_m": MostlyQ4_K_M, "Q4_K_M": MostlyQ4_K_M, "q6_K": MostlyQ6_K, "f32": AllF32, "bf16": MostlyBF16} {
		if got, err := ParseFileType(s); err != nil || got != want {
			t.Errorf("%q: %v (%v), want %v", s, got, err, want)
		}
	}
	_, err := ParseFileType("q4_0")
	if err == nil || !strings.Contains(err.Error(), `"q4_0"`) || !strings.Contains(err.Error(), "q4_k_m") {
		t.Errorf("q4_0: %v", err)
	}
}
