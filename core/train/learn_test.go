package train

import (
	"context"
	"math/rand/v2"
	"testing"

	"distill/core/lora"
	"distill/core/model"
	"distill/core/tensor"
)

// cycle yields the same micro-batches round-robin.
type cycle struct {
	batches []*Batch
}

func (c *cycle) At(k int) (*Batch, error) { return c.batches[k%len(c.batches)], nil }

// TestLoRALearnsASyntheticTask: a LoRA adapter on a tiny random model
// memorises four fixed sequences; the loss must fall by at least 80%.
func TestLoRALearnsASyntheticTask(t *testing.T) {
	m, err := model.Load("../model/testdata/llama3-f32")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	c := &m.Config
	D, F, qO, kvO := c.HiddenSize, c.IntermediateSize, c.NumHeads*c.HeadDim, c.NumKVHeads*c.HeadDim
	inOut := map[string][2]int{"q_proj": {D, qO}, "k_proj": {D, kvO}, "v_proj": {D, kvO}, "o_proj": {qO, D},
		"gate_proj": {D, F}, "up_proj": {D, F}, "down_proj": {F, D}}
	a, err := lora.New(lora.Config{R: 8, Alpha: 16, Targets: lora.Modules}, len(m.Layers), func(mod string) (int, int) { return inOut[mod][0], inOut[mod][1] })
	if err != nil {
		t.Fatal(err)
	}
	// Kaiming-uniform A, zero B (as PEFT initialises).
	r := rand.New(rand.NewPCG(1, 1))
	for _, layer := range a.Layers {
		for _, p := range layer {
			bound := 1 / float32(p.In)
			for i := range p.A {
				p.A[i] = (2*r.Float32() - 1) * bound * 8
			}
		}
	}
	be, _ := tensor.Open("cpu")
	net, err := NewNet(be, m, a)
	if err != nil {
		t.Fatal(err)
	}
	var data cycle
	for s := 0; s < 2; s++ {
		b := &Batch{}
		for k := 0; k < 2; k++ {
			ids := make([]int, 16)
			for i := range ids {
				ids[i] = r.IntN(c.VocabSize)
			}
			mask := make([]bool, len(ids))
			for i := range mask {
				mask[i] = true
			}
			b.AddSequence(ids, mask)
		}
		data.batches = append(data.batches, b)
	}
	cfg := Config{Steps: 120, Accum: 2, MaxGradNorm: 1, Schedule: Schedule{Kind: "cosine", Peak: 1e-2, Warmup: 5, Total: 120}}
	events := make(chan Event, cfg.Steps)
	if err := Train(context.Background(), net, NewAdamW(len(a.Params), 0), cfg, &data, events); err != nil {
		t.Fatal(err)
	}
	close(events)
	var first, last Event
	for ev := range events {
		if ev.Step == 1 {
			first = ev
		}
		last = ev
	}
	t.Logf("loss %.3f → %.3f over %d steps (%.0f tokens/s)", first.Loss, last.Loss, last.Step, last.TokensPerSec)
	if last.Step != cfg.Steps || last.Loss > 0.2*first.Loss {
		t.Fatalf("loss fell from %.3f to %.3f (step %d): less than 80%%", first.Loss, last.Loss, last.Step)
	}
}
