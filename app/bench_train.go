package app

import (
	"fmt"
	"io"
	"runtime/debug"
	"time"

	"distill/core/lora"
	"distill/core/model"
	"distill/core/tensor"
	"distill/core/train"
)

// benchTrain times LoRA training steps on m at seq tokens per micro-batch,
// recomputing each layer's activations in the backward or, with keep,
// keeping them, and prints tokens/s, step time, achieved GFLOP/s against
// the GEMM peak (peakName: sgemm's, or the bf16 GEMM's under --cpu-bf16),
// and the memory plan against the measured peak RSS.
func benchTrain(w io.Writer, be tensor.Backend, m *model.Model, seq, rank, steps int, keep bool, peak float64, peakName string) error {
	a, err := lora.NewFor(m, lora.Config{R: rank, Alpha: float64(2 * rank), Targets: lora.Modules})
	if err != nil {
		return err
	}
	lora.Init(a, 1)
	net, err := train.NewNet(be, m, a)
	if err != nil {
		return err
	}
	net.Checkpoint = !keep
	b := &train.Batch{}
	ids := make([]int, seq)
	mask := make([]bool, seq)
	for i := range ids {
		ids[i] = (i*7919 + 13) % m.Config.VocabSize
		mask[i] = true
	}
	b.AddSequence(ids, mask)
	var weights int64
	for _, L := range m.Layers {
		for _, p := range L.Projections() {
			weights += p.Bytes()
		}
	}
	weights += m.Embed.Bytes()
	if m.LMHead != m.Embed {
		weights += m.LMHead.Bytes()
	}
	plan := net.PlanMemory(seq, weights)
	debug.FreeOSMemory() // as train does: what quantising held goes back first
	net.Reserve(seq)
	opt := train.NewAdamW(len(net.Params), 0)
	best := time.Duration(1 << 62)
	for s := 0; s < steps; s++ {
		t0 := time.Now()
		net.ZeroGrads()
		if _, err := net.Step(b, b.Counted()); err != nil {
			return err
		}
		if err := opt.Update(net.Params, net.Grads, 1e-4); err != nil {
			return err
		}
		best = min(best, time.Since(t0))
	}
	// FLOPs of one step: projections 2·P·n forward and 2·P·n for dx in
	// backward, plus, with checkpointing, 2·R·n for the recompute, where R
	// is every layer's projections but the last layer's and the down
	// projections (the recompute skips them); the LM head 2·V·D·n forward
	// and backward; attention ~ 2·n²·H·hd per pass (causal half of
	// 4·n²·H·hd), ×(1 + 1 + 2) as above (×(1 + 2) kept); LoRA adds
	// ~6·r·(in+out)·n per module. The FLOPs executed: GFLOP/s is the
	// hardware's use, tokens/s the speed.
	c := m.Config
	var P, R float64
	for l, L := range m.Layers {
		for i, p := range L.Projections() {
			P += float64(p.Rows() * p.Cols())
			if down := i == 6; l < len(m.Layers)-1 && !down { // q, k, v, o, gate, up, down
				R += float64(p.Rows() * p.Cols())
			}
		}
	}
	n := float64(seq)
	head := 2 * float64(c.VocabSize*c.HiddenSize) * n * 2
	attn := 2 * n * n * float64(c.NumHeads*c.HeadDim) * float64(c.NumLayers) * 4
	loraF := 6 * float64(len(a.Params)) * n * 1.5
	flops := 4*P*n + 2*R*n + head + attn + loraF
	if keep {
		flops = 4*P*n + head + attn*3/4 + loraF
	}
	gflops := flops / best.Seconds() / 1e9
	mode := "checkpointing"
	if keep {
		mode = "activations kept"
	}
	fmt.Fprintf(w, "  train LoRA r=%d, seq %d, %s: step %.2f s, %.0f tokens/s, %.0f GFLOP/s (%.0f%% of %s peak)\n",
		rank, seq, mode, best.Seconds(), n/best.Seconds(), gflops, 100*gflops/peak, peakName)
	fmt.Fprintf(w, "  memory plan %.0f MB, measured peak RSS %.0f MB (%.0f%%)\n", float64(plan.Total())/1e6, float64(train.PeakResidentBytes())/1e6,
		100*float64(train.PeakResidentBytes())/float64(plan.Total()))
	return nil
}
