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
		for _, bf16 := range []bool{false, true} {
			maxBatchPrefill = n
			t.Run(fmt.Sprintf("maxBatchPrefill=%d/bf16cache=%v", n, bf16), func(t *testing.T) {
				be, m := load(t)
				m.KVCacheBF16 = bf16
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
					if s.c.BF16() != bf16 {
						t.Fatalf("a sequence's cache is bf16 %v, the model's KVCacheBF16 %v", s.c.BF16(), bf16)
					}
					caches += s.c.Bytes()
					if w := s.c.WorkspaceBytes(); w != 0 {
						t.Errorf("a decoding sequence keeps %d bytes of its prompt's activations", w)
					}
				}
				if caches != plan.Caches {
					t.Errorf("the sequences' caches hold %d bytes, the plan %d", caches, plan.Caches)
				}
				b.Step()
				step := b.scratch.WorkspaceBytes() + 4*int64(cap(b.logits)) + b.scratch.Bytes()
				for _, s := range b.seqs {
					step += 4 * int64(cap(s.logits))
				}
				if step > plan.Decode {
					t.Errorf("a step holds %d bytes, the plan %d", step, plan.Decode)
				}
			})
		}
	}
}
