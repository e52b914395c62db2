package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"distill/core/infer"
	"distill/core/model"
	"distill/core/task/classify"
	"distill/core/tokenizer"
	"distill/core/tokenizer/chat"
)

// Ask is one REPL request: a base model (and optional adapter) and a task
// over one input.
type Ask struct {
	Model, Adapter string
	Task           string   // generate, classify or extract
	Labels         []string // classify
	Schema         string   // extract: JSON Schema file
	Input          string
	MaxTokens      int // generate and extract; 0: 128 and 512
}

// Answer is one event of an Ask: a generated piece of text while it
// streams, then a final value with Done set (Err when it failed).
type Answer struct {
	Piece    string             // generate: the next piece of text
	Done     bool               // the last value; the channel closes after it
	Err      error              //
	Label    string             // classify: the chosen label
	Probs    map[string]float64 // classify: each label's calibrated probability
	RawProbs map[string]float64 // classify: before calibration
	Margin   float64            // classify: top-1 minus top-2 calibrated probability
	JSON     string             // extract: the result, indented
	Valid    bool               // extract: the result satisfies the schema
	Tokens   int                // tokens generated
}

// Ask runs req in a goroutine with the CLI's helpers (generate, classify,
// extract) and streams its answer; the channel ends with a Done value and is
// closed. Cancelling ctx stops a generation.
func (w *Workstation) Ask(ctx context.Context, req Ask) <-chan Answer {
	ch := make(chan Answer, 256)
	go func() {
		defer close(ch)
		a, err := ask(ctx, req, ch)
		a.Done, a.Err = true, err
		ch <- a
	}()
	return ch
}

func ask(ctx context.Context, req Ask, ch chan<- Answer) (Answer, error) {
	dev, quantName, dq, adapter := "cpu", "none", false, req.Adapter
	eng := engineFlags{device: &dev, adapter: &adapter, quant: &quantName, doubleQuant: &dq}
	if req.Model == "" {
		return Answer{}, fmt.Errorf("no base model")
	}
	switch req.Task {
	case "classify":
		if len(req.Labels) < 2 {
			return Answer{}, fmt.Errorf("classify needs at least two labels")
		}
		// Calibrated as `distill classify --calibrate` is: the multi-null
		// contextual calibration through the same template.
		c, _, err := newClassifier(eng, req.Model, req.Labels, "", true, classify.DefaultNullInputs, false, nil)
		if err != nil {
			return Answer{}, err
		}
		defer c.close()
		r, err := c.Classify(req.Input)
		if err != nil {
			return Answer{}, err
		}
		return Answer{Label: r.Label, Probs: r.Probabilities, RawProbs: r.RawProbabilities, Margin: r.Margin}, nil
	case "extract":
		if req.Schema == "" {
			return Answer{}, fmt.Errorf("extract needs a schema file")
		}
		x, err := newExtractor(eng, req.Model, req.Schema, false)
		if err != nil {
			return Answer{}, err
		}
		defer x.close()
		res, err := x.run(ctx, idpPrompt(req.Input), cmp(req.MaxTokens, 512))
		if err != nil {
			return Answer{}, err
		}
		var pretty any
		out := string(res.JSON)
		if json.Unmarshal(res.JSON, &pretty) == nil {
			b, _ := json.MarshalIndent(pretty, "", "  ")
			out = string(b)
		}
		return Answer{JSON: out, Valid: res.Valid, Tokens: res.CompletionTokens}, nil
	case "generate", "":
		tok, err := tokenizer.Load(req.Model)
		if err != nil {
			return Answer{}, err
		}
		be, m, err := openModel(eng, req.Model)
		if err != nil {
			return Answer{}, err
		}
		defer m.Close()
		gc, err := model.LoadGenerationConfig(req.Model)
		if err != nil {
			return Answer{}, err
		}
		opt := infer.GenerateOptions{MaxTokens: cmp(req.MaxTokens, 128), Sampling: samplingFrom(gc, -1, -1, -1, -1, -1, 0),
			EOS: m.EOSIDs(gc), OnText: func(piece string) bool {
				select {
				case ch <- Answer{Piece: piece}:
					return true
				case <-ctx.Done():
					return false
				}
			}}
		if id, ok := tok.EOS(); ok {
			opt.EOS = append(opt.EOS, id)
		}
		// A model with a chat template (the demo, instruct models and the
		// adapters trained on chats) is asked as a chat: the input is a
		// user turn, as `distill generate --chat` sends it.
		ids := tok.Encode(req.Input, true)
		switch tmpl, err := chat.Load(req.Model); {
		case err == nil:
			if _, ids, err = tmpl.Encode(tok, []chat.Message{{Role: "user", Content: req.Input}}, true); err != nil {
				return Answer{}, err
			}
		case !errors.Is(err, chat.ErrNoChatTemplate):
			return Answer{}, err
		}
		res, err := infer.Generate(ctx, be, m, tok, ids, opt)
		if err != nil {
			return Answer{}, err
		}
		return Answer{Tokens: res.CompletionTokens}, nil
	}
	return Answer{}, fmt.Errorf("task %q: want generate, classify or extract", strings.TrimSpace(req.Task))
}

// cmp is n, or def when n is not positive.
func cmp(n, def int) int {
	if n > 0 {
		return n
	}
	return def
}
