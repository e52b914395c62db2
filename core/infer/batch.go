package infer

import (
	"context"
	"strings"
	"time"
	"unicode/utf8"

	"distill/core/model"
	"distill/core/tensor"
)

// BatchItem is one sequence of a batched generation.
type BatchItem struct {
	Ctx    context.Context // cancelling it stops this sequence only
	Prompt []int
	Opt    GenerateOptions
}

// GenerateBatch generates for several prompts together. Each prompt is
// prefilled on its own; then every step feeds the next token of every live
// sequence through the model at once (Model.ForwardStep), so B sequences
// decode for about the weight traffic of one. Each sequence stops on its own
// terms (EOS, a stop string, MaxTokens, its context, OnText returning false)
// and gets the Result Generate would give it, up to the float rounding of
// batched GEMMs. errs[i] is set for a sequence that failed (an empty
// prompt, a context overflow); the others go on.
func GenerateBatch(be tensor.Backend, m *model.Model, tok Detokenizer, items []BatchItem) ([]*Result, []error) {
	results, errs := make([]*Result, len(items)), make([]error, len(items))
	seqs := make([]*batchSeq, 0, len(items))
	for i := range items {
		s, err := newBatchSeq(be, m, tok, &items[i])
		if err != nil {
			errs[i] = err
			continue
		}
		s.index = i
		seqs = append(seqs, s)
	}
	V, D := m.Config.VocabSize, m.Config.HiddenSize
	scratch := m.NewCache(max(1, len(seqs)))
	logits := make([]float32, len(seqs)*V)
	var ids []int
	var caches []*model.Cache
	var stepping []*batchSeq
	for {
		ids, caches, stepping = ids[:0], caches[:0], stepping[:0]
		for _, s := range seqs {
			if s.done {
				continue
			}
			if id, more := s.next(); more {
				ids, caches, stepping = append(ids, id), append(caches, s.c), append(stepping, s)
			}
		}
		if len(stepping) == 0 {
			break
		}
		h, err := m.ForwardStep(be, ids, caches, scratch)
		if err != nil {
			for _, s := range stepping {
				s.done, errs[s.index] = true, err
			}
			continue
		}
		B := len(stepping)
		for r := 0; r < B; r += logitRows {
			n := min(logitRows, B-r)
			m.Logits(be, logits[r*V:], h[r*D:], n)
		}
		for i, s := range stepping {
			copy(s.logits, logits[i*V:(i+1)*V])
		}
	}
	for _, s := range seqs {
		if errs[s.index] == nil {
			results[s.index] = s.finish()
		}
	}
	return results, errs
}

// batchSeq is one sequence's decoding state: Generate's loop, one token at
// a time.
type batchSeq struct {
	index   int
	it      *BatchItem
	tok     Detokenizer
	c       *model.Cache
	sampler *Sampler
	res     *Result
	logits  []float32 // next-token logits
	history []int
	isEOS   map[int]bool
	text    string
	emitted int // bytes of text handed to OnText
	maxStop int
	t1      time.Time
	done    bool
}

// newBatchSeq prefills the prompt into a cache of its own.
func newBatchSeq(be tensor.Backend, m *model.Model, tok Detokenizer, it *BatchItem) (*batchSeq, error) {
	if len(it.Prompt) == 0 {
		return nil, ErrEmptyPrompt
	}
	if it.Ctx == nil {
		it.Ctx = context.Background()
	}
	if it.Opt.MaxTokens <= 0 {
		it.Opt.MaxTokens = 256
	}
	V, D := m.Config.VocabSize, m.Config.HiddenSize
	s := &batchSeq{it: it, tok: tok, c: m.NewCache(len(it.Prompt) + it.Opt.MaxTokens), sampler: NewSampler(it.Opt.Sampling),
		res: &Result{PromptTokens: len(it.Prompt), StopReason: "length"}, logits: make([]float32, V),
		history: append([]int(nil), it.Prompt...), isEOS: map[int]bool{}}
	for _, id := range it.Opt.EOS {
		s.isEOS[id] = true
	}
	for _, st := range it.Opt.Stop {
		s.maxStop = max(s.maxStop, len(st))
	}
	t0 := time.Now()
	hidden := make([]float32, prefillChunk*D)
	var h []float32
	for start := 0; start < len(it.Prompt); start += prefillChunk {
		end := min(start+prefillChunk, len(it.Prompt))
		var err error
		if h, err = m.Forward(be, it.Prompt[start:end], s.c, hidden); err != nil {
			return nil, err
		}
		if err := it.Ctx.Err(); err != nil {
			return nil, err
		}
	}
	m.Logits(be, s.logits, h[len(h)-D:], 1)
	s.t1 = time.Now()
	s.res.PrefillSeconds = s.t1.Sub(t0).Seconds()
	return s, nil
}

// next samples the sequence's next token and handles EOS, stop strings and
// streaming; more is false when the sequence has ended (done is set), else
// id must be fed to the model.
func (s *batchSeq) next() (id int, more bool) {
	opt := &s.it.Opt
	if s.it.Ctx.Err() != nil {
		s.res.StopReason = "cancelled"
		s.done = true
		return 0, false
	}
	id = s.sampler.Next(s.logits, s.history)
	if s.isEOS[id] {
		s.res.StopReason = "eos"
		s.done = true
		return 0, false
	}
	s.res.IDs = append(s.res.IDs, id)
	s.history = append(s.history, id)
	if s.tok != nil {
		s.text = s.tok.Decode(s.res.IDs, true)
		if cut, hit := firstStop(s.text, opt.Stop); hit {
			s.text = s.text[:cut]
			s.res.StopReason = "stop"
			s.done = true
			return 0, false
		}
		safe := len(s.text) - max(s.maxStop-1, 0)
		for safe > s.emitted && safe < len(s.text) && !utf8.RuneStart(s.text[safe]) {
			safe--
		}
		if strings.HasSuffix(s.text, "\uFFFD") {
			safe = min(safe, len(s.text)-len("\uFFFD"))
		}
		if opt.OnText != nil && safe > s.emitted {
			ok := opt.OnText(s.text[s.emitted:safe])
			s.emitted = safe
			if !ok {
				s.res.StopReason = "callback"
				s.done = true
				return 0, false
			}
		}
	}
	if len(s.res.IDs) == opt.MaxTokens {
		s.done = true
		return 0, false
	}
	return id, true
}

func (s *batchSeq) finish() *Result {
	res := s.res
	if s.it.Opt.OnText != nil && s.emitted < len(s.text) && res.StopReason != "callback" {
		s.it.Opt.OnText(s.text[s.emitted:])
	}
	res.Text = s.text
	res.CompletionTokens = len(res.IDs)
	res.DecodeSeconds = time.Since(s.t1).Seconds()
	if res.DecodeSeconds > 0 {
		res.TokensPerSecond = float64(res.CompletionTokens) / res.DecodeSeconds
	}
	return res
}
