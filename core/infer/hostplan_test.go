package infer

import (
	"fmt"
	"testing"
)

// TestPlanHostCountsWhatABatchHolds: the host plan's KV caches are the
// bytes a batch's sequences allocate, its decode step bounds what a step
// holds, and a sequence's prompt activations are gone once its prompt is
// in (prefilled alone or with the others): a decoding sequence holds its
// cache and its logits, nothing more.
func TestPlanHostCountsWhatABatchHolds(t *testing.T) {
	defer func(n int) { maxBatchPrefill = n }(maxBatchPrefill)
	for _, n := range []int{2048, 0} {
		maxBatchPrefill = n
		t.Run(fmt.Sprintf("maxBatchPrefill=%d", n), func(t *testing.T) {
			be, m := load(t)
			const B, P, M = 3, 300, 9 // prompts longer than a prefill chunk
			items := make([]*BatchItem, B)
			for i := range items {
				prompt := make([]int, P)
				for j := range prompt {
					prompt[j] = (7*i + 13*j) % 300
				}
				items[i] = &BatchItem{Prompt: prompt, Opt: GenerateOptions{MaxTokens: M}}
			}
			b := NewBatch(be, m, letters{})
			for i, err := range b.Add(items) {
				if err != nil {
					t.Fatalf("item %d: %v", i, err)
				}
			}
			plan := PlanHost(m, B, P+M, 0, 0)
			var caches int64
			for _, s := range b.seqs {
				for l := range s.c.K {
					caches += 4 * int64(cap(s.c.K[l])+cap(s.c.V[l]))
				}
				if w := s.c.WorkspaceBytes(); w != 0 {
					t.Errorf("a decoding sequence keeps %d bytes of its prompt's activations", w)
				}
			}
			if caches != plan.Caches {
				t.Errorf("the sequences' caches hold %d bytes, the plan %d", caches, plan.Caches)
			}
			b.Step()
			step := b.scratch.WorkspaceBytes() + 4*int64(cap(b.logits))
			for l := range b.scratch.K {
				step += 4 * int64(cap(b.scratch.K[l])+cap(b.scratch.V[l]))
			}
			for _, s := range b.seqs {
				step += 4 * int64(cap(s.logits))
			}
			if step > plan.Decode {
				t.Errorf("a step holds %d bytes, the plan %d", step, plan.Decode)
			}
		})
	}
}
