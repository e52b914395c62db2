package idp

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"
	"unicode/utf8"

	"distill/core/infer"
	"distill/core/model"
	"distill/core/tensor"
	"distill/core/tokenizer"
)

// BatchItem is one constrained generation of a batch; each has its own
// grammar, budget and sampling.
type BatchItem struct {
	Ctx       context.Context // cancelling it stops this item only
	Grammar   *Grammar
	Prompt    []int
	MaxTokens int // <= 0: DefaultMaxTokens
	Sampling  infer.Sampling
	OnText    func(piece string) bool // as in GenerateStream; may be nil
}

// GenerateBatch runs several constrained generations together: their
// prompts are prefilled (short ones in one pass, Batch.Add), then every step feeds the next token of every
// live item through the model at once (Model.ForwardStep), each masked by
// its own grammar. Each item's Result is what GenerateStream gives it
// alone, up to the float rounding of batched GEMMs; errs[i] is its error.
func GenerateBatch(be tensor.Backend, m *model.Model, tok *tokenizer.Tokenizer, items []BatchItem) ([]Result, []error) {
	results := make([]Result, len(items))
	ptrs := make([]*BatchItem, len(items))
	index := map[*BatchItem]int{}
	for i := range items {
		ptrs[i] = &items[i]
		index[ptrs[i]] = i
	}
	b := NewBatch(be, m, tok)
	errs := b.Add(ptrs)
	for i, err := range errs {
		if err != nil {
			results[i] = Result{PromptTokens: len(items[i].Prompt), StopReason: "length"}
		}
	}
	for b.Len() > 0 {
		for _, f := range b.Step() {
			i := index[f.Item]
			results[i], errs[i] = f.Result, f.Err
		}
	}
	return results, errs
}

// Batch decodes constrained generations together, one token of each per
// Step, each masked by its own grammar. Items may join between steps
// (continuous batching) and leave as soon as they finish. Not safe for
// concurrent use.
type Batch struct {
	be      tensor.Backend
	m       *model.Model
	tok     *tokenizer.Tokenizer
	seqs    []*constrainedSeq
	scratch *model.Cache
	logits  []float32
	// filling are items that joined with a prompt longer than a chunk
	// while others decoded: each Step prefills one chunk of the first
	// before its decode step (as infer.Batch).
	filling []*constrainedSeq
}

// Finished is an item that left the batch: its Result, and Err when it
// failed or its context was cancelled (an OnText that returned false ends
// it as "cancelled" too, without an error).
type Finished struct {
	Item   *BatchItem
	Result Result
	Err    error
}

// NewBatch starts an empty batch over m.
func NewBatch(be tensor.Backend, m *model.Model, tok *tokenizer.Tokenizer) *Batch {
	return &Batch{be: be, m: m, tok: tok}
}

// Len is the number of live items (those still prefilling included).
func (b *Batch) Len() int { return len(b.seqs) + len(b.filling) }

// Add prefills items — short prompts together, their common prefix (the
// instructions and schema an extraction's prompts share) once
// (infer.FillTogether) — and makes them live; errs[i] is set, and the
// item not added, when items[i] fails (an empty prompt, a grammar of
// another tokenizer, its context done while it prefilled). Joining a
// batch that decodes, an item whose prompt is longer than a prefill chunk
// is prefilled by the next steps instead, a chunk a step (a failure then
// comes out of Step); the arithmetic is the same.
func (b *Batch) Add(items []*BatchItem) []error {
	errs := make([]error, len(items))
	decoding := b.Len() > 0 // a long prompt queues behind those prefilling already
	var added []*constrainedSeq
	var at []int // added[j] is items[at[j]]
	for i, it := range items {
		s, err := newConstrainedSeq(b.m, b.tok, it)
		if err != nil {
			errs[i] = err
			continue
		}
		if decoding && len(it.Prompt) > infer.PrefillChunk {
			b.filling = append(b.filling, s)
			continue
		}
		added, at = append(added, s), append(at, i)
	}
	fills, ctxs := make([]*infer.PromptFill, len(added)), make([]context.Context, len(added))
	for j, s := range added {
		fills[j], ctxs[j] = &s.fill, s.it.Ctx
	}
	for j, err := range infer.FillTogether(b.be, b.m, fills, ctxs) {
		if errs[at[j]] = err; err == nil {
			added[j].filled()
			b.seqs = append(b.seqs, added[j])
		}
	}
	return errs
}

// Step samples the next token of every live item under its grammar, feeds
// the ones that go on through the model in one ForwardStep, and returns
// the items that finished in this step.
func (b *Batch) Step() []Finished {
	var done []Finished
	kept := b.filling[:0] // joiners whose client left while they waited leave now
	for _, s := range b.filling {
		if err := s.it.Ctx.Err(); err != nil {
			done = append(done, Finished{Item: s.it, Result: s.res, Err: err})
		} else {
			kept = append(kept, s)
		}
	}
	b.filling = kept
	if len(b.filling) > 0 {
		s := b.filling[0]
		if end, err := s.prefillChunk(b.be, b.m); err != nil {
			b.filling = b.filling[1:]
			done = append(done, Finished{Item: s.it, Result: s.res, Err: err})
		} else if end {
			b.filling = b.filling[1:]
			b.seqs = append(b.seqs, s)
		}
	}
	var ids []int
	var caches []*model.Cache
	var stepping []*constrainedSeq
	for _, s := range b.seqs {
		id, more, err := s.next()
		switch {
		case err != nil:
			done = append(done, Finished{Item: s.it, Result: s.finish(), Err: err})
		case more:
			ids, caches, stepping = append(ids, id), append(caches, s.c), append(stepping, s)
		default:
			r := s.finish()
			var err error
			if r.StopReason == "cancelled" {
				err = s.it.Ctx.Err()
			}
			done = append(done, Finished{Item: s.it, Result: r, Err: err})
		}
	}
	b.seqs = stepping
	B := len(stepping)
	if B == 0 {
		return done // an item prefilling goes on at the next step
	}
	V, D := b.m.Config.VocabSize, b.m.Config.HiddenSize
	if b.scratch == nil || b.scratch.Cap < B {
		b.scratch = b.m.NewCache(B)
	}
	h, err := b.m.ForwardStep(b.be, ids, caches, b.scratch)
	if err != nil {
		for _, s := range stepping {
			done = append(done, Finished{Item: s.it, Result: s.finish(), Err: err})
		}
		b.seqs = nil
		return done
	}
	if len(b.logits) < B*V {
		b.logits = make([]float32, B*V)
	}
	for r := 0; r < B; r += 16 {
		n := min(16, B-r)
		b.m.Logits(b.be, b.logits[r*V:], h[r*D:], n)
	}
	for i, s := range stepping {
		copy(s.logits, b.logits[i*V:(i+1)*V])
	}
	return done
}

// constrainedSeq is one item's decoding state: GenerateStream's loop, one
// token at a time.
type constrainedSeq struct {
	it       *BatchItem
	g        *Grammar
	st       *State
	c        *model.Cache
	sampler  *infer.Sampler
	res      Result
	logits   []float32
	mask     []uint64
	history  []int
	text     []byte
	emitted  int
	t1       time.Time        // prefill's end
	fill     infer.PromptFill // its prompt's prefill
	maskTime time.Duration
	done     bool
}

// newConstrainedSeq checks an item and sets up its decoding state and its
// own cache; its fill (infer.FillTogether, or prefillChunk a chunk a step)
// then runs its prompt.
func newConstrainedSeq(m *model.Model, tok *tokenizer.Tokenizer, it *BatchItem) (*constrainedSeq, error) {
	g := it.Grammar
	if len(it.Prompt) == 0 {
		return nil, infer.ErrEmptyPrompt
	}
	if g == nil {
		return nil, errors.New("idp: no grammar")
	}
	if it.Ctx == nil {
		it.Ctx = context.Background()
	}
	if it.MaxTokens <= 0 {
		it.MaxTokens = DefaultMaxTokens
	}
	if tok.VocabSize() > m.Config.VocabSize {
		return nil, fmt.Errorf("idp: the tokenizer's %d tokens exceed the model's vocabulary of %d", tok.VocabSize(), m.Config.VocabSize)
	}
	if tok.VocabSize() != g.vocab.V {
		return nil, errors.New("idp: the grammar was compiled for another tokenizer")
	}
	if err := m.CheckContext(len(it.Prompt)); err != nil {
		return nil, err
	}
	st := g.Start()
	if err := st.SetMaxTokens(it.MaxTokens); err != nil {
		return nil, err
	}
	V := m.Config.VocabSize
	s := &constrainedSeq{it: it, g: g, st: st, c: m.NewCache(len(it.Prompt) + it.MaxTokens), sampler: infer.NewSampler(it.Sampling),
		res: Result{PromptTokens: len(it.Prompt), StopReason: "length"}, logits: make([]float32, V),
		mask: make([]uint64, g.MaskWords()), history: append([]int(nil), it.Prompt...)}
	s.fill = infer.PromptFill{Prompt: it.Prompt, Cache: s.c, Logits: s.logits}
	return s, nil
}

// prefillChunk runs the next chunk of the prompt; end is true once the
// whole prompt is in, the next-token logits set.
func (s *constrainedSeq) prefillChunk(be tensor.Backend, m *model.Model) (end bool, err error) {
	if end, err = s.fill.Chunk(s.it.Ctx, be, m); end {
		s.filled()
	}
	return end, err
}

// filled notes the prompt's prefill, once its fill has ended.
func (s *constrainedSeq) filled() {
	s.t1 = s.fill.End
	s.res.PrefillSeconds = s.fill.Seconds()
}

// next masks and samples the item's next token; more is false when the
// item has ended (done is set), else id must be fed to the model.
func (s *constrainedSeq) next() (id int, more bool, err error) {
	g, st := s.g, s.st
	end := func(reason string) (int, bool, error) {
		s.res.StopReason, s.done = reason, true
		return 0, false, nil
	}
	if s.it.Ctx.Err() != nil {
		return end("cancelled")
	}
	if st.Closed() {
		return end("closed")
	}
	tm := time.Now()
	st.Mask(s.mask)
	s.maskTime += time.Since(tm)
	if popcount(s.mask) == 0 {
		if st.Done() {
			return end("closed") // complete, and no EOS token to allow
		}
		// Not complete, yet nothing may follow (a bug, see GenerateStream).
		s.res.StopReason, s.done = "error", true
		return 0, false, fmt.Errorf("idp: no token can continue the value after %d tokens (a bug): the output %q is incomplete", len(s.res.IDs), s.text)
	}
	negInf := float32(math.Inf(-1))
	for i := range s.logits {
		if i >= g.vocab.V || s.mask[i>>6]&(1<<(i&63)) == 0 {
			s.logits[i] = negInf
		}
	}
	id, err = s.sampler.Next(s.logits, s.history)
	if err != nil {
		s.done = true
		return 0, false, fmt.Errorf("idp: %w", err)
	}
	if id == g.vocab.eos {
		return end("eos")
	}
	if err := st.Advance(id); err != nil {
		s.done = true
		return 0, false, fmt.Errorf("idp: sampled token refused (a bug): %w", err)
	}
	s.res.IDs = append(s.res.IDs, id)
	s.history = append(s.history, id)
	s.text = append(s.text, g.vocab.bytes[id]...)
	if s.it.OnText != nil {
		safe := len(s.text)
		for safe > s.emitted && !utf8.Valid(s.text[s.emitted:safe]) {
			safe--
		}
		if safe > s.emitted {
			ok := s.it.OnText(string(s.text[s.emitted:safe]))
			s.emitted = safe
			if !ok {
				return end("cancelled")
			}
		}
	}
	if st.Closed() {
		return end("closed")
	}
	if len(s.res.IDs) == s.it.MaxTokens {
		return end("length")
	}
	return id, true, nil
}

func (s *constrainedSeq) finish() Result {
	if s.it.OnText != nil && s.emitted < len(s.text) && s.res.StopReason != "cancelled" {
		s.it.OnText(string(s.text[s.emitted:]))
	}
	s.res.DecodeSeconds = time.Since(s.t1).Seconds()
	s.res.MaskSeconds = s.maskTime.Seconds()
	s.res.Text = string(s.text)
	s.res.CompletionTokens = len(s.res.IDs)
	s.res.check(s.g)
	return s.res
}
