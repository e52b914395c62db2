package classify

import (
	"fmt"

	"distill/core/eval"
)

// Scored is a labelled input already scored, so bias fitting can try many
// offsets without running the model again.
type Scored struct {
	Gold   string
	scores []float64
}

// Score runs the model on text once and keeps its raw label scores.
func (c *Classifier) Score(text, gold string) (Scored, *Result, error) {
	s, n, err := c.scores(text)
	if err != nil {
		return Scored{}, nil, err
	}
	return Scored{Gold: gold, scores: s}, c.result(s, n), nil
}

// Predict re-decides a scored input with the classifier's current bias.
func (c *Classifier) Predict(s Scored) *Result { return c.result(s.scores, 0) }

// FitBias chooses per-label offsets in calibrated log space that maximise
// macro-F1 on validation inputs: coordinate ascent over a grid of offsets
// in [-4, 4] nats, the first label's fixed at 0 (only differences matter),
// a few rounds. The fitted offsets are kept in the classifier and returned.
func (c *Classifier) FitBias(val []Scored) (map[string]float64, float64, error) {
	if len(val) == 0 {
		return nil, 0, fmt.Errorf("fit bias: no validation inputs")
	}
	labels := c.opt.Labels
	c.opt.Bias = map[string]float64{}
	score := func() (float64, error) {
		gold, pred := make([]string, len(val)), make([]string, len(val))
		for i, s := range val {
			gold[i], pred[i] = s.Gold, c.Predict(s).Label
		}
		r, err := eval.Classification(labels, gold, pred, nil)
		return r.MacroF1, err
	}
	best, err := score()
	if err != nil {
		return nil, 0, err
	}
	for round := 0; round < 3; round++ {
		improved := false
		for _, l := range labels[1:] {
			keep := c.opt.Bias[l]
			for step := -40; step <= 40; step++ {
				c.opt.Bias[l] = float64(step) / 10
				f, _ := score()
				if f > best+1e-12 {
					best, keep, improved = f, c.opt.Bias[l], true
				}
			}
			c.opt.Bias[l] = keep
		}
		if !improved {
			break
		}
	}
	out := map[string]float64{}
	for l, b := range c.opt.Bias {
		out[l] = b
	}
	return out, best, nil
}
