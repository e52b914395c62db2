package classify

import (
	"testing"
	"time"

	"distill/core/model"
	"distill/core/tensor"
)

// byteEncoder maps each byte to a token id: enough to time the scorer on a
// model without a tokenizer (the cost depends on token counts, not ids).
type byteEncoder struct{}

func (byteEncoder) Encode(s string, _ bool) []int {
	ids := make([]int, len(s))
	for i := range s {
		ids[i] = int(s[i]) + 100
	}
	return ids
}

// BenchmarkClassifyVsPrefill: classifying a 128-token prompt into three
// labels (two of them multi-token) against one prefill of the same prompt
// (the forward pass and the next token's logits) on a SmolLM2-135M-shaped
// model. The target is ≤ 1.1×.
func BenchmarkClassifyVsPrefill(b *testing.B) {
	m, err := model.LoadRandom(model.BenchDir(), "smollm2-135m", tensor.BF16)
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	be, _ := tensor.Open("cpu")
	text := make([]byte, 128-len("\nLabel:"))
	for i := range text {
		text[i] = 'a' + byte(i%26)
	}
	c, err := New(be, m, byteEncoder{}, func(s string) string { return s + "\nLabel:" }, Options{
		Labels: []string{"A", "Bb", "Ccc"}, Verbalizers: map[string]string{"A": "A", "Bb": "Bb", "Ccc": "Ccc"}})
	if err != nil {
		b.Fatal(err)
	}
	prompt := byteEncoder{}.Encode(string(text)+"\nLabel:", true)
	D := m.Config.HiddenSize
	logits := make([]float32, m.Config.VocabSize)
	var tPrefill, tClassify time.Duration
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		cache := m.NewCache(len(prompt))
		h, err := m.Forward(be, prompt, cache, nil)
		if err != nil {
			b.Fatal(err)
		}
		m.Logits(be, logits, h[len(h)-D:], 1) // a prefill yields the next token's logits

		t1 := time.Now()
		if _, err := c.Classify(string(text)); err != nil {
			b.Fatal(err)
		}
		tPrefill += t1.Sub(t0)
		tClassify += time.Since(t1)
	}
	b.ReportMetric(float64(tClassify)/float64(tPrefill), "x_prefill")
	b.ReportMetric(float64(tClassify.Milliseconds())/float64(b.N), "ms/classify")
}
