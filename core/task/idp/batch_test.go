package idp

import (
	"context"
	"slices"
	"strings"
	"testing"

	"distill/core/infer"
	"distill/core/tensor"
)

// TestGenerateBatchEqualsGenerate: constrained generations with different
// schemas, budgets and sampling decoded together each give what
// GenerateStream gives them alone, streamed text included.
func TestGenerateBatchEqualsGenerate(t *testing.T) {
	m, tok := tinyModel(t)
	be, _ := tensor.Open("cpu")
	schemas := []string{
		`{"type":"object","properties":{"vendor":{"type":"string","maxLength":8},"total":{"type":"integer"}},"required":["vendor","total"],"additionalProperties":false}`,
		`{"type":"array","items":{"enum":["red","green","blue"]},"minItems":1,"maxItems":4}`,
		`{"type":"number","minimum":-5,"maximum":5}`,
	}
	prompts := [][]int{tok.Encode("Invoice 42 from ACME", true), tok.Encode("colours:", true), tok.Encode("x", true)}
	samplings := []infer.Sampling{{}, {Temperature: 1, TopK: 50, Seed: 3}, {Temperature: 0.7, Seed: 11}}
	budgets := []int{24, 16, 8}
	items := make([]BatchItem, len(schemas))
	streamed := make([][]byte, len(schemas))
	for i, sc := range schemas {
		items[i] = BatchItem{Grammar: mustCompile(t, sc), Prompt: prompts[i], MaxTokens: budgets[i], Sampling: samplings[i],
			OnText: func(p string) bool { streamed[i] = append(streamed[i], p...); return true }}
	}
	got, errs := GenerateBatch(be, m, tok, items)
	for i, it := range items {
		if errs[i] != nil {
			t.Fatalf("item %d: %v", i, errs[i])
		}
		want, err := Generate(context.Background(), be, m, tok, it.Grammar, it.Prompt, it.MaxTokens, it.Sampling)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got[i].IDs, want.IDs) || got[i].Text != want.Text || got[i].StopReason != want.StopReason || got[i].Valid != want.Valid {
			t.Fatalf("item %d: batched %q (%s, valid %v), alone %q (%s, valid %v)", i, got[i].Text, got[i].StopReason, got[i].Valid, want.Text, want.StopReason, want.Valid)
		}
		if string(streamed[i]) != got[i].Text {
			t.Fatalf("item %d: streamed %q, text %q", i, streamed[i], got[i].Text)
		}
		if !got[i].Valid {
			t.Fatalf("item %d: %q does not satisfy its schema: %s", i, got[i].Text, got[i].ValidationError)
		}
	}
}

// A sequence decoding in a batch keeps its cache, not its prompt's
// activations: the steps run on the batch's scratch. So whether its prompt
// ran alone or with others.
func TestBatchSequenceFreesPromptActivations(t *testing.T) {
	m, tok := tinyModel(t)
	be, _ := tensor.Open("cpu")
	g := mustCompile(t, `{"type":"integer"}`)
	prompt := tok.Encode("Invoice 42 from ACME, total 120 EUR, paid by card", true)
	for _, n := range []int{1, 2} {
		b := NewBatch(be, m, tok)
		items := make([]*BatchItem, n)
		for i := range items {
			items[i] = &BatchItem{Grammar: g, Prompt: prompt[:len(prompt)-i], MaxTokens: 8}
		}
		for _, err := range b.Add(items) {
			if err != nil {
				t.Fatal(err)
			}
		}
		for i, s := range b.seqs {
			if s.c.Len != len(items[i].Prompt) {
				t.Fatalf("%d together: cache %d holds %d positions after the prompt's %d", n, i, s.c.Len, len(items[i].Prompt))
			}
			if w := s.c.WorkspaceBytes(); w != 0 {
				t.Errorf("%d together: sequence %d keeps %d bytes of its prompt's activations", n, i, w)
			}
		}
	}
}

// An item joining a batch that decodes gets what it gets alone, and so
// does the one it joined.
func TestBatchJoinMidway(t *testing.T) {
	m, tok := tinyModel(t)
	be, _ := tensor.Open("cpu")
	a := &BatchItem{Grammar: mustCompile(t, `{"type":"object","properties":{"vendor":{"type":"string","maxLength":8},"total":{"type":"integer"}},"required":["vendor","total"],"additionalProperties":false}`),
		Prompt: tok.Encode("Invoice 42 from ACME", true), MaxTokens: 24}
	c := &BatchItem{Grammar: mustCompile(t, `{"type":"array","items":{"enum":["red","green","blue"]},"minItems":1,"maxItems":4}`),
		Prompt: tok.Encode("colours:", true), MaxTokens: 16, Sampling: infer.Sampling{Temperature: 1, TopK: 50, Seed: 3}}
	// A document longer than a prefill chunk joins a chunk a step.
	doc := tok.Encode(strings.Repeat("Invoice 42 from ACME, total 120 EUR, due in March. ", 40), true)[:prefillChunk+40]
	e := &BatchItem{Grammar: mustCompile(t, `{"type":"integer","minimum":0,"maximum":999}`), Prompt: doc, MaxTokens: 6}
	b := NewBatch(be, m, tok)
	if errs := b.Add([]*BatchItem{a}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	got := map[*BatchItem]Result{}
	for step := 0; b.Len() > 0; step++ {
		if step == 3 {
			if errs := b.Add([]*BatchItem{c, e}); errs[0] != nil || errs[1] != nil {
				t.Fatal(errs)
			}
			if b.Len() != 3 || len(b.filling) != 1 {
				t.Fatalf("%d live, %d prefilling after the join; want 3 and 1", b.Len(), len(b.filling))
			}
		}
		for _, f := range b.Step() {
			if f.Err != nil {
				t.Fatal(f.Err)
			}
			got[f.Item] = f.Result
		}
	}
	for _, it := range []*BatchItem{a, c, e} {
		want, err := Generate(context.Background(), be, m, tok, it.Grammar, it.Prompt, it.MaxTokens, it.Sampling)
		if err != nil {
			t.Fatal(err)
		}
		if r, ok := got[it]; !ok || !slices.Equal(r.IDs, want.IDs) || r.Text != want.Text || r.Valid != want.Valid {
			t.Fatalf("prompt %v: batched %q (valid %v), alone %q (valid %v)", it.Prompt, r.Text, r.Valid, want.Text, want.Valid)
		}
	}
}
