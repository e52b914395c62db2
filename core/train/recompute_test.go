package train

import (
	"math"
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

// TestLossRowsFor: a chunk holds as many rows as lossLogitsBytes of logits,
// never fewer than lossRowsMin (a large vocabulary) nor more than
// lossRowsMax or the tokens there are.
func TestLossRowsFor(t *testing.T) {
	for _, c := range []struct{ n, vocab, want int }{
		{512, 151936, lossRowsMin}, // Qwen: 55 rows by bytes
		{50, 151936, 50},
		{512, 49152, lossLogitsBytes / (4 * 49152)}, // SmolLM2: 170
		{512, 1000, lossRowsMax},
		{0, 1000, 1},
	} {
		if got := lossRowsFor(c.n, c.vocab); got != c.want {
			t.Errorf("lossRowsFor(%d, %d) = %d, want %d", c.n, c.vocab, got, c.want)
		}
	}
	if lossRowsMin != 128 {
		t.Errorf("lossRowsMin %d: a test left it changed", lossRowsMin)
	}
}

// TestLossChunksAgree: the loss and its gradients do not depend on how many
// rows the head projects at a time — a chunk of 3 rows (chunks ending
// inside a sequence, a last short chunk) against one chunk of every row —
// for cross-entropy and for logit KD, whose teacher logits follow the
// student's chunks. (The GEMM of 3 rows and of all of them may round
// differently: the losses agree to ~1e-8 relative.)
func TestLossChunksAgree(t *testing.T) {
	net, bf, _ := fixtureNet(t, "llama3-f32", "adapter")
	b := bf.batch()
	kd := &KD{Teacher: net.M, Backend: tensor.CPU{}, Divergence: "forward_kl", Temperature: 2, Alpha: 0.5}
	run := func(rows int) (sft, kdLoss float64, grads []float32) {
		defer func(lo, hi int) { lossRowsMin, lossRowsMax = lo, hi }(lossRowsMin, lossRowsMax)
		lossRowsMin, lossRowsMax = rows, rows
		if got := lossRowsFor(b.Len(), net.M.Config.VocabSize); got != rows {
			t.Fatalf("chunks of %d rows, want %d", got, rows)
		}
		net.ZeroGrads()
		sft, err := net.Step(b, b.Counted())
		if err != nil {
			t.Fatal(err)
		}
		if kdLoss, err = net.StepKD(b, b.Counted(), kd); err != nil {
			t.Fatal(err)
		}
		return sft, kdLoss, append([]float32(nil), net.Grads...)
	}
	s3, k3, g3 := run(3)
	sAll, kAll, gAll := run(b.Len())
	if math.Abs(s3-sAll) > 1e-7*math.Abs(sAll) || math.Abs(k3-kAll) > 1e-7*math.Abs(kAll) {
		t.Errorf("losses: cross-entropy %v in chunks of 3, %v in one; KD %v, %v", s3, sAll, k3, kAll)
	}
	checkClose(t, "gradients, chunks of 3 vs one", g3, to64(gAll), 1e-6)
}
