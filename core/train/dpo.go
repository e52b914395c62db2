package train

import (
	"fmt"
	"math"
)

// DPO configures direct preference optimisation. The reference policy is the
// same base with the adapter switched off — no second model in memory.
type DPO struct {
	Beta           float64 // β > 0: strength of the implicit KL constraint
	LabelSmoothing float64 // cDPO: ε ∈ [0, 0.5), the assumed rate of flipped labels
	Loss           string  // "sigmoid" (DPO, cDPO) or "ipo"
}

// Validate checks the configuration.
func (d *DPO) Validate() error {
	if d.Beta <= 0 {
		return fmt.Errorf("dpo: beta must be positive, got %g", d.Beta)
	}
	if d.LabelSmoothing < 0 || d.LabelSmoothing >= 0.5 {
		return fmt.Errorf("dpo: label smoothing must be in [0, 0.5), got %g", d.LabelSmoothing)
	}
	if d.Loss != "sigmoid" && d.Loss != "ipo" {
		return fmt.Errorf("dpo: unknown loss %q (sigmoid or ipo)", d.Loss)
	}
	return nil
}

// DPOStats are a step's preference metrics, summed over its pairs.
type DPOStats struct {
	Pairs                        int
	Loss                         float64
	RewardChosen, RewardRejected float64 // β·(log π − log π_ref)
	Correct                      int     // pairs whose chosen reward beats the rejected
}

// pairLoss returns the loss of one pair and its derivatives with respect to
// h_c = log π(y_c|x) − log π_ref(y_c|x) and h_r (likewise for y_r):
// sigmoid: −(1−ε)·log σ(β(h_c−h_r)) − ε·log σ(−β(h_c−h_r));
// ipo: (h_c − h_r − 1/(2β))², with the log-probs per-token means (Azar et
// al.'s IPO, as TRL computes it: its target 1/(2β) is per token).
func (d *DPO) pairLoss(hc, hr float64) (loss, dhc, dhr float64) {
	if d.Loss == "ipo" {
		g := hc - hr - 1/(2*d.Beta)
		return g * g, 2 * g, -2 * g
	}
	z := d.Beta * (hc - hr)
	e := d.LabelSmoothing
	loss = (1-e)*softplus(-z) + e*softplus(z) // −log σ(z) = softplus(−z)
	dz := -(1-e)*sigmoid64(-z) + e*sigmoid64(z)
	return loss, d.Beta * dz, -d.Beta * dz
}

func softplus(x float64) float64 {
	if x > 30 {
		return x
	}
	return math.Log1p(math.Exp(x))
}

func sigmoid64(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

// segmentIndex numbers b's segments in order and returns each row's.
func segmentIndex(b *Batch) (seg []int, count int) {
	seg = make([]int, b.Len())
	for i := range seg {
		if i > 0 && b.SegStart[i] != b.SegStart[i-1] {
			count++
		}
		seg[i] = count
	}
	return seg, count + 1
}

// SequenceLogProbs returns, per segment of b, Σ log p(target) over its
// counted rows — with the adapter on, or off (the DPO reference policy).
// Forward only, as an evaluation: no gradient is touched and no dropout
// applied (validation scores the adapter as it will be used).
func (nt *Net) SequenceLogProbs(b *Batch, adapterOff bool) ([]float64, error) {
	c := &nt.M.Config
	if err := b.Validate(c.VocabSize); err != nil {
		return nil, err
	}
	if r := nt.accelRows(); r != nil {
		return nt.accelSequenceLogProbs(r, b, adapterOff)
	}
	seg, nSeg := segmentIndex(b)
	out := make([]float64, nSeg)
	ws := nt.workspace(b.Len(), maxSegment(b.SegStart))
	nt.ws, nt.adapterOff, nt.evaluating = ws, adapterOff, true
	defer func() { nt.ws, nt.adapterOff, nt.evaluating = nil, false, false }()
	nt.forward(b, ws)
	nt.perSegment(b, ws, seg, out)
	return out, nil
}

// perSegment fills out[s] with Σ log p(target) of segment s's counted rows.
func (nt *Net) perSegment(b *Batch, ws *workspace, seg []int, out []float64) {
	V := nt.M.Config.VocabSize
	nt.head(ws, b.Targets, false, func(rows []int, logits []float32, losses []float64) {
		logProbRows(logits, V, rows, b.Targets, losses)
		for i, r := range rows {
			out[seg[r]] += losses[i]
		}
	})
}

// logProbRows: losses[i] = log softmax(row i)[target] (logits clobbered).
func logProbRows(logits []float32, V int, rows, targets []int, losses []float64) {
	for i, r := range rows {
		lg := logits[i*V : (i+1)*V]
		t := targets[r]
		losses[i] = float64(lg[t]) - logSumExp64(lg, 1)
	}
}

// StepDPO runs forward and backward on b, whose segments are pairs in order
// (chosen_0, rejected_0, chosen_1, …), each a prompt and completion with the
// loss mask on the completion. ref holds the reference log-probs per segment
// (SequenceLogProbs with the adapter off, computed once and cached).
// Gradients are of Σ pair loss / pairsInStep.
func (nt *Net) StepDPO(b *Batch, ref []float64, pairsInStep int, d *DPO) (DPOStats, error) {
	var st DPOStats
	seg, nSeg := segmentIndex(b)
	if nSeg%2 != 0 || len(ref) != nSeg {
		return st, fmt.Errorf("dpo: batch has %d segments and %d reference log-probs; want chosen/rejected pairs", nSeg, len(ref))
	}
	if r := nt.accelRows(); r != nil {
		return nt.accelStepDPO(r, b, ref, pairsInStep, d)
	}
	V := nt.M.Config.VocabSize
	policy := make([]float64, nSeg)
	coef := make([]float64, nSeg)
	err := nt.run(b, func(ws *workspace) float64 {
		// Pass 1: the policy's sequence log-probs (no gradient yet: every
		// token's gradient depends on its whole pair's loss).
		clear(policy)
		nt.perSegment(b, ws, seg, policy)
		st = dpoPairs(d, policy, ref, segmentTokens(b, seg, nSeg), pairsInStep, coef)
		// Pass 2: d loss / d logits = coef · (onehot − softmax) per counted row.
		nt.head(ws, b.Targets, true, func(rows []int, logits []float32, losses []float64) {
			for i, r := range rows {
				lg := logits[i*V : (i+1)*V]
				softmaxInPlace(lg)
				c := float32(coef[seg[r]])
				for j := range lg {
					lg[j] *= -c
				}
				lg[b.Targets[r]] += c
				losses[i] = 0
			}
		})
		return st.Loss
	})
	return st, err
}

// dpoPairs scores each (chosen, rejected) pair of segments from the
// policy's and the reference's sequence log-probs (IPO: over tokens[s],
// each segment's counted tokens, per-token means), setting coef[s] to
// d (Σ pair loss / pairsInStep) / d log π(segment s).
func dpoPairs(d *DPO, policy, ref, tokens []float64, pairsInStep int, coef []float64) DPOStats {
	var st DPOStats
	norm := func(s int) float64 {
		if d.Loss == "ipo" && tokens[s] > 0 {
			return tokens[s]
		}
		return 1
	}
	for p := 0; p+1 < len(policy); p += 2 {
		nc, nr := norm(p), norm(p+1)
		hc, hr := (policy[p]-ref[p])/nc, (policy[p+1]-ref[p+1])/nr
		loss, dhc, dhr := d.pairLoss(hc, hr)
		dhc, dhr = dhc/nc, dhr/nr
		st.Pairs++
		st.Loss += loss
		st.RewardChosen += d.Beta * hc
		st.RewardRejected += d.Beta * hr
		if hc > hr {
			st.Correct++
		}
		coef[p], coef[p+1] = dhc/float64(pairsInStep), dhr/float64(pairsInStep)
	}
	return st
}

// DPOObjective trains on batches of chosen/rejected pairs. The reference
// log-probs of each batch are computed once (adapter off) and cached by
// batch, so the reference costs one forward per batch for the whole run.
type DPOObjective struct {
	DPO *DPO

	ref   map[*Batch][]float64
	stats DPOStats
}

// ScorePairs scores b's (chosen, rejected) pairs from the policy's and the
// reference's sequence log-probs (SequenceLogProbs) as a training step
// does — IPO on per-token means — for validation.
func (d *DPO) ScorePairs(b *Batch, policy, ref []float64) DPOStats {
	seg, nSeg := segmentIndex(b)
	return dpoPairs(d, policy, ref, segmentTokens(b, seg, nSeg), 1, make([]float64, len(policy)))
}

// segmentTokens counts each segment's counted rows (targets >= 0).
func segmentTokens(b *Batch, seg []int, nSeg int) []float64 {
	out := make([]float64, nSeg)
	for i, t := range b.Targets {
		if t >= 0 {
			out[seg[i]]++
		}
	}
	return out
}

// Count is the number of pairs in b.
func (o *DPOObjective) Count(b *Batch) int { _, n := segmentIndex(b); return n / 2 }

// Step runs StepDPO with the cached reference.
func (o *DPOObjective) Step(net *Net, b *Batch, denom int) (float64, error) {
	if o.ref == nil {
		o.ref = map[*Batch][]float64{}
	}
	ref, ok := o.ref[b]
	if !ok {
		var err error
		if ref, err = net.SequenceLogProbs(b, true); err != nil {
			return 0, err
		}
		o.ref[b] = ref
	}
	st, err := net.StepDPO(b, ref, denom, o.DPO)
	o.stats.Pairs += st.Pairs
	o.stats.Loss += st.Loss
	o.stats.RewardChosen += st.RewardChosen
	o.stats.RewardRejected += st.RewardRejected
	o.stats.Correct += st.Correct
	return st.Loss, err
}

// TakeMetrics reports the step's mean rewards, margin and accuracy.
func (o *DPOObjective) TakeMetrics() map[string]float64 {
	s := o.stats
	o.stats = DPOStats{}
	if s.Pairs == 0 {
		return nil
	}
	n := float64(s.Pairs)
	return map[string]float64{
		"rewards/chosen":   s.RewardChosen / n,
		"rewards/rejected": s.RewardRejected / n,
		"rewards/margins":  (s.RewardChosen - s.RewardRejected) / n,
		"rewards/accuracy": float64(s.Correct) / n,
	}
}
