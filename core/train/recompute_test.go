package train

import (
	"path/filepath"
	"testing"

	"distill/core/model"
	"distill/core/tensor"
)

// TestRecomputeMatchesKeptActivations: checkpointing's second forward skips
// the down projection's base product and residual, so the gradients it
// gives must equal, bit for bit, those of a step that kept every layer's
// activations — for LoRA with dropout (the recompute must form the down
// adapter's u on the same mask) and for full fine-tuning.
func TestRecomputeMatchesKeptActivations(t *testing.T) {
	grads := func(t *testing.T, net *Net, b *Batch, checkpoint bool) ([]float32, float64) {
		net.Checkpoint = checkpoint
		net.microBatches = 3
		net.ZeroGrads()
		loss, err := net.Step(b, b.Counted())
		if err != nil {
			t.Fatal(err)
		}
		return append([]float32(nil), net.Grads...), loss
	}
	same := func(t *testing.T, net *Net, b *Batch) {
		kept, lk := grads(t, net, b, false)
		rec, lr := grads(t, net, b, true)
		if lk != lr {
			t.Errorf("loss %v recomputing, %v kept", lr, lk)
		}
		diff, nonzero := 0, 0
		for i := range kept {
			if kept[i] != rec[i] {
				diff++
			}
			if kept[i] != 0 {
				nonzero++
			}
		}
		if diff > 0 || nonzero < len(kept)/2 {
			t.Errorf("%d of %d gradients differ (%d nonzero)", diff, len(kept), nonzero)
		}
	}
	t.Run("lora-dropout", func(t *testing.T) {
		net, bf, _ := fixtureNet(t, "llama3-f32", "adapter")
		net.Adapter.Config.Dropout = 0.2
		same(t, net, bf.batch())
	})
	t.Run("full", func(t *testing.T) {
		dir := filepath.Join("testdata", "qwen2-f32")
		var bf batchFile
		readJSON(t, filepath.Join(dir, "batch.json"), &bf)
		m, err := model.Load(filepath.Join(dir, bf.Model))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		be, _ := tensor.Open("cpu")
		net, err := NewFullNet(be, m)
		if err != nil {
			t.Fatal(err)
		}
		same(t, net, bf.batch())
	})
}
