package train

import (
	"distill/core/tensor"
)

// The loss projects its rows to logits a chunk of rows at a time, so the
// (tokens, vocab) logits tensor is never materialised; lossLogitsBytes is
// the size a chunk's f32 logits aim at (past it for vocabularies over
// 65,536 tokens: lossRowsMin). Within it, the more rows the better: each
// chunk passes over the whole LM head twice (forward and backward: read
// from memory and widened from bf16, dequantised or packed for the bf16
// GEMM, tile by tile), and with few rows that pass, not the products, is
// what a chunk costs. At 32 rows a chunk it was a fifth of a SmolLM2-135M
// step (2.5 → 2.0 s at 512 tokens, f32 products).
const lossLogitsBytes = 32 << 20

// lossRowsMin and lossRowsMax bound a chunk's rows (variables for tests).
// Large vocabularies take lossRowsMin rows past lossLogitsBytes: 32 MB is
// 55 rows over Qwen's 151,936 tokens, and 128 rows (78 MB) took
// Qwen2.5-0.5B's step at 512 tokens from 8.8 to 7.4–7.6 s with f32 products
// and from 2.43 to 2.17–2.26 s with bf16 ones on AMX, for 45–68 MB more in a
// plan of ~800 (logit KD's teacher chunk follows: ~130 MB more there).
var lossRowsMin, lossRowsMax = 128, 256

// lossRowsFor is the rows of a loss chunk for n tokens over vocab: as many
// as lossLogitsBytes holds, within [lossRowsMin, lossRowsMax], at most n.
func lossRowsFor(n, vocab int) int {
	return max(1, min(n, lossRowsMax, max(lossRowsMin, lossLogitsBytes/(4*vocab))))
}

// Step runs forward and backward on b with the SFT objective (masked
// cross-entropy), adds d(loss)/d(params) to nt.Grads, and returns the summed
// token loss. Gradients are of Σ loss / denom, where denom is the number of
// counted tokens in the whole optimizer step, so accumulating micro-batches
// gives the mean over all of them.
func (nt *Net) Step(b *Batch, denom int) (lossSum float64, err error) {
	if nt.accel != nil && !nt.adapterOff {
		return nt.accelStep(b, denom)
	}
	scale := 1 / float32(denom)
	err = nt.run(b, func(ws *workspace) float64 {
		return nt.head(ws, b.Targets, true, func(rows []int, logits []float32, losses []float64) {
			ceRows(logits, nt.M.Config.VocabSize, rows, b.Targets, scale, losses)
		})
	})
	return nt.lastLoss, err
}

// run does one forward and backward pass over b. loss is called between
// them: it must fill ws.dhf (the gradient at the final norm's output) and
// return the loss, which run keeps in nt.lastLoss.
func (nt *Net) run(b *Batch, loss func(ws *workspace) float64) error {
	c := &nt.M.Config
	if err := b.Validate(c.VocabSize); err != nil {
		return err
	}
	if err := nt.M.CheckContext(maxPos(b) + 1); err != nil {
		return err
	}
	n, nL := b.Len(), len(nt.M.Layers)
	ws := nt.workspace(n, maxSegment(b.SegStart))
	nt.ws = ws
	defer func() { nt.ws = nil; nt.microBatches++ }()

	// Forward, keeping every layer's input (the checkpoints).
	x := nt.forward(b, ws)

	// The objective: its loss and its gradient at the final norm's output.
	clear(ws.dhf)
	nt.lastLoss = loss(ws)
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
			nt.layerRecompute(l, ws.xs[l], b, a)
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
	return nil
}

// forward runs the decoder over b into ws (layer inputs kept, final norm in
// ws.hf) and returns the last layer's output.
func (nt *Net) forward(b *Batch, ws *workspace) []float32 {
	nL := len(nt.M.Layers)
	x := ws.xs[nL]
	nt.Be.Embed(x, nt.M.Embed, b.IDs)
	for l := 0; l < nL; l++ {
		copy(ws.xs[l], x)
		nt.layerFwd(l, x, b, ws.layerActs(l))
	}
	rmsNormFwd(ws.hf, ws.rstd, x, nt.M.Norm, float32(nt.M.Config.RMSNormEps))
	return x
}

// head projects the final hidden rows that carry a target (targets[i] >= 0)
// to logits, ws.lossRows rows at a time — the (tokens, vocab) logits tensor
// is never materialised — and calls obj with the chunk's row indices and its
// logits (len(rows), V). obj writes each row's loss into losses and, when
// backward, overwrites the logits with d loss / d logits; head then carries
// that gradient through the LM head into ws.dhf. It returns the summed loss.
func (nt *Net) head(ws *workspace, targets []int, backward bool, obj func(rows []int, logits []float32, losses []float64)) float64 {
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
	per := ws.lossRows
	losses := make([]float64, per)
	var total float64
	for r0 := 0; r0 < len(rows); r0 += per {
		chunk := rows[r0:min(r0+per, len(rows))]
		k := len(chunk)
		for i, row := range chunk {
			copy(hb[i*D:(i+1)*D], h[row*D:(row+1)*D])
		}
		nt.Be.MatMul(logits, hb[:k*D], nt.M.LMHead, k)
		obj(chunk, logits[:k*V], losses[:k])
		for i := 0; i < k; i++ {
			total += losses[i]
		}
		if !backward {
			continue
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

// ceRows: losses[i] = −log softmax(row i)[target] and the row becomes
// scale · (softmax − onehot(target)).
func ceRows(logits []float32, V int, rows, targets []int, scale float32, losses []float64) {
	tensor.ParallelFor(len(rows), 1, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			lg := logits[i*V : (i+1)*V]
			t := targets[rows[i]]
			target := float64(lg[t])
			losses[i] = softmaxInPlace(lg) - target
			for j := range lg {
				lg[j] *= scale
			}
			lg[t] -= scale
		}
	})
}

// softmaxInPlace turns lg into softmax(lg) (one exp per element, summed in
// float64) and returns log Σ exp(lg).
func softmaxInPlace(lg []float32) float64 { return tensor.SoftmaxRow(lg) }
