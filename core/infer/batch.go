package infer

import (
	"context"
	"fmt"
	"time"

	"distill/core/model"
	"distill/core/tensor"
)

// BatchItem is one sequence of a batched generation.
type BatchItem struct {
	Ctx    context.Context // cancelling it stops this sequence only
	Prompt []int
	Opt    GenerateOptions
}

// GenerateBatch generates for several prompts together. The prompts are
// prefilled in one pass (their shared prefix once, the rest as branches;
// see prefillBatch); then every step feeds the next token of every live
// sequence through the model at once (Model.ForwardStep), so B sequences
// decode for about the weight traffic of one. Each sequence stops on its own
// terms (EOS, a stop string, MaxTokens, its context, OnText returning false)
// and gets the Result Generate would give it, up to the float rounding of
// batched GEMMs. errs[i] is set for a sequence that failed (an empty
// prompt, a context overflow); the others go on.
func GenerateBatch(be tensor.Backend, m *model.Model, tok Detokenizer, items []BatchItem) ([]*Result, []error) {
	results, errs := make([]*Result, len(items)), make([]error, len(items))
	ptrs := make([]*BatchItem, len(items))
	index := map[*BatchItem]int{}
	for i := range items {
		ptrs[i] = &items[i]
		index[ptrs[i]] = i
	}
	b := NewBatch(be, m, tok)
	copy(errs, b.Add(ptrs))
	for b.Len() > 0 {
		for _, f := range b.Step() {
			i := index[f.Item]
			results[i], errs[i] = f.Result, f.Err
		}
	}
	return results, errs
}

// Batch decodes several sequences together, one token of each per Step.
// Sequences may join between steps (continuous batching) and leave as soon
// as they finish. Not safe for concurrent use.
type Batch struct {
	be      tensor.Backend
	m       *model.Model
	tok     Detokenizer
	seqs    []*batchSeq
	scratch *model.Cache
	logits  []float32
	// filling are sequences that joined with a prompt longer than a chunk
	// while others decoded: Step prefills one chunk of the first of them
	// before its decode step, so the decoding ones go on between chunks
	// instead of waiting for the whole prompt.
	filling []*batchSeq
}

// Finished is a sequence that left the batch: its Result, or Err when it
// failed (Result is nil then).
type Finished struct {
	Item   *BatchItem
	Result *Result
	Err    error
}

// NewBatch starts an empty batch over m.
func NewBatch(be tensor.Backend, m *model.Model, tok Detokenizer) *Batch {
	return &Batch{be: be, m: m, tok: tok}
}

// Len is the number of live sequences (those still prefilling included).
func (b *Batch) Len() int { return len(b.seqs) + len(b.filling) }

// Add prefills items (together, see prefillBatch) and makes them live;
// errs[i] is set, and the item not added, when items[i] fails (an empty
// prompt, a context overflow, its context already done). Joining a batch
// that decodes, an item whose prompt is longer than a prefill chunk is
// prefilled by the next steps instead, a chunk a step (a failure then
// comes out of Step); the arithmetic is the same, and its PrefillSeconds
// spans the steps between its chunks.
func (b *Batch) Add(items []*BatchItem) []error {
	errs := make([]error, len(items))
	var added []*batchSeq
	for i, it := range items {
		s, err := newBatchSeq(b.m, b.tok, it)
		if err != nil {
			errs[i] = err
			continue
		}
		s.index = i
		if b.Len() > 0 && len(it.Prompt) > prefillChunk { // behind those prefilling already
			b.filling = append(b.filling, s)
			continue
		}
		added = append(added, s)
	}
	for i, err := range prefillBatch(b.be, b.m, added) {
		if err != nil {
			errs[added[i].index] = err
			continue
		}
		b.seqs = append(b.seqs, added[i])
	}
	return errs
}

// Step samples the next token of every live sequence, feeds the ones that
// go on through the model in one ForwardStep, and returns the sequences
// that finished in this step.
func (b *Batch) Step() []Finished {
	var done []Finished
	kept := b.filling[:0] // joiners whose client left while they waited leave now
	for _, s := range b.filling {
		if err := s.it.Ctx.Err(); err != nil {
			done = append(done, Finished{Item: s.it, Err: err})
		} else {
			kept = append(kept, s)
		}
	}
	b.filling = kept
	if len(b.filling) > 0 {
		s := b.filling[0]
		if end, err := s.prefillChunk(b.be, b.m); err != nil {
			b.filling = b.filling[1:]
			done = append(done, Finished{Item: s.it, Err: err})
		} else if end {
			b.filling = b.filling[1:]
			b.seqs = append(b.seqs, s)
		}
	}
	var ids []int
	var caches []*model.Cache
	var stepping []*batchSeq
	for _, s := range b.seqs {
		if id, more := s.next(); more {
			ids, caches, stepping = append(ids, id), append(caches, s.c), append(stepping, s)
		} else if s.err != nil {
			done = append(done, Finished{Item: s.it, Err: s.err})
		} else {
			done = append(done, Finished{Item: s.it, Result: s.finish()})
		}
	}
	b.seqs = stepping
	B := len(stepping)
	if B == 0 {
		return done // a sequence prefilling goes on at the next step
	}
	V, D := b.m.Config.VocabSize, b.m.Config.HiddenSize
	if b.scratch == nil || b.scratch.Cap < B {
		b.scratch = b.m.NewCache(B)
	}
	h, err := b.m.ForwardStep(b.be, ids, caches, b.scratch)
	if err != nil {
		for _, s := range stepping {
			done = append(done, Finished{Item: s.it, Err: err})
		}
		b.seqs = nil
		return done
	}
	if len(b.logits) < B*V {
		b.logits = make([]float32, B*V)
	}
	for r := 0; r < B; r += logitRows {
		n := min(logitRows, B-r)
		b.m.Logits(b.be, b.logits[r*V:], h[r*D:], n)
	}
	for i, s := range stepping {
		copy(s.logits, b.logits[i*V:(i+1)*V])
	}
	return done
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
	out     *streamText // the text so far; nil without a detokenizer
	err     error       // why it ended, when not by a stop reason (non-finite logits)
	t1      time.Time   // prefill's end
	fill    PromptFill  // its prompt's prefill, alone or with others (FillTogether)
	done    bool
}

// newBatchSeq sets up a sequence's state and its own cache.
func newBatchSeq(m *model.Model, tok Detokenizer, it *BatchItem) (*batchSeq, error) {
	if len(it.Prompt) == 0 {
		return nil, ErrEmptyPrompt
	}
	if it.Ctx == nil {
		it.Ctx = context.Background()
	}
	if it.Opt.MaxTokens <= 0 {
		it.Opt.MaxTokens = 256
	}
	if err := m.CheckContext(len(it.Prompt)); err != nil {
		return nil, err
	}
	s := &batchSeq{it: it, tok: tok, c: m.NewCache(len(it.Prompt) + it.Opt.MaxTokens), sampler: NewSampler(it.Opt.Sampling),
		res: &Result{PromptTokens: len(it.Prompt), StopReason: "length"}, logits: make([]float32, m.Config.VocabSize),
		history: append([]int(nil), it.Prompt...), isEOS: map[int]bool{}}
	s.fill = PromptFill{Prompt: it.Prompt, Cache: s.c, Logits: s.logits}
	for _, id := range it.Opt.EOS {
		s.isEOS[id] = true
	}
	if tok != nil {
		s.out = newStreamText(tok, it.Opt.Stop)
	}
	return s, nil
}

// prefillBatch fills every sequence's cache with its prompt and sets its
// next-token logits, short prompts in one pass (FillTogether). errs[i]
// belongs to seqs[i].
func prefillBatch(be tensor.Backend, m *model.Model, seqs []*batchSeq) []error {
	fills, ctxs := make([]*PromptFill, len(seqs)), make([]context.Context, len(seqs))
	for i, s := range seqs {
		fills[i], ctxs[i] = &s.fill, s.it.Ctx
	}
	errs := FillTogether(be, m, fills, ctxs)
	for i, s := range seqs {
		if errs[i] == nil {
			s.t1 = s.fill.End
			s.res.PrefillSeconds = s.fill.Seconds()
		}
	}
	return errs
}

// prefillChunk runs the next chunk of the sequence's prompt; end is true
// once the whole prompt is in, its next-token logits set.
func (s *batchSeq) prefillChunk(be tensor.Backend, m *model.Model) (end bool, err error) {
	if end, err = s.fill.Chunk(s.it.Ctx, be, m); end {
		s.t1 = s.fill.End
		s.res.PrefillSeconds = s.fill.Seconds()
	}
	return end, err
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
	id, err := s.sampler.Next(s.logits, s.history)
	if err != nil {
		s.err, s.done = fmt.Errorf("token %d: %w", len(s.res.IDs)+1, err), true
		return 0, false
	}
	if s.isEOS[id] {
		s.res.StopReason = "eos"
		s.done = true
		return 0, false
	}
	s.res.IDs = append(s.res.IDs, id)
	s.history = append(s.history, id)
	if s.tok != nil {
		if s.out.add(id) {
			s.res.StopReason = "stop"
			s.done = true
			return 0, false
		}
		if piece := s.out.ready(); opt.OnText != nil && piece != "" {
			if !opt.OnText(piece) {
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
	if s.out != nil {
		rest := s.out.finish(res.StopReason == "stop")
		if s.it.Opt.OnText != nil && rest != "" && res.StopReason != "callback" {
			s.it.Opt.OnText(rest)
		}
		res.Text = s.out.text
	}
	res.CompletionTokens = len(res.IDs)
	res.DecodeSeconds = time.Since(s.t1).Seconds()
	if res.DecodeSeconds > 0 {
		res.TokensPerSecond = float64(res.CompletionTokens) / res.DecodeSeconds
	}
	return res
}
