package train

import (
	"os"
	"testing"

	"distill/core/lora"
	"distill/core/model"
	"distill/core/tensor"
)

// BenchmarkLoRAStep times one checkpointed LoRA step (r=16, all modules) on
// a random SmolLM2-135M-shaped BF16 model at 256 tokens;
// DISTILL_BENCH_CPU_BF16=1 times it with the bf16 products (--cpu-bf16).
func BenchmarkLoRAStep(b *testing.B) {
	m, err := model.LoadRandom(model.BenchDir(), "smollm2-135m", tensor.BF16)
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	a, err := lora.NewFor(m, lora.Config{R: 16, Alpha: 32, Targets: lora.Modules})
	if err != nil {
		b.Fatal(err)
	}
	lora.Init(a, 1)
	bf16 := os.Getenv("DISTILL_BENCH_CPU_BF16") == "1"
	be := tensor.CPU{BF16Products: bf16, BF16Attention: bf16}
	net, _ := NewNet(be, m, a)
	net.Checkpoint = true
	const seq = 256
	bt := &Batch{}
	ids, mask := make([]int, seq), make([]bool, seq)
	for i := range ids {
		ids[i], mask[i] = (i*7919+13)%m.Config.VocabSize, true
	}
	bt.AddSequence(ids, mask)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		net.ZeroGrads()
		if _, err := net.Step(bt, bt.Counted()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(seq*b.N)/b.Elapsed().Seconds(), "tokens/s")
}
