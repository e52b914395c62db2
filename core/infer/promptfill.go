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
