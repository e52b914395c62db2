package infer

import (
	"context"
	"slices"
	"strings"
	"testing"

	"distill/core/model"
	"distill/core/tensor"
)

// TestFillTogetherKeepsErrorsApart: a prompt the shared pass fails for (a
// token outside the vocabulary) fails alone, its neighbours filled as they
// would be on their own; a fill whose context is already done runs
// nothing.
func TestFillTogetherKeepsErrorsApart(t *testing.T) {
	m, err := model.Load("../model/testdata/qwen2-f32")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	be := tensor.CPU{}
	V := m.Config.VocabSize
	prompts := [][]int{{1, 5, 9, 2}, {1, 5, V + 3}, {1, 5, 7}, {1, 6, 8, 10, 12}}
	done, cancel := context.WithCancel(context.Background())
	cancel()
	ctxs := []context.Context{context.Background(), context.Background(), done, context.Background()}
	fill := func(p []int) *PromptFill {
		return &PromptFill{Prompt: p, Cache: m.NewCache(len(p)), Logits: make([]float32, V)}
	}
	fills := make([]*PromptFill, len(prompts))
	for i, p := range prompts {
		fills[i] = fill(p)
	}
	errs := FillTogether(be, m, fills, ctxs)
	if errs[1] == nil || !strings.Contains(errs[1].Error(), "vocabulary") {
		t.Errorf("the prompt with id %d: %v, want its own vocabulary error", V+3, errs[1])
	}
	if errs[2] != context.Canceled || fills[2].Cache.Len != 0 {
		t.Errorf("the cancelled fill: %v, its cache at %d; want context.Canceled and nothing run", errs[2], fills[2].Cache.Len)
	}
	for _, i := range []int{0, 3} {
		if errs[i] != nil {
			t.Fatalf("fill %d: %v", i, errs[i])
		}
		want := fill(prompts[i])
		if err := want.All(context.Background(), be, m); err != nil {
			t.Fatal(err)
		}
		if fills[i].Cache.Len != len(prompts[i]) || !slices.Equal(fills[i].Logits, want.Logits) {
			t.Errorf("fill %d: cache at %d, logits equal to its own prefill: %v", i, fills[i].Cache.Len, slices.Equal(fills[i].Logits, want.Logits))
		}
	}
}
