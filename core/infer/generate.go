package infer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"distill/core/model"
	"distill/core/tensor"
)

// Detokenizer turns ids back into text; the tokenizer implements it.
type Detokenizer interface {
	Decode(ids []int, skipSpecial bool) string
}

// GenerateOptions configure one generation.
type GenerateOptions struct {
	MaxTokens int
	Sampling  Sampling
	EOS       []int    // stop after emitting any of these (not included in Text)
	Stop      []string // stop strings: generation ends before the first match
	// OnText receives each new piece of completed text as it is generated
	// (held back while it could still be the start of a stop string).
	// Returning false stops generation.
	OnText func(piece string) bool
}

// Result is a finished generation.
type Result struct {
	Text             string
	IDs              []int // generated ids (EOS excluded)
	PromptTokens     int
	CompletionTokens int
	StopReason       string  // "eos", "stop", "length", "callback", "cancelled"
	PrefillSeconds   float64 // time to process the prompt
	DecodeSeconds    float64 // time spent generating after the prompt
	TokensPerSecond  float64 // completion tokens / decode seconds
}

// ErrEmptyPrompt is returned for a prompt with no tokens: there is nothing
// to condition on.
var ErrEmptyPrompt = errors.New("the prompt is empty: give at least one token")

// Generate runs prefill on prompt and then samples up to MaxTokens tokens,
// reusing the KV cache for every step.
func Generate(ctx context.Context, be tensor.Backend, m *model.Model, tok Detokenizer, prompt []int, opt GenerateOptions) (*Result, error) {
	if len(prompt) == 0 {
		return nil, ErrEmptyPrompt
	}
	if opt.MaxTokens <= 0 {
		opt.MaxTokens = 256
	}
	V, D := m.Config.VocabSize, m.Config.HiddenSize
	c := m.NewCache(len(prompt) + opt.MaxTokens)
	sampler := NewSampler(opt.Sampling)
	res := &Result{PromptTokens: len(prompt)}
	logits := make([]float32, V)
	hidden := make([]float32, prefillChunk*D)
	isEOS := map[int]bool{}
	for _, id := range opt.EOS {
		isEOS[id] = true
	}

	t0 := time.Now()
	var h []float32
	for start := 0; start < len(prompt); start += prefillChunk {
		end := min(start+prefillChunk, len(prompt))
		var err error
		if h, err = m.Forward(be, prompt[start:end], c, hidden); err != nil {
			return nil, err
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	m.Logits(be, logits, h[len(h)-D:], 1)
	t1 := time.Now()
	res.PrefillSeconds = t1.Sub(t0).Seconds()

	history := append([]int(nil), prompt...)
	var out *streamText
	if tok != nil {
		out = newStreamText(tok, opt.Stop)
	}
	res.StopReason = "length"
	for len(res.IDs) < opt.MaxTokens {
		if ctx.Err() != nil {
			res.StopReason = "cancelled"
			break
		}
		id, err := sampler.Next(logits, history)
		if err != nil {
			return res, fmt.Errorf("token %d: %w", len(res.IDs)+1, err)
		}
		if isEOS[id] {
			res.StopReason = "eos"
			break
		}
		res.IDs = append(res.IDs, id)
		history = append(history, id)
		if out != nil {
			if out.add(id) {
				res.StopReason = "stop"
				break
			}
			if piece := out.ready(); opt.OnText != nil && piece != "" && !opt.OnText(piece) {
				res.StopReason = "callback"
				break
			}
		}
		if len(res.IDs) == opt.MaxTokens {
			break
		}
		h, err := m.Forward(be, []int{id}, c, hidden)
		if err != nil {
			return nil, err
		}
		m.Logits(be, logits, h, 1)
	}
	if out != nil {
		rest := out.finish(res.StopReason == "stop")
		if opt.OnText != nil && rest != "" && res.StopReason != "callback" {
			opt.OnText(rest)
		}
		res.Text = out.text
	}
	res.CompletionTokens = len(res.IDs)
	res.DecodeSeconds = time.Since(t1).Seconds()
	if res.DecodeSeconds > 0 {
		res.TokensPerSecond = float64(res.CompletionTokens) / res.DecodeSeconds
	}
	return res, nil
}
