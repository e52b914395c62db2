package classify

import (
	"fmt"
)

// maxBatchTokens bounds the tokens of one batched pass (its activations
// are (tokens, intermediate)); a larger batch is split.
const maxBatchTokens = 2048

// logitChunk bounds the (rows, vocab) logits buffer of a batch.
const logitChunk = 16

// ClassifyBatch classifies several inputs with one pass over the weights:
// the prompts' common token prefix is prefilled once, then every prompt's
// remainder is a branch of one ForwardBranches call (a prompt whose labels
// have several tokens gets one branch per label: remainder plus the label's
// earlier tokens). Each result equals Classify's up to float rounding.
func (c *Classifier) ClassifyBatch(texts []string) ([]*Result, error) {
	if len(texts) == 1 {
		r, err := c.Classify(texts[0])
		return []*Result{r}, err
	}
	prompts := make([][]int, len(texts))
	for i, t := range texts {
		prompts[i] = c.tok.Encode(c.prompt(t), true)
		if len(prompts[i]) == 0 {
			return nil, fmt.Errorf("input %d: the prompt is empty", i)
		}
	}
	multi := false
	for _, ids := range c.labelIDs {
		multi = multi || len(ids) > 1
	}
	// Split into groups that fit maxBatchTokens.
	out := make([]*Result, 0, len(texts))
	for start := 0; start < len(prompts); {
		end, tokens := start, 0
		for end < len(prompts) {
			n := c.branchTokens(prompts[end], multi)
			if end > start && tokens+n > maxBatchTokens {
				break
			}
			tokens += n
			end++
		}
		rs, err := c.scoreGroup(prompts[start:end], multi)
		if err != nil {
			return nil, err
		}
		out = append(out, rs...)
		start = end
	}
	return out, nil
}

// branchTokens is an upper bound of the branch tokens a prompt adds.
func (c *Classifier) branchTokens(prompt []int, multi bool) int {
	if !multi {
		return len(prompt)
	}
	n := 0
	for _, ids := range c.labelIDs {
		n += len(prompt) + len(ids) - 1
	}
	return n
}

// scoreGroup scores prompts in one ForwardBranches call after their shared
// prefix.
func (c *Classifier) scoreGroup(prompts [][]int, multi bool) ([]*Result, error) {
	// The shared prefix leaves every prompt at least one token of its own:
	// the row whose logits predict the labels' first tokens.
	p := len(prompts[0]) - 1
	for _, ids := range prompts[1:] {
		p = min(p, len(ids)-1)
		for i := 0; i < p; i++ {
			if ids[i] != prompts[0][i] {
				p = i
				break
			}
		}
	}
	// Branches and, per branch, the hidden rows whose logits are needed.
	type need struct{ row, target int }
	var branches [][]int
	var needs []need     // in reading order
	var needOf [][][]int // [prompt][label] indices into needs
	rowBase := 0
	for _, ids := range prompts {
		suffix := ids[p:]
		perLabel := make([][]int, len(c.labelIDs))
		if !multi {
			branches = append(branches, suffix)
			last := rowBase + len(suffix) - 1
			for j, lab := range c.labelIDs {
				needs = append(needs, need{last, lab[0]})
				perLabel[j] = []int{len(needs) - 1}
			}
			rowBase += len(suffix)
		} else {
			for j, lab := range c.labelIDs {
				br := append(append([]int(nil), suffix...), lab[:len(lab)-1]...)
				branches = append(branches, br)
				first := rowBase + len(suffix) - 1
				for t := range lab {
					needs = append(needs, need{first + t, lab[t]})
					perLabel[j] = append(perLabel[j], len(needs)-1)
				}
				rowBase += len(br)
			}
		}
		needOf = append(needOf, perLabel)
	}
	cache := c.m.NewCache(p + rowBase)
	if p > 0 {
		if _, err := c.m.Forward(c.be, prompts[0][:p], cache, nil); err != nil {
			return nil, err
		}
	}
	bh, err := c.m.ForwardBranches(c.be, branches, cache)
	if err != nil {
		return nil, err
	}
	// Log-probabilities of the needed (row, target) pairs, logitChunk rows
	// at a time; rows repeat (every label's first token reads one row).
	V, D := c.m.Config.VocabSize, c.m.Config.HiddenSize
	lp := make([]float64, len(needs))
	rowLSE := map[int]float64{}
	var rows []int
	rowIdx := map[int]int{}
	for _, n := range needs {
		if _, ok := rowIdx[n.row]; !ok {
			rowIdx[n.row] = len(rows)
			rows = append(rows, n.row)
		}
	}
	hidden := make([]float32, logitChunk*D)
	logits := make([]float32, logitChunk*V)
	rowLogits := map[int][]float32{} // only for the rows of the current chunk
	for s := 0; s < len(rows); s += logitChunk {
		e := min(s+logitChunk, len(rows))
		for i, r := range rows[s:e] {
			copy(hidden[i*D:(i+1)*D], bh[r*D:(r+1)*D])
		}
		c.m.Logits(c.be, logits, hidden, e-s)
		clear(rowLogits)
		for i, r := range rows[s:e] {
			lg := logits[i*V : (i+1)*V]
			rowLogits[r] = lg
			rowLSE[r] = logSumExp(lg)
		}
		for k, n := range needs {
			if lg, ok := rowLogits[n.row]; ok {
				lp[k] = float64(lg[n.target]) - rowLSE[n.row]
			}
		}
	}
	out := make([]*Result, len(prompts))
	for i := range prompts {
		s := make([]float64, len(c.labelIDs))
		for j, ks := range needOf[i] {
			for _, k := range ks {
				s[j] += lp[k]
			}
			if c.opt.LengthNormalize {
				s[j] /= float64(len(c.labelIDs[j]))
			}
		}
		out[i] = c.result(s, len(prompts[i]))
	}
	return out, nil
}
