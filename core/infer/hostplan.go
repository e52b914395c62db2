package infer

import (
	"distill/core/model"
	"distill/core/tensor"
)

// HostPlan is the host memory a server decoding on the CPU takes, in
// bytes: what it holds for as long as it runs and what its largest
// moments add. Generation is its largest user: a classification or
// extraction batch is bounded by the same pass (2,048 tokens) and caches.
type HostPlan struct {
	Batch   int `json:"batch"`   // sequences decoding together (serve's --max-batch)
	Context int `json:"context"` // positions each sequence's KV cache holds (prompt + max tokens)

	Weights  int64 `json:"weights"`   // every tensor as held (quantised where it is), norms and biases
	Caches   int64 `json:"kv_caches"` // Batch caches of Context positions: keys and values in f32, or bf16 (Model.KVCacheBF16)
	Prefill  int64 `json:"prefill"`   // the largest prompt pass: maxBatchPrefill tokens' activations, their shared cache, attention's scratch, bf16 products' rounded input
	Decode   int64 `json:"decode"`    // a step over Batch sequences: their logits, each sequence's own, the step's activations
	Adapters int64 `json:"adapters"`  // the adapters kept loaded, f32
	Runtime  int64 `json:"runtime"`   // the binary, Go's runtime, the tokenizer and the HTTP server (HostRuntime)
}

// HostRuntime is what the process holds besides the model's work: the
// binary's text and data, Go's runtime, a loaded 150k-entry tokenizer and
// the HTTP server. Measured (2026-11-28, Qwen2.5-0.5B with the Qwen3
// tokenizer): `distill serve` resident at 85.6 MB once loaded (57.4 MB
// anonymous, 28.2 MB of the binary's pages), 63.5 MB anonymous after its
// first requests (OpenBLAS's buffers among them).
const HostRuntime = 96 << 20

// Total is every part.
func (p HostPlan) Total() int64 {
	return p.Weights + p.Caches + p.Prefill + p.Decode + p.Adapters + p.Runtime
}

// CacheBytesPerPosition is one position's keys and values over every layer
// (half in a bf16 cache, Model.KVCacheBF16).
func CacheBytesPerPosition(m *model.Model) int64 {
	c := &m.Config
	return 2 * m.CacheElemBytes() * int64(c.NumKVHeads*c.HeadDim) * int64(len(m.Layers))
}

// PlanHost is the host memory of batch sequences of context positions each
// decoding on m as it is held now (quantise first), with adapters
// adapters of rank rank loaded beside it.
func PlanHost(m *model.Model, batch, context, adapters, rank int) HostPlan {
	c := &m.Config
	D, F, V := int64(c.HiddenSize), int64(c.IntermediateSize), int64(c.VocabSize)
	qO, kvO := int64(c.NumHeads*c.HeadDim), int64(c.NumKVHeads*c.HeadDim)
	L := int64(len(m.Layers))
	p := HostPlan{Batch: batch, Context: context, Weights: m.HeldBytes(), Runtime: HostRuntime}
	for _, l := range m.Layers {
		for _, v := range [][]float32{l.AttnNorm, l.MLPNorm, l.QNorm, l.KNorm, l.QBias, l.KBias, l.VBias, l.OBias} {
			p.Weights += 4 * int64(len(v))
		}
		for _, w := range l.Projections() {
			p.Adapters += int64(adapters) * 4 * int64(rank) * int64(w.Rows()+w.Cols())
		}
	}
	p.Weights += 4 * int64(len(m.Norm))
	p.Caches = int64(batch) * int64(context) * CacheBytesPerPosition(m)

	// The prompt pass: a batch's prompts prefilled together (up to
	// maxBatchPrefill tokens) into a shared cache copied out after, with
	// Forward's workspace (the residual stream, its norm, q, attention's
	// output, o, gate and up; with a bf16 cache the new keys and values
	// too) and their hidden states; longer prompts go prefillChunk tokens
	// at a time into their own caches, less than this.
	T := int64(max(maxBatchPrefill, prefillChunk))
	elem := m.CacheElemBytes()
	p.Prefill = 4*T*(4*D+2*qO+2*F) + 4*T*D + T*2*elem*kvO*L
	// Attention's blocks: per worker a block's scores (attnScoresMax
	// floats at most) and operands; and one layer's K and V over every
	// row a pass reads (a chunk late in a long prompt reads the whole
	// context) as the GEMMs take them: an f32 cache's in bf16 copies under
	// bf16 attention with bf16 products (counted always: an upper bound),
	// a bf16 cache's widened to f32 where the CPU lacks bf16 products
	// (with them it is read as it is, its new rows waiting in the
	// workspace). A batched prefill's branches keep a copy of their own
	// rows (T of them) while each attends beside the prefix.
	p.Prefill += int64(tensor.Threads) * 4 * (1<<21 + 2*64*qO)
	rows := max(T, int64(context))
	switch {
	case elem == 2 && tensor.BF16ProductsFast():
		p.Prefill += 2 * 4 * T * kvO
	case elem == 2:
		p.Prefill += 2*4*T*kvO + 2*4*rows*kvO
	default:
		p.Prefill += 2 * 2 * rows * kvO
	}
	p.Prefill += 2 * elem * T * kvO // the branches' own rows, kept aside
	// Products in bf16 (--cpu-bf16, which a bf16 cache implies where no
	// accelerator runs the model) round each GEMM's input once into the
	// scratch pool, which keeps the largest: the down projection's (T, F),
	// in bf16 — in f32 where the CPU lacks bf16 products (the rounded
	// values go to the f32 GEMM).
	if elem == 2 && !m.Attached() {
		w := int64(2)
		if !tensor.BF16ProductsFast() {
			w = 4
		}
		p.Prefill += w * T * max(D, qO, F)
	}
	// A step: the batch's logits, each sequence's own, the step's scratch
	// (its workspace, its rows' keys and values before they are copied
	// out, its hidden states); a sequence's own workspace of one prefill
	// chunk is freed after its prompt.
	B := int64(batch)
	p.Decode = 4*B*V + 4*B*V + 4*B*(4*D+2*qO+2*F) + 2*elem*B*kvO*L + 4*B*D
	if elem == 2 {
		p.Decode += 2 * 4 * B * kvO // the step's keys and values wait in its workspace
	}
	return p
}
