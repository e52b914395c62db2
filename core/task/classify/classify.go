// Package classify ranks a fixed set of labels by their likelihood as a
// continuation of a prompt, with multi-null contextual calibration: the
// label distribution the model gives content-free inputs is divided out.
package classify

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"

	"distill/core/model"
	"distill/core/tensor"
)

// Encoder turns text into token ids (the tokenizer implements it).
type Encoder interface {
	Encode(text string, addSpecial bool) []int
}

// Options configure a Classifier.
type Options struct {
	Labels []string
	// Verbalizers maps a label to the text the model writes for it; a
	// missing entry is " " + label.
	Verbalizers map[string]string
	// LengthNormalize divides each label's log-likelihood by its token
	// count, so long verbalisations are not penalised for their length.
	LengthNormalize bool
	// NullInputs are content-free inputs put through the same template;
	// their mean label distribution is divided out (contextual calibration
	// with several null inputs). Empty: no calibration.
	NullInputs []string
	// Bias adds per-label offsets in calibrated log space (see FitBias).
	Bias map[string]float64
	// End are the tokens that end an answer in training (the tokenizer's
	// EOS, which core/data appends after the verbaliser). Where one
	// label's tokens begin another's, every label is scored with End after
	// it: without it the shorter label's likelihood is a factor of the
	// longer one's, which then never wins. Other label sets are scored
	// without it, as zero-shot classification of a base model expects.
	End []int
}

// DefaultNullInputs are the content-free inputs calibration uses when
// asked to calibrate without a list of its own.
var DefaultNullInputs = []string{"N/A", "", "[MASK]", "none", "text"}

// Classifier scores labels for prompts built by a template.
type Classifier struct {
	be       tensor.Backend
	m        *model.Model
	tok      Encoder
	prompt   func(text string) string
	opt      Options
	labelIDs [][]int   // each label's verbalisation, tokenised as a continuation
	nullLogP []float64 // log of the mean null distribution; nil without calibration
}

// Result is one classification.
type Result struct {
	Label            string             `json:"label"`
	Probabilities    map[string]float64 `json:"probabilities"`     // calibrated (and biased), renormalised
	RawProbabilities map[string]float64 `json:"raw_probabilities"` // softmax of the raw scores, for audit
	Confidence       float64            `json:"confidence"`        // probability of the chosen label
	Margin           float64            `json:"margin"`            // top-1 minus top-2 probability
	Scores           map[string]float64 `json:"log_likelihoods"`   // per label, summed (or length-normalised)
	PromptTokens     int                `json:"prompt_tokens"`
}

// New builds a classifier; prompt renders an input through the template.
// With null inputs it scores them once now, so calibration is free later.
func New(be tensor.Backend, m *model.Model, tok Encoder, prompt func(string) string, opt Options) (*Classifier, error) {
	if len(opt.Labels) < 2 {
		return nil, fmt.Errorf("classification needs at least two labels, got %d", len(opt.Labels))
	}
	c := &Classifier{be: be, m: m, tok: tok, prompt: prompt, opt: opt}
	seen := map[string]bool{}
	for _, l := range opt.Labels {
		if seen[l] {
			return nil, fmt.Errorf("label %q given twice", l)
		}
		if strings.TrimSpace(l) == "" {
			return nil, fmt.Errorf("a label is empty")
		}
		if strings.TrimSpace(l) != l {
			// The verbaliser puts the space before the label itself: " x"
			// would score "  x", another token sequence.
			return nil, fmt.Errorf("label %q has spaces around it; give the label alone", l)
		}
		seen[l] = true
		v, ok := opt.Verbalizers[l]
		if !ok {
			v = " " + l
		}
		ids := tok.Encode(v, false)
		if len(ids) == 0 {
			return nil, fmt.Errorf("label %q verbalises to no tokens", l)
		}
		c.labelIDs = append(c.labelIDs, ids)
	}
	if i, j, ok := prefixPair(c.labelIDs); ok {
		if len(c.labelIDs[i]) == len(c.labelIDs[j]) {
			return nil, fmt.Errorf("labels %q and %q verbalise to the same tokens; give them verbalisers that differ", opt.Labels[i], opt.Labels[j])
		}
		if len(opt.End) == 0 {
			return nil, fmt.Errorf("label %q's tokens begin label %q's, so without an end-of-answer token %q would always score higher; the tokenizer has no eos_token (set one in tokenizer_config.json) or give verbalisers that differ", opt.Labels[i], opt.Labels[j], opt.Labels[i])
		}
		for k, ids := range c.labelIDs {
			c.labelIDs[k] = append(slices.Clip(ids), opt.End...)
		}
	}
	for l := range opt.Bias {
		if !seen[l] {
			return nil, fmt.Errorf("bias for unknown label %q", l)
		}
	}
	if len(opt.NullInputs) > 0 {
		var nullScores [][]float64
		for _, in := range opt.NullInputs {
			if len(tok.Encode(prompt(in), true)) == 0 {
				continue // "" through the template "{text}": nothing to condition on, no information either
			}
			s, _, err := c.scores(in)
			if err != nil {
				return nil, fmt.Errorf("null input %q: %w", in, err)
			}
			nullScores = append(nullScores, s)
		}
		if len(nullScores) == 0 {
			return nil, fmt.Errorf("every null input renders to an empty prompt: give null inputs with text, or a template with text around {text}")
		}
		c.nullLogP = meanLogProbs(nullScores)
	}
	return c, nil
}

// NullDistribution is the mean label distribution of the null inputs (nil
// without calibration).
func (c *Classifier) NullDistribution() []float64 {
	if c.nullLogP == nil {
		return nil
	}
	out := make([]float64, len(c.nullLogP))
	for i, l := range c.nullLogP {
		out[i] = math.Exp(l)
	}
	return out
}

// Classify scores every label after the prompt of text.
func (c *Classifier) Classify(text string) (*Result, error) {
	s, n, err := c.scores(text)
	if err != nil {
		return nil, err
	}
	return c.result(s, n), nil
}

// result turns raw label scores into the calibrated decision.
func (c *Classifier) result(s []float64, promptTokens int) *Result {
	raw := softmax(s)
	cal := logSoftmax(s) // not log(raw): finite where raw underflows to 0
	for i := range s {
		if c.nullLogP != nil {
			cal[i] -= c.nullLogP[i]
		}
		cal[i] += c.opt.Bias[c.opt.Labels[i]]
	}
	p := softmax(cal)
	r := &Result{Probabilities: map[string]float64{}, RawProbabilities: map[string]float64{}, Scores: map[string]float64{}, PromptTokens: promptTokens}
	order := make([]int, len(p))
	for i, l := range c.opt.Labels {
		r.Probabilities[l], r.RawProbabilities[l], r.Scores[l] = p[i], raw[i], s[i]
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return p[order[a]] > p[order[b]] })
	r.Label, r.Confidence = c.opt.Labels[order[0]], p[order[0]]
	r.Margin = p[order[0]] - p[order[1]]
	return r
}

// scores returns each label's log-likelihood after text's prompt. The
// prompt is run once; all labels continue from its KV cache together, so a
// classification costs one prefill plus one pass for the labels' tokens.
func (c *Classifier) scores(text string) ([]float64, int, error) {
	prompt := c.tok.Encode(c.prompt(text), true)
	if len(prompt) == 0 {
		return nil, 0, fmt.Errorf("the prompt is empty")
	}
	extra := 0
	for _, ids := range c.labelIDs {
		extra += len(ids) - 1
	}
	V, D := c.m.Config.VocabSize, c.m.Config.HiddenSize
	cache := c.m.NewCache(len(prompt) + extra)
	h, err := c.m.Forward(c.be, prompt, cache, nil)
	if err != nil {
		return nil, 0, err
	}
	first := make([]float32, V) // next-token logits after the prompt, shared by all labels
	c.m.Logits(c.be, first, h[len(h)-D:], 1)
	firstLSE := logSumExp(first)
	// Every label's later tokens in one pass over the weights: each label is
	// a branch that sees the prompt and its own tokens only.
	var branches [][]int
	for _, ids := range c.labelIDs {
		branches = append(branches, ids[:len(ids)-1])
	}
	bh, err := c.m.ForwardBranches(c.be, branches, cache)
	if err != nil {
		return nil, 0, err
	}
	rows := len(bh) / D
	logits := make([]float32, rows*V)
	if rows > 0 {
		c.m.Logits(c.be, logits, bh, rows)
	}
	out := make([]float64, len(c.labelIDs))
	row := 0
	for i, ids := range c.labelIDs {
		s := float64(first[ids[0]]) - firstLSE
		for t := 1; t < len(ids); t++ {
			lg := logits[row*V : (row+1)*V]
			s += float64(lg[ids[t]]) - logSumExp(lg)
			row++
		}
		if c.opt.LengthNormalize {
			s /= float64(len(ids))
		}
		out[i] = s
	}
	return out, len(prompt), nil
}

// prefixPair finds labels i and j where i's tokens begin j's.
func prefixPair(labels [][]int) (i, j int, ok bool) {
	for i, a := range labels {
		for j, b := range labels {
			if i != j && len(a) <= len(b) && slices.Equal(a, b[:len(a)]) {
				return i, j, true
			}
		}
	}
	return 0, 0, false
}

func softmax(x []float64) []float64 {
	m := math.Inf(-1)
	for _, v := range x {
		m = max(m, v)
	}
	out := make([]float64, len(x))
	var sum float64
	for i, v := range x {
		out[i] = math.Exp(v - m)
		sum += out[i]
	}
	for i := range out {
		out[i] /= sum
	}
	return out
}

// meanLogProbs is the log of the mean label distribution of several score
// vectors, computed in log space (log-mean-exp) so that a label whose
// probability underflows keeps a finite log.
func meanLogProbs(scores [][]float64) []float64 {
	if len(scores) == 0 {
		return nil
	}
	perLabel := make([][]float64, len(scores[0]))
	for _, s := range scores {
		for i, lp := range logSoftmax(s) {
			perLabel[i] = append(perLabel[i], lp)
		}
	}
	out := make([]float64, len(perLabel))
	for i, lps := range perLabel {
		out[i] = logSumExp64(lps) - math.Log(float64(len(lps)))
	}
	return out
}

// logSoftmax is x minus its log-sum-exp.
func logSoftmax(x []float64) []float64 {
	lse := logSumExp64(x)
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = v - lse
	}
	return out
}

func logSumExp64(x []float64) float64 {
	m := math.Inf(-1)
	for _, v := range x {
		m = max(m, v)
	}
	if math.IsInf(m, -1) {
		return m
	}
	var sum float64
	for _, v := range x {
		sum += math.Exp(v - m)
	}
	return m + math.Log(sum)
}

func logSumExp(x []float32) float64 {
	m := math.Inf(-1)
	for _, v := range x {
		m = max(m, float64(v))
	}
	var s float64
	for _, v := range x {
		s += math.Exp(float64(v) - m)
	}
	return m + math.Log(s)
}
