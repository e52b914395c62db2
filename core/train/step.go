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
	n, nL := b.Len(), len(nt.M.Layers)
	ws := nt.workspace(n, maxSegment(b.SegStart))
	nt.ws = ws
	defer func() { nt.ws = nil; nt.microBatches++ }()

	// Forward, keeping every layer's input (the checkpoints).
	x := ws.xs[nL]
	nt.Be.Embed(x, nt.M.Embed, b.IDs)
	for l := 0; l < nL; l++ {
		copy(ws.xs[l], x)
		nt.layerFwd(l, x, b, ws.layerActs(l))
	}

	// Final norm, chunked cross-entropy, and its gradient.
	rmsNormFwd(ws.hf, ws.rstd, x, nt.M.Norm, float32(c.RMSNormEps))
	clear(ws.dhf)
	lossSum = nt.crossEntropy(ws, b.Targets, 1/float32(denom))
	dx := ws.dx
	clear(dx)
	var gNorm []float32
	if nt.full != nil {
		gNorm = nt.full.Norm
	}
	rmsNormBwd(dx, gNorm, ws.dhf, x, nt.M.Norm, ws.rstd)

	// Backward through the layers, recomputing activations when checkpointing.
	for l := nL - 1; l >= 0; l-- {
		a := ws.layerActs(l)
		if nt.Checkpoint && l < nL-1 {
			copy(ws.tmp, ws.xs[l])
			nt.layerFwd(l, ws.tmp, b, a)
		}
		nt.layerBwd(l, dx, ws.xs[l], b, a, ws.s)
	}
	if nt.full != nil { // embedding rows receive their tokens' gradients
		D := c.HiddenSize
		for i, id := range b.IDs {
			g := nt.full.Embed[id*D : (id+1)*D]
			for j, v := range dx[i*D : (i+1)*D] {
				g[j] += v
			}
		}
	}
	return lossSum, nil
}

// crossEntropy returns Σ −log p(target) over rows with a target, and sets
// dh(n, D) = scale · d/dh of that sum, lossRows rows of logits at a time.
func (nt *Net) crossEntropy(ws *workspace, targets []int, scale float32) float64 {
	c := &nt.M.Config
	V, D := c.VocabSize, c.HiddenSize
	h, dh := ws.hf, ws.dhf
	var rows []int
	for i, t := range targets {
		if t >= 0 {
			rows = append(rows, i)
		}
	}
	hb, dhb, logits := ws.hb, ws.dhb, ws.logits
	var losses [lossRows]float64
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
				target := float64(lg[t])
				var sum float64
				for j, v := range lg { // one exp per logit: keep e^(v−m)
					e := math.Exp(float64(v) - m)
					lg[j] = float32(e)
					sum += e
				}
				losses[i] = m + math.Log(sum) - target
				inv := scale / float32(sum)
				for j := range lg {
					lg[j] *= inv
				}
				lg[t] -= scale
			}
		})
		for i := 0; i < k; i++ {
			total += losses[i]
		}
		clear(dhb[:k*D])
		nt.Be.MatMulTAdd(dhb[:k*D], logits[:k*V], nt.M.LMHead, k)
		if nt.full != nil { // d head (V, D) += dlogitsᵀ · h
			tensor.Gemm(true, false, V, D, k, 1, logits, V, hb, D, 1, nt.full.LMHead, D)
		}
		for i, row := range chunk {
			copy(dh[row*D:(row+1)*D], dhb[i*D:(i+1)*D])
		}
	}
	return total
}
