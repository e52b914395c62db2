package infer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// TestGenerateBatchEqualsGenerate: sequences decoded together, with
// different prompts, budgets, sampling, stop strings and EOS, each get what
// Generate gives them alone, whether their prompts are prefilled together
// or one by one; a cancelled sequence stops alone.
func TestGenerateBatchEqualsGenerate(t *testing.T) {
	defer func(n int) { maxBatchPrefill = n }(maxBatchPrefill)
	for _, n := range []int{2048, 0} {
		maxBatchPrefill = n
		t.Run(fmt.Sprintf("maxBatchPrefill=%d", n), testGenerateBatch)
	}
}

func testGenerateBatch(t *testing.T) {
	be, m := load(t)
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	items := []BatchItem{
		{Prompt: []int{1, 5, 9, 14}, Opt: GenerateOptions{MaxTokens: 12}},
		{Prompt: []int{3}, Opt: GenerateOptions{MaxTokens: 5, Sampling: Sampling{Temperature: 0.9, TopK: 20, Seed: 4}}},
		{Prompt: []int{2, 2, 7, 100, 31, 8, 9}, Opt: GenerateOptions{MaxTokens: 20, Sampling: Sampling{Temperature: 1.2, TopP: 0.9, Seed: 9}}},
		{Prompt: []int{1, 5, 9, 14}, Opt: GenerateOptions{MaxTokens: 30, Stop: []string{"q"}}},
		{Prompt: []int{4, 4}, Opt: GenerateOptions{MaxTokens: 30, EOS: []int{7, 11, 20}}},
		{Ctx: cancelled, Prompt: []int{4, 4}, Opt: GenerateOptions{MaxTokens: 30}},
		{Prompt: nil, Opt: GenerateOptions{MaxTokens: 3}},
	}
	var streamed []strings.Builder = make([]strings.Builder, len(items))
	for i := range items {
		items[i].Opt.OnText = func(s string) bool { streamed[i].WriteString(s); return true }
	}
	got, errs := GenerateBatch(be, m, letters{}, items)
	for i, it := range items {
		ctx := it.Ctx
		if ctx == nil {
			ctx = context.Background()
		}
		opt := it.Opt
		opt.OnText = nil
		want, err := Generate(ctx, be, m, letters{}, it.Prompt, opt)
		if (err != nil) != (errs[i] != nil) {
			t.Fatalf("item %d: batched error %v, alone %v", i, errs[i], err)
		}
		if err != nil {
			continue
		}
		if i == 5 && (errs[i] == nil && got[i].StopReason != "cancelled") {
			t.Fatalf("cancelled item: %+v", got[i])
		}
		if !slices.Equal(got[i].IDs, want.IDs) || got[i].Text != want.Text || got[i].StopReason != want.StopReason {
			t.Fatalf("item %d: batched %v %q (%s), alone %v %q (%s)", i, got[i].IDs, got[i].Text, got[i].StopReason, want.IDs, want.Text, want.StopReason)
		}
		if streamed[i].String() != got[i].Text {
			t.Fatalf("item %d: streamed %q, text %q", i, streamed[i].String(), got[i].Text)
		}
	}
}

// TestBatchJoinMidway: a sequence that joins a running batch between steps
// (continuous batching) gets what Generate gives it alone, and so does the
// one already running; each leaves the batch in the step it finishes.
func TestBatchJoinMidway(t *testing.T) {
	be, m := load(t)
	a := &BatchItem{Prompt: []int{1, 5, 9, 14}, Opt: GenerateOptions{MaxTokens: 10}}
	c := &BatchItem{Prompt: []int{3, 8}, Opt: GenerateOptions{MaxTokens: 4, Sampling: Sampling{Temperature: 1, Seed: 2}}}
	b := NewBatch(be, m, letters{})
	if errs := b.Add([]*BatchItem{a}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	got := map[*BatchItem]*Result{}
	for step := 0; b.Len() > 0; step++ {
		if step == 3 {
			if errs := b.Add([]*BatchItem{c}); errs[0] != nil {
				t.Fatal(errs[0])
			}
			if b.Len() != 2 {
				t.Fatalf("%d live after the join, want 2", b.Len())
			}
		}
		for _, f := range b.Step() {
			if f.Err != nil {
				t.Fatal(f.Err)
			}
			got[f.Item] = f.Result
		}
	}
	for _, it := range []*BatchItem{a, c} {
		want, err := Generate(context.Background(), be, m, letters{}, it.Prompt, it.Opt)
		if err != nil {
			t.Fatal(err)
		}
		if r := got[it]; r == nil || !slices.Equal(r.IDs, want.IDs) || r.StopReason != want.StopReason {
			t.Fatalf("prompt %v: batched %+v, alone %v (%s)", it.Prompt, r, want.IDs, want.StopReason)
		}
	}
}

// TestBatchJoinLongPromptInChunks: a prompt longer than a chunk joining a
// batch that decodes is prefilled a chunk a step, the decoding sequence
// making a token at each of those steps, and both end as Generate alone
// ends them; a joiner cancelled while it prefills comes out of Step with
// its error, not as a result.
func TestBatchJoinLongPromptInChunks(t *testing.T) {
	be, m := load(t)
	a := &BatchItem{Prompt: []int{1, 5, 9, 14}, Opt: GenerateOptions{MaxTokens: 12}}
	long := make([]int, 2*prefillChunk-60)
	for i := range long {
		long[i] = (11*i + 3) % 300
	}
	c := &BatchItem{Prompt: long, Opt: GenerateOptions{MaxTokens: 5}}
	gone, cancel := context.WithCancel(context.Background())
	defer cancel()
	d := &BatchItem{Ctx: gone, Prompt: long[:prefillChunk+1], Opt: GenerateOptions{MaxTokens: 5}}
	b := NewBatch(be, m, letters{})
	if errs := b.Add([]*BatchItem{a}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	b.Step()
	if errs := b.Add([]*BatchItem{c, d}); errs[0] != nil || errs[1] != nil {
		t.Fatal(errs)
	}
	if b.Len() != 3 || len(b.filling) != 2 {
		t.Fatalf("%d live, %d prefilling after the join; want 3 and 2", b.Len(), len(b.filling))
	}
	dSeq := b.filling[1]
	got := map[*BatchItem]*Result{}
	var failed []error
	aTokens := func() int { return len(b.seqs[0].res.IDs) }
	for step := 0; b.Len() > 0; step++ {
		before := aTokens()
		if step == 1 {
			cancel() // d waits behind c's second chunk: it leaves at the next step, unprefilled
		}
		for _, f := range b.Step() {
			if f.Err != nil {
				if f.Item != d {
					t.Fatal(f.Err)
				}
				failed = append(failed, f.Err)
				continue
			}
			got[f.Item] = f.Result
		}
		if step < 2 && (got[a] != nil || aTokens() != before+1) {
			t.Fatalf("step %d: the decoding sequence made %d tokens while a prompt prefilled, want 1", step, aTokens()-before)
		}
		if step == 0 && (len(b.filling) != 2 || b.filling[0].it != c || b.filling[0].c.Len != prefillChunk) {
			t.Fatalf("after the first step %d prefilling; want the long prompt one chunk in", len(b.filling))
		}
	}
	if len(failed) != 1 || !errors.Is(failed[0], context.Canceled) || dSeq.c.Len != 0 {
		t.Fatalf("the cancelled joiner: %v, %d positions prefilled; want context.Canceled and none", failed, dSeq.c.Len)
	}
	for _, it := range []*BatchItem{a, c} {
		want, err := Generate(context.Background(), be, m, letters{}, it.Prompt, it.Opt)
		if err != nil {
			t.Fatal(err)
		}
		if r := got[it]; r == nil || !slices.Equal(r.IDs, want.IDs) || r.StopReason != want.StopReason {
			t.Fatalf("prompt of %d: batched %+v, alone %v (%s)", len(it.Prompt), r, want.IDs, want.StopReason)
		}
	}
}
