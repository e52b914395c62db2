package classify

import (
	"math"
	"testing"
)

// TestClassifyBatchEqualsClassify: scoring several inputs in one branched
// pass gives each the result Classify gives it alone, with single- and
// multi-token labels, calibration and length normalisation, and for a batch
// larger than one pass holds.
func TestClassifyBatchEqualsClassify(t *testing.T) {
	be, m, tok := tinyModel(t)
	texts := []string{"my card was charged twice", "the app crashes on start", "", "reset my password please", "my card was charged twice"}
	for _, tc := range []struct {
		name string
		opt  Options
	}{
		{"single-token", Options{Labels: []string{"a", "b", "c"}}},
		{"multi-token calibrated", Options{Labels: []string{"billing", "technical support", "account"}, NullInputs: DefaultNullInputs, LengthNormalize: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(be, m, tok, template, tc.opt)
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.ClassifyBatch(texts)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(texts) {
				t.Fatalf("%d results for %d inputs", len(got), len(texts))
			}
			for i, text := range texts {
				want, err := c.Classify(text)
				if err != nil {
					t.Fatal(err)
				}
				if got[i].Label != want.Label || got[i].PromptTokens != want.PromptTokens {
					t.Fatalf("input %d: got %s (%d tokens), want %s (%d tokens)", i, got[i].Label, got[i].PromptTokens, want.Label, want.PromptTokens)
				}
				for l, s := range want.Scores {
					if d := math.Abs(got[i].Scores[l] - s); d > 1e-4 {
						t.Fatalf("input %d label %s: batched log-likelihood %.6f, alone %.6f (diff %.2g)", i, l, got[i].Scores[l], s, d)
					}
				}
			}
		})
	}
}
