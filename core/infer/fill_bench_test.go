package infer

import (
	"context"
	"fmt"
	"testing"

	"distill/core/model"
	"distill/core/tensor"
)

// BenchmarkFillTogether times two prompts prefilled in one pass
// (FillTogether: a shared token, then each as a branch) against each alone
// (PromptFill.All), on a random SmolLM2-135M-shaped BF16 model: at 800
// tokens each the branches' attention is most of what the shared pass
// could lose.
func BenchmarkFillTogether(b *testing.B) {
	m, err := model.LoadRandom(model.BenchDir(), "smollm2-135m", tensor.BF16)
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	be := tensor.CPU{}
	for _, n := range []int{64, 800} {
		fills := func() []*PromptFill {
			fs := make([]*PromptFill, 2)
			for s := range fs {
				ids := make([]int, n)
				for i := range ids {
					ids[i] = (i*31 + s*7 + 11) % m.Config.VocabSize
				}
				ids[0] = 1 // the shared prefix: one token
				fs[s] = &PromptFill{Prompt: ids, Cache: m.NewCache(n), Logits: make([]float32, m.Config.VocabSize)}
			}
			return fs
		}
		ctxs := []context.Context{context.Background(), context.Background()}
		b.Run(fmt.Sprintf("together/%d", n), func(b *testing.B) {
			for range b.N {
				for _, err := range FillTogether(be, m, fills(), ctxs) {
					if err != nil {
						b.Fatal(err)
					}
				}
			}
		})
		b.Run(fmt.Sprintf("alone/%d", n), func(b *testing.B) {
			for range b.N {
				for _, f := range fills() {
					if err := f.All(ctxs[0], be, m); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
