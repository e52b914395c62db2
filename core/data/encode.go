package data

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"distill/core/tokenizer"
	"distill/core/tokenizer/chat"
	"distill/core/train"
)

// Encoder turns dataset rows into token ids with loss masks.
//
// Without a chat template (or without Opt.Chat), a row with a prompt and a
// completion (prompt_completion; classification: prompt and verbaliser;
// idp: prompt and target JSON) becomes
//
//	Encode(prompt, addSpecial=true) ++ Encode(completion, false) ++ [EOS]
//
// with the loss on the completion and EOS. Prompt and completion are
// tokenized apart because that is how they meet at inference, where the
// task pipelines tokenize the prompt and then generate or score a
// continuation: the model trains on the boundary it will see. (Joined text
// can tokenize differently at the seam; Llama 2 turns " positive" after a
// prompt into "▁", "▁positive".) With Opt.Chat they are rendered
// with the chat template as a user turn and an assistant turn, and messages
// rows always are; the loss then covers the assistant turns as the template
// writes them, up to and including the end-of-turn token (see
// chatEncoding). The first token of an example is never counted: nothing
// predicts it.
type Encoder struct {
	Tok  *tokenizer.Tokenizer
	Tmpl *chat.Template // nil for a model without a chat template
	// Opt's Chat, MaxTokens, TruncateLeft and Strict apply here. The prompt
	// template and verbalisers are the dataset's (the Options given to
	// Load); if Opt sets them too they must be the same.
	Opt Options

	trailerOnce sync.Once // the template's trailers (span.go), found once
	trailerList []string
}

// PreferencePair is one DPO pair: the prompt ids, and the ids of each
// answer (ending with EOS, or with the template's end-of-turn token) that
// follow the prompt.
type PreferencePair struct {
	Prompt, Chosen, Rejected []int
}

// Report counts what encoding did; nothing is dropped without a trace here.
type Report struct {
	Rows       int   // rows given
	Encoded    int   // examples or pairs returned
	Tokens     int   // ids in the returned examples (pairs: prompt + both answers)
	LossTokens int   // ids the loss counts (pairs: both answers)
	Lines      []int // the file line of each returned example or pair
	// Truncated lists the lines of rows longer than MaxTokens whose prompt
	// was cut from the left (TruncateLeft).
	Truncated []int
	// TooLong lists the lines of rows longer than MaxTokens that were
	// skipped (no TruncateLeft, or the trained part alone is too long).
	TooLong []int
	// Shortened lists the lines of conversations too long as a whole that
	// were kept up to an earlier assistant turn (the last turns dropped).
	Shortened []int
	// Failed lists rows that could not be encoded (e.g. the chat template
	// raised an error on them); with Strict the first is returned as the
	// error instead.
	Failed []RowError
}

// String summarises the report in one line.
func (r Report) String() string {
	s := fmt.Sprintf("%d of %d rows encoded, %d tokens (%d in the loss)", r.Encoded, r.Rows, r.Tokens, r.LossTokens)
	if len(r.Truncated) > 0 {
		s += fmt.Sprintf(", %d truncated from the left", len(r.Truncated))
	}
	if len(r.Shortened) > 0 {
		s += fmt.Sprintf(", %d conversations kept up to an earlier assistant turn (too long whole)", len(r.Shortened))
	}
	if len(r.TooLong) > 0 {
		s += fmt.Sprintf(", %d skipped as too long", len(r.TooLong))
	}
	if len(r.Failed) > 0 {
		s += fmt.Sprintf(", %d failed (first: %v)", len(r.Failed), &r.Failed[0])
	}
	return s
}

// check validates the encoder against a dataset before any row is encoded.
func (e *Encoder) check(d *Dataset) error {
	if e.Tok == nil {
		return errors.New("encode: no tokenizer")
	}
	if e.Opt.MaxTokens < 0 {
		return fmt.Errorf("encode: MaxTokens %d is negative", e.Opt.MaxTokens)
	}
	if e.Opt.Template != "" && e.Opt.Template != d.opt.Template {
		return fmt.Errorf("encode %s: the encoder's prompt template differs from the one the dataset was loaded with; pass the same Options to Load and the Encoder", d.Path)
	}
	if e.Opt.Verbalizers != nil && !maps.Equal(e.Opt.Verbalizers, d.opt.Verbalizers) {
		return fmt.Errorf("encode %s: the encoder's verbalisers differ from the ones the dataset was loaded with; pass the same Options to Load and the Encoder", d.Path)
	}
	needChat := e.Opt.Chat || d.Format == FormatMessages ||
		slices.ContainsFunc(d.Rows, func(r Row) bool { return r.PromptMessages != nil })
	if needChat && e.Tmpl == nil {
		why := "the chat option is set"
		if !e.Opt.Chat {
			why = "its rows are conversations"
		}
		return fmt.Errorf("encode %s: %s, but the model has no chat template (a base model?); use a chat model or prompt/completion rows without the chat option", d.Path, why)
	}
	if _, ok := e.Tok.EOS(); !ok && !e.Opt.Chat && d.Format != FormatMessages {
		return fmt.Errorf("encode %s: the tokenizer has no eos_token to end completions with; set eos_token in tokenizer_config.json", d.Path)
	}
	return nil
}

// fail records a row that could not be encoded, or returns it in strict
// mode.
func (e *Encoder) fail(rep *Report, d *Dataset, r Row, err error) error {
	re := RowError{Path: d.Path, Line: r.Line, Msg: err.Error()}
	if e.Opt.Strict {
		return &re
	}
	rep.Failed = append(rep.Failed, re)
	return nil
}

// Examples encodes every row of a prompt_completion, messages,
// classification or idp dataset (for SFT and KD).
func (e *Encoder) Examples(d *Dataset) ([]train.Example, Report, error) {
	rep := Report{Rows: len(d.Rows)}
	if d.Format == FormatPreference {
		return nil, rep, fmt.Errorf("encode %s: a preference dataset gives pairs for DPO, not examples", d.Path)
	}
	if err := e.check(d); err != nil {
		return nil, rep, err
	}
	var out []train.Example
	for _, r := range d.Rows {
		ex, err := e.example(d, r)
		if err != nil {
			if err := e.fail(&rep, d, r, err); err != nil {
				return nil, rep, err
			}
			continue
		}
		fitted := e.fit(&ex)
		if fitted == fitTooLong && d.Format == FormatMessages {
			if short, ok := e.shorten(r.Messages); ok {
				ex, fitted = short, fitOK
				rep.Shortened = append(rep.Shortened, r.Line)
			}
		}
		switch fitted {
		case fitTruncated:
			rep.Truncated = append(rep.Truncated, r.Line)
		case fitTooLong:
			rep.TooLong = append(rep.TooLong, r.Line)
			continue
		}
		out = append(out, ex)
		rep.Encoded++
		rep.Lines = append(rep.Lines, r.Line)
		rep.Tokens += len(ex.IDs)
		for _, m := range ex.Mask {
			if m {
				rep.LossTokens++
			}
		}
	}
	return out, rep, nil
}

// example encodes one row.
func (e *Encoder) example(d *Dataset, r Row) (train.Example, error) {
	var prompt, completion string
	switch d.Format {
	case FormatMessages:
		return e.chatExample(r.Messages, false)
	case FormatPromptCompletion:
		prompt, completion = r.Prompt, r.Completion
	case FormatClassification:
		prompt, completion = d.ClassificationPrompt(r), d.Verbalizer(r.Label)
		if e.Opt.Chat {
			// An assistant turn holds the label's word itself; the leading
			// space a verbaliser has for plain continuation is dropped.
			completion = strings.TrimSpace(completion)
		}
	case FormatIDP:
		prompt, completion = d.IDPPrompt(r), d.IDPCompletion(r)
	default:
		return train.Example{}, fmt.Errorf("encode: %s rows give no SFT examples", d.Format)
	}
	if e.Opt.Chat {
		return e.chatExample([]chat.Message{{Role: "user", Content: prompt}, {Role: "assistant", Content: completion}}, true)
	}
	eos, _ := e.Tok.EOS()
	p := e.Tok.Encode(prompt, true)
	c := append(e.Tok.Encode(completion, false), eos)
	ex := train.Example{IDs: append(p, c...), Mask: make([]bool, len(p)+len(c))}
	for i := len(p); i < len(ex.Mask); i++ {
		ex.Mask[i] = true
	}
	ex.Mask[0] = false
	return ex, nil
}

// chatExample renders a conversation and masks its assistant turns (only
// the last one with lastOnly).
func (e *Encoder) chatExample(msgs []chat.Message, lastOnly bool) (train.Example, error) {
	ids, spans, err := e.chatEncoding(msgs, lastOnly)
	if err != nil {
		return train.Example{}, err
	}
	mask := make([]bool, len(ids))
	for _, s := range spans {
		for i := s[0]; i < s[1]; i++ {
			mask[i] = true
		}
	}
	if len(mask) > 0 {
		mask[0] = false
	}
	return train.Example{IDs: ids, Mask: mask}, nil
}

// shorten keeps a conversation too long as a whole up to its last
// assistant turn before the end that fits MaxTokens (its earlier turns are
// still good data; LLaMA-Factory and TRL cut such conversations too),
// reporting false when none does.
func (e *Encoder) shorten(msgs []chat.Message) (train.Example, bool) {
	for j := len(msgs) - 2; j > 0; j-- {
		if msgs[j].Role != "assistant" {
			continue
		}
		ex, err := e.chatExample(msgs[:j+1], false)
		if err != nil {
			return train.Example{}, false
		}
		if e.fit(&ex) != fitTooLong {
			return ex, true
		}
	}
	return train.Example{}, false
}

type fitResult int

const (
	fitOK fitResult = iota
	fitTruncated
	fitTooLong
)

// fit applies MaxTokens to an example: cut prompt tokens from the left
// (after a leading BOS) with TruncateLeft, keeping at least one token
// before the first counted one; otherwise, or when that is not enough,
// the example is too long.
func (e *Encoder) fit(ex *train.Example) fitResult {
	limit := e.Opt.MaxTokens
	if limit == 0 || len(ex.IDs) <= limit {
		return fitOK
	}
	if !e.Opt.TruncateLeft {
		return fitTooLong
	}
	first := slices.Index(ex.Mask, true)
	if first < 0 {
		first = len(ex.IDs)
	}
	keep := e.keepHead(ex.IDs)
	cut := len(ex.IDs) - limit
	if first-keep-1 < cut {
		return fitTooLong
	}
	ex.IDs = slices.Delete(ex.IDs, keep, keep+cut)
	ex.Mask = slices.Delete(ex.Mask, keep, keep+cut)
	return fitTruncated
}

// keepHead is 1 when ids start with the tokenizer's BOS, which left
// truncation keeps.
func (e *Encoder) keepHead(ids []int) int {
	if bos, ok := e.Tok.BOS(); ok && len(ids) > 0 && ids[0] == bos {
		return 1
	}
	return 0
}

// Pairs encodes every row of a preference dataset (for DPO). A pair
// trains as two sequences side by side in one micro-batch — prompt and
// chosen, prompt and rejected — so MaxTokens bounds 2·prompt + chosen +
// rejected, and each prompt token cut from the left saves two.
func (e *Encoder) Pairs(d *Dataset) ([]PreferencePair, Report, error) {
	rep := Report{Rows: len(d.Rows)}
	if d.Format != FormatPreference {
		return nil, rep, fmt.Errorf("encode %s: preference pairs need a preference dataset, not %s", d.Path, d.Format)
	}
	if err := e.check(d); err != nil {
		return nil, rep, err
	}
	var out []PreferencePair
	for _, r := range d.Rows {
		p, err := e.pair(r)
		if err != nil {
			if err := e.fail(&rep, d, r, err); err != nil {
				return nil, rep, err
			}
			continue
		}
		if limit := e.Opt.MaxTokens; limit > 0 {
			long := 2*len(p.Prompt) + len(p.Chosen) + len(p.Rejected)
			if long > limit {
				keep := e.keepHead(p.Prompt)
				cut := (long - limit + 1) / 2
				if !e.Opt.TruncateLeft || len(p.Prompt)-keep-1 < cut {
					rep.TooLong = append(rep.TooLong, r.Line)
					continue
				}
				p.Prompt = slices.Delete(p.Prompt, keep, keep+cut)
				rep.Truncated = append(rep.Truncated, r.Line)
			}
		}
		out = append(out, p)
		rep.Encoded++
		rep.Lines = append(rep.Lines, r.Line)
		rep.Tokens += len(p.Prompt) + len(p.Chosen) + len(p.Rejected)
		rep.LossTokens += len(p.Chosen) + len(p.Rejected)
	}
	return out, rep, nil
}

// errNoPrompt refuses a pair whose prompt is no tokens: a sequence's first
// token is never scored, so each answer's first token — often the one that
// tells them apart — would be left out of the comparison.
var errNoPrompt = errors.New("the prompt encodes to no tokens (and the tokenizer adds no BOS): give the pair a prompt")

// pair encodes one preference row.
func (e *Encoder) pair(r Row) (PreferencePair, error) {
	if r.PromptMessages == nil && !e.Opt.Chat {
		eos, _ := e.Tok.EOS()
		p := PreferencePair{
			Prompt:   e.Tok.Encode(r.Prompt, true),
			Chosen:   append(e.Tok.Encode(r.Chosen, false), eos),
			Rejected: append(e.Tok.Encode(r.Rejected, false), eos),
		}
		if len(p.Prompt) == 0 {
			return p, errNoPrompt
		}
		return p, nil
	}
	msgs := r.PromptMessages
	if msgs == nil {
		msgs = []chat.Message{{Role: "user", Content: r.Prompt}}
	}
	var p PreferencePair
	for i, answer := range []string{r.Chosen, r.Rejected} {
		conv := append(slices.Clip(msgs), chat.Message{Role: "assistant", Content: answer})
		ids, spans, err := e.chatEncoding(conv, true)
		if err != nil {
			return p, err
		}
		s := spans[0]
		prompt, ans := ids[:s[0]], ids[s[0]:s[1]]
		if i == 0 {
			p.Prompt, p.Chosen = prompt, ans
			continue
		}
		if !slices.Equal(prompt, p.Prompt) {
			return p, errors.New("the prompt tokenizes differently before the chosen and the rejected answer; cannot share one prompt")
		}
		p.Rejected = ans
	}
	if len(p.Prompt) == 0 {
		return p, errNoPrompt
	}
	return p, nil
}
