package infer

import (
	"context"
	"time"

	"distill/core/model"
	"distill/core/tensor"
)

// PrefillChunk is the prompt tokens one forward call of a prefill runs.
const PrefillChunk = prefillChunk

// PromptFill runs one sequence's prompt into its own cache a chunk at a
// time, so that a batch can decode its other sequences between chunks.
// The last chunk sets the next-token logits and frees the cache's
// workspace: the sequence then decodes on its batch's scratch.
type PromptFill struct {
	Prompt     []int
	Cache      *model.Cache // empty at the start
	Logits     []float32    // (vocab) set by the last chunk
	Start, End time.Time    // the first chunk's start, the last one's end
	hidden     []float32
}

// Chunk runs the next PrefillChunk tokens of the prompt; done is true once
// the whole prompt is in. A ctx already done runs nothing.
func (p *PromptFill) Chunk(ctx context.Context, be tensor.Backend, m *model.Model) (done bool, err error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if p.Start.IsZero() {
		p.Start = time.Now()
	}
	D := m.Config.HiddenSize
	if p.hidden == nil {
		p.hidden = make([]float32, prefillChunk*D)
	}
	start := p.Cache.Len
	stop := min(start+prefillChunk, len(p.Prompt))
	h, err := m.Forward(be, p.Prompt[start:stop], p.Cache, p.hidden)
	if err != nil {
		return false, err
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if stop < len(p.Prompt) {
		return false, nil
	}
	m.Logits(be, p.Logits, h[len(h)-D:], 1)
	p.Cache.FreeWorkspace()
	p.hidden = nil
	p.End = time.Now()
	return true, nil
}

// All runs the rest of the prompt.
func (p *PromptFill) All(ctx context.Context, be tensor.Backend, m *model.Model) error {
	for {
		done, err := p.Chunk(ctx, be, m)
		if err != nil || done {
			return err
		}
	}
}

// Seconds is the prefill's wall time, first chunk to last.
func (p *PromptFill) Seconds() float64 { return p.End.Sub(p.Start).Seconds() }

// maxBatchPrefill bounds the prompt tokens prefilled in one pass (the
// activations are (tokens, intermediate)); longer batches prefill each
// prompt on its own.
var maxBatchPrefill = 2048

// FillTogether runs every fill's whole prompt into its cache and sets its
// next-token logits; errs[i] belongs to fills[i], run under ctxs[i]. Short
// prompts share one pass over the weights: their common prefix runs once,
// every remainder is a branch of one ForwardBranches call, and each
// branch's keys and values (stored after RoPE at the positions the
// sequence alone would give them) are copied into its own cache. Alone (or
// past maxBatchPrefill tokens together) each runs in chunks. A fill whose
// context is done runs nothing; one the shared pass fails for (a token id
// outside the vocabulary) runs again alone, so its error is its own. A
// fill's Start and End span the pass it shared.
func FillTogether(be tensor.Backend, m *model.Model, fills []*PromptFill, ctxs []context.Context) []error {
	errs := make([]error, len(fills))
	var live []*PromptFill
	var at []int // live[j] is fills[at[j]]
	total := 0
	for i, f := range fills {
		if errs[i] = ctxs[i].Err(); errs[i] == nil {
			live, at = append(live, f), append(at, i)
			total += len(f.Prompt)
		}
	}
	alone := func() []error {
		for j, f := range live {
			errs[at[j]] = f.All(ctxs[at[j]], be, m)
		}
		return errs
	}
	if len(live) < 2 || total > maxBatchPrefill {
		return alone()
	}
	t0 := time.Now()
	first := live[0].Prompt
	p := len(first) - 1 // every prompt keeps a token of its own
	for _, f := range live[1:] {
		p = min(p, len(f.Prompt)-1)
		for i := 0; i < p; i++ {
			if f.Prompt[i] != first[i] {
				p = i
				break
			}
		}
	}
	branches := make([][]int, len(live))
	T := 0
	for j, f := range live {
		branches[j] = f.Prompt[p:]
		T += len(branches[j])
	}
	shared := m.NewCache(p + T)
	if p > 0 {
		if _, err := m.Forward(be, first[:p], shared, nil); err != nil {
			return alone()
		}
	}
	h, err := m.ForwardBranches(be, branches, shared)
	if err != nil {
		return alone()
	}
	D := m.Config.HiddenSize
	off := p // row of the branch's first token in the shared cache
	row := 0 // row of the branch's first token in h
	for j, f := range live {
		n := len(branches[j])
		f.Cache.CopyRows(shared, 0, 0, p)   // the shared prefix
		f.Cache.CopyRows(shared, p, off, n) // its own branch
		f.Cache.Len = p + n
		m.Logits(be, f.Logits, h[(row+n-1)*D:(row+n)*D], 1)
		off, row = off+n, row+n
		f.Start, f.End = t0, time.Now()
		errs[at[j]] = ctxs[at[j]].Err()
	}
	return errs
}
