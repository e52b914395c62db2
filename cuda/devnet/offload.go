//go:build cuda

package devnet

import (
	"fmt"

	"distill/core/model"
	"distill/core/tensor"
	"distill/cuda"
)

// --cpu-offload auto: how many of a model's first layers the host must run
// for the decoder to hold the rest (offloadNeed's bytes within the
// device's free memory). Ollama's way, by the bytes each layer uploads.

// Room kept beyond what is counted: the pool's rounding of each buffer up
// to its size class (≤ 1/8), cuBLAS's workspaces, a second sequence's
// cache — a tenth of the device's free memory.
const offloadSlack = 10

// offloadContext bounds the KV cache reserved for: one sequence this long
// (or the model's context, if shorter) fits beside the weights.
const offloadContext = 4096

// offloadPrompt is the prompt whose pass is reserved for, in tokens.
const offloadPrompt = 512

// offloadNeed is the device memory the decoder needs holding m's layers
// from `from` on: their weights as uploaded (NF4 as stored, dense as bf16,
// norms and biases in f32), the LM head (bf16; the embedding too when it
// holds every layer), a KV mirror of offloadContext positions over its
// layers, and one pass of an offloadPrompt-token prompt (a pass's
// activations, a dequantised projection, a few rows of logits).
func offloadNeed(m *model.Model, from int) int64 {
	c := &m.Config
	D, F, V := int64(c.HiddenSize), int64(c.IntermediateSize), int64(c.VocabSize)
	qO, kvO := int64(c.NumHeads*c.HeadDim), int64(c.NumKVHeads*c.HeadDim)
	var need, tile int64
	for l := from; l < len(m.Layers); l++ {
		L := &m.Layers[l]
		for _, p := range L.Projections() {
			n := int64(p.Rows()) * int64(p.Cols())
			tile = max(tile, n)
			if q, ok := p.(tensor.NF4Matrix); ok {
				if _, ok := q.NF4(); ok {
					need += p.Bytes()
					continue
				}
			}
			need += 2 * n
		}
		for _, v := range [][]float32{L.AttnNorm, L.MLPNorm, L.QNorm, L.KNorm, L.QBias, L.KBias, L.VBias, L.OBias} {
			need += 4 * int64(len(v))
		}
	}
	need += 4 * D // the final norm
	switch tied := m.LMHead == m.Embed && m.Embed.DType == tensor.BF16; {
	case from == 0 && tied: // the head is the embedding
		need += m.Embed.Bytes()
	case from == 0:
		need += m.Embed.Bytes() + 2*V*D
	default: // the host embeds
		need += 2 * V * D
	}
	ctx := int64(offloadContext)
	if n := int64(c.MaxPositionEmbeddings); n > 0 {
		ctx = min(ctx, n)
	}
	need += 2 * 4 * kvO * ctx * int64(len(m.Layers)-from)
	P := int64(offloadPrompt)
	need += 4*P*(6*D+3*F+4*qO+2*kvO) + 2*tile + 64*V*(4+2)
	return need
}

// offloadFrom is --cpu-offload auto's choice for m on d: the fewest first
// layers the host runs so that offloadNeed fits the device's free memory
// (and what its pool holds cached) less a tenth. It fails wrapping
// model.ErrAcceleratorFull when even the last layer alone does not fit.
func offloadFrom(d *cuda.Device, m *model.Model) (int, error) {
	free, _, err := d.MemInfo()
	if err != nil {
		return 0, err
	}
	free += d.Pool.Stats().Cached
	room := free - free/offloadSlack
	for from := range len(m.Layers) {
		if offloadNeed(m, from) <= room {
			return from, nil
		}
	}
	return 0, fmt.Errorf("%w: --cpu-offload auto: the device has %.2f GB free; even the last layer, the LM head and a %d-token cache need %.2f GB",
		model.ErrAcceleratorFull, float64(free)/1e9, offloadContext, float64(offloadNeed(m, len(m.Layers)-1))/1e9)
}
