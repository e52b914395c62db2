package train

import (
	"math"

	"distill/core/tensor"
)

// lossRows bounds the (rows, vocab) logits buffer of the loss: the full
// (tokens, vocab) logits tensor is never materialised.
const lossRows = 32

// Step runs forward and backward on b, adds d(loss)/d(params) to nt.Grads,
// and returns the summed token loss. Gradients are of Σ loss / denom, where
// denom is the number of counted tokens in the whole optimizer step, so
// accumulating micro-batches gives the mean over all of them.
func (nt *Net) Step(b *Batch, denom int) (lossSum float64, err error) {
	c := &nt.M.Config
	if err := b.Validate(c.VocabSize); err != nil {
		return 0, err
	}
	if err := nt.M.CheckContext(maxPos(b) + 1); err != nil {
		return 0, err
	}
	n, D, nL := b.Len(), c.HiddenSize, len(nt.M.Layers)
	r := nt.Adapter.Config.R
	qkNorm := nt.M.Arch.QKNorm

	// Forward, keeping every layer's input (the checkpoints).
	xs := make([][]float32, nL+1)
	x := make([]float32, n*D)
	nt.Be.Embed(x, nt.M.Embed, b.IDs)
	layerActs := make([]*acts, nL)
	for l := 0; l < nL; l++ {
		xs[l] = append([]float32(nil), x...)
		if nt.Checkpoint && l > 0 {
			layerActs[l] = layerActs[0] // one buffer, refilled in backward
		} else {
			layerActs[l] = newActs(c, n, r, qkNorm)
		}
		nt.layerFwd(l, x, b, layerActs[l])
	}
	xs[nL] = x

	// Final norm, chunked cross-entropy, and its gradient.
	hf := make([]float32, n*D)
	rstd := make([]float32, n)
	rmsNormFwd(hf, rstd, x, nt.M.Norm, float32(c.RMSNormEps))
	dhf := make([]float32, n*D)
	lossSum = nt.crossEntropy(hf, dhf, b.Targets, 1/float32(denom))
	dx := make([]float32, n*D)
	rmsNormBwd(dx, nil, dhf, x, nt.M.Norm, rstd)

	// Backward through the layers, recomputing activations when checkpointing.
	s := newScratch(c, n, r)
	tmp := make([]float32, n*D)
	for l := nL - 1; l >= 0; l-- {
		a := layerActs[l]
		if nt.Checkpoint && l < nL-1 {
			copy(tmp, xs[l])
			nt.layerFwd(l, tmp, b, a)
		}
		nt.layerBwd(l, dx, xs[l], b, a, s)
	}
	return lossSum, nil
}

// crossEntropy returns Σ −log p(target) over rows with a target, and sets
// dh(n, D) = scale · d/dh of that sum, lossRows rows of logits at a time.
func (nt *Net) crossEntropy(h, dh []float32, targets []int, scale float32) float64 {
	c := &nt.M.Config
	V, D := c.VocabSize, c.HiddenSize
	var rows []int
	for i, t := range targets {
		if t >= 0 {
			rows = append(rows, i)
		}
	}
	hb := make([]float32, lossRows*D)
	dhb := make([]float32, lossRows*D)
	logits := make([]float32, lossRows*V)
	losses := make([]float64, lossRows)
	var total float64
	for r0 := 0; r0 < len(rows); r0 += lossRows {
		chunk := rows[r0:min(r0+lossRows, len(rows))]
		k := len(chunk)
		for i, row := range chunk {
			copy(hb[i*D:(i+1)*D], h[row*D:(row+1)*D])
		}
		nt.Be.MatMul(logits, hb[:k*D], nt.M.LMHead, k)
		tensor.ParallelFor(k, 1, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				lg := logits[i*V : (i+1)*V]
				t := targets[chunk[i]]
				m := float64(lg[0])
				for _, v := range lg {
					m = max(m, float64(v))
				}
				var sum float64
				for _, v := range lg {
					sum += math.Exp(float64(v) - m)
				}
				lse := m + math.Log(sum)
				losses[i] = lse - float64(lg[t])
				for j, v := range lg {
					lg[j] = scale * float32(math.Exp(float64(v)-lse))
				}
				lg[t] -= scale
			}
		})
		for i := 0; i < k; i++ {
			total += losses[i]
		}
		clear(dhb[:k*D])
		tensor.MatMulTAdd(dhb[:k*D], logits[:k*V], nt.M.LMHead, k)
		for i, row := range chunk {
			copy(dh[row*D:(row+1)*D], dhb[i*D:(i+1)*D])
		}
	}
	return total
}
