// Package infer runs a loaded model: log-likelihood scoring, sampling and
// generation with a KV cache.
package infer

import (
	"fmt"
	"math"

	"distill/core/model"
	"distill/core/tensor"
)

// prefillChunk bounds the activations of one forward call; logitRows bounds
// the (rows, vocab) logits buffer, so scoring a long sequence against a 150k
// vocabulary never materialises all of its logits at once.
const (
	prefillChunk = 256
	logitRows    = 16
)

// LogProbs returns lp[t-1] = log p(ids[t] | ids[:t]) for t = 1..len(ids)-1,
// with a full-vocabulary log-softmax accumulated in float64.
func LogProbs(be tensor.Backend, m *model.Model, ids []int) ([]float64, error) {
	if len(ids) < 2 {
		return []float64{}, nil
	}
	c := m.NewCache(len(ids))
	V, D := m.Config.VocabSize, m.Config.HiddenSize
	logits := make([]float32, logitRows*V)
	hidden := make([]float32, prefillChunk*D)
	out := make([]float64, 0, len(ids)-1)
	for start := 0; start < len(ids)-1; start += prefillChunk {
		end := min(start+prefillChunk, len(ids)-1) // the last id is only a target
		h, err := m.Forward(be, ids[start:end], c, hidden)
		if err != nil {
			return nil, err
		}
		for r := 0; r < end-start; r += logitRows {
			n := min(logitRows, end-start-r)
			m.Logits(be, logits, h[r*D:], n)
			for i := 0; i < n; i++ {
				row := logits[i*V : (i+1)*V]
				target := ids[start+r+i+1]
				if target < 0 || target >= V {
					return nil, fmt.Errorf("token id %d at position %d is outside the vocabulary [0, %d)", target, start+r+i+1, V)
				}
				out = append(out, float64(row[target])-LogSumExp(row))
			}
		}
	}
	return out, nil
}

// LogSumExp is log Σ exp(x) in float64, stable for any range.
func LogSumExp(x []float32) float64 {
	maxV := math.Inf(-1)
	for _, v := range x {
		if float64(v) > maxV {
			maxV = float64(v)
		}
	}
	if math.IsInf(maxV, -1) {
		return maxV
	}
	var s float64
	for _, v := range x {
		s += math.Exp(float64(v) - maxV)
	}
	return maxV + math.Log(s)
}
