//go:build cuda

package devnet_test

import (
	"fmt"
	"os"
	"strconv"

	"distill/core/lora"
	"distill/core/model"
	"distill/core/tensor"
	"distill/core/train"
	"distill/cuda"
	"distill/cuda/devnet"
)

// stepBench is one configured training step of the benchmarks, set up
// from the DISTILL_BENCH_* knobs as they are when it is made (so a sweep
// can make one per variant over the same model): an SFT step on devnet.Net
// itself, or a DPO or logit-KD step as a run takes it (train.Net with the
// device attached).
type stepBench struct {
	step   func() error // one step, gradients zeroed first
	close  func()
	net    *devnet.Net  // the SFT step's (nil for DPO and KD)
	batch  *train.Batch // its batch
	tokens int          // a step's tokens
	flops  float64      // a step's model FLOPs (stepFLOPs)
	plan   func() train.Plan
}

// newStepBench sets up a step of seq tokens over m and a on d.
// DISTILL_BENCH_KEEP=1 keeps every layer's activations (attn: the
// attention side), DISTILL_BENCH_DROPOUT=p runs LoRA dropout at p,
// DISTILL_BENCH_ATTN=simple|gemm takes another attention, DISTILL_BENCH_SEQS=k
// packs k sequences of seq tokens, DISTILL_BENCH_METHOD=dpo|kd times that
// method's step instead.
func newStepBench(d *cuda.Device, m *model.Model, a *lora.Adapter, s model.Shape, seq int) (*stepBench, error) {
	keep := os.Getenv("DISTILL_BENCH_KEEP")
	if method := os.Getenv("DISTILL_BENCH_METHOD"); method == "dpo" || method == "kd" {
		return newRowsBench(m, a, s, seq, keep, method)
	} else if method != "" {
		return nil, fmt.Errorf("DISTILL_BENCH_METHOD %q: dpo, kd or unset", method)
	}
	seqs := 1
	if v, err := strconv.Atoi(os.Getenv("DISTILL_BENCH_SEQS")); err == nil && v > 1 {
		seqs = v
	}
	net, err := devnet.New(d, m, a)
	if err != nil {
		return nil, err
	}
	net.SimpleAttention = os.Getenv("DISTILL_BENCH_ATTN") == "simple"
	net.GemmAttention = os.Getenv("DISTILL_BENCH_ATTN") == "gemm"
	net.KeepActivations = keep == "1"  // no recomputed forward (memory permitting)
	net.KeepAttention = keep == "attn" // the attention side kept
	bt := &train.Batch{}
	for k := range seqs {
		ids, mask := make([]int, seq), make([]bool, seq)
		for i := range ids {
			ids[i], mask[i] = (i*7919+13+k*104729)%s.Vocab, true
		}
		bt.AddSequence(ids, mask)
	}
	// LoRA dropout (distill's default 0.05) keeps the adapter's backward
	// apart from the base's GEMMs.
	var drop train.DropoutMask
	if p, err := strconv.ParseFloat(os.Getenv("DISTILL_BENCH_DROPOUT"), 64); err == nil && p > 0 && p < 1 {
		drop = func(site int) (uint64, uint64, float32) {
			return uint64(site) << 32, uint64(p * (1 << 63) * 2), float32(1 / (1 - p))
		}
	}
	tokens := seqs * seq
	return &stepBench{
		step: func() error {
			if err := net.ZeroGrads(); err != nil {
				return err
			}
			_, err := net.Step(bt, bt.Counted(), drop)
			return err
		},
		close: net.Close, net: net, batch: bt, tokens: tokens, flops: stepFLOPs(s, tokens, seq),
		plan: func() train.Plan {
			tn, err := train.NewNet(tensor.CPU{}, m, a)
			if err != nil {
				return train.Plan{}
			}
			tn.Checkpoint, tn.KeepAttention = !net.KeepActivations, net.KeepAttention
			return tn.DevicePlan(tokens, m.HeldBytes(), true)
		},
	}, nil
}

// newRowsBench: a DPO or logit-KD step as a run takes it (train.Net with
// the device attached: DPO's reference log-probs, then the policy's step
// with the host's pair statistics between its forward and backward; KD's
// teacher — the same model, a second upload — forward, then the student's
// step), recomputing or keeping activations as keep says. A DPO
// micro-batch is one pair: prompt and chosen, prompt and rejected, of
// seq/2 tokens each. Model FLOPs: the step's over two segments, plus the
// reference's or the teacher's forward (half a step's).
func newRowsBench(m *model.Model, a *lora.Adapter, s model.Shape, seq int, keep, method string) (*stepBench, error) {
	net, err := train.NewNet(tensor.CPU{}, m, a)
	if err != nil {
		return nil, err
	}
	net.Checkpoint, net.KeepAttention = keep != "1", keep == "attn"
	if attached, err := net.Accelerate("cuda"); !attached {
		return nil, fmt.Errorf("Accelerate: %v", err)
	}
	bt := &train.Batch{}
	half := seq / 2
	for seg := range 2 {
		ids, mask := make([]int, half), make([]bool, half)
		for i := range ids { // a shared prompt, then two answers
			v := i*7919 + 13
			if i >= half/2 {
				v += seg * 104729
			}
			ids[i], mask[i] = v%s.Vocab, i >= half/2
		}
		bt.AddSequence(ids, mask)
	}
	kd := &train.KD{Teacher: m, Backend: tensor.CPU{}, Divergence: "forward_kl", Temperature: 2, Alpha: 0.5}
	dpo := &train.DPO{Beta: 0.1, Loss: "sigmoid"}
	return &stepBench{
		step: func() error {
			net.ZeroGrads()
			if method == "kd" {
				_, err := net.StepKD(bt, bt.Counted(), kd)
				return err
			}
			ref, err := net.SequenceLogProbs(bt, true)
			if err != nil {
				return err
			}
			_, err = net.StepDPO(bt, ref, 1, dpo)
			return err
		},
		close: net.Close, batch: bt, tokens: seq, flops: 1.5 * stepFLOPs(s, seq, half),
		plan: func() train.Plan {
			if method == "kd" {
				return net.DeviceKDPlan(seq, m.HeldBytes(), true, m, m.HeldBytes(), true)
			}
			return net.DevicePlan(seq, m.HeldBytes(), true)
		},
	}, nil
}
