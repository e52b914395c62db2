package train

import (
	"math"
	"testing"

	"distill/core/lora"
	"distill/core/model"
	"distill/core/tensor"
)

// cpuAccel stands in for a device (cuda/devnet) so that Net's hand-over to
// an accelerator — the row objectives' ordering and signs, the gradients'
// accumulation, the micro-batch counter, the dropout keys — is tested where
// there is no GPU. Its steps run on a second Net over the same model and
// adapter (parameters shared), through the row-objective contract a device
// implements: log-probs of the targeted rows in row order, then gradients
// d loss / d log p per row.
type cpuAccel struct{ net *Net }

func init() {
	RegisterAccelerated("cpu-stand-in", func(m *model.Model, a *lora.Adapter) (Accelerated, error) {
		n, err := NewNet(tensor.CPU{}, m, a)
		return &cpuAccel{net: n}, err
	})
}

func (c *cpuAccel) Step(b *Batch, denom int, _ DropoutMask) (float64, error) {
	return c.net.Step(b, denom)
}
func (c *cpuAccel) ZeroGrads() error                  { c.net.ZeroGrads(); return nil }
func (c *cpuAccel) UploadParams() error               { return nil }
func (c *cpuAccel) DownloadGrads(dst []float32) error { copy(dst, c.net.Grads); return nil }
func (c *cpuAccel) Close()                            {}
func (c *cpuAccel) KDReady(*KD) bool                  { return true }
func (c *cpuAccel) StepKD(b *Batch, denom int, _ DropoutMask, kd *KD) (float64, error) {
	return c.net.StepKD(b, denom, kd)
}

// rowLogProbs is log p(target) of b's targeted rows, in row order, from the
// workspace's final hidden states.
func (c *cpuAccel) rowLogProbs(ws *workspace, b *Batch) []float64 {
	var out []float64
	c.net.head(ws, b.Targets, false, func(rows []int, logits []float32, losses []float64) {
		logProbRows(logits, c.net.M.Config.VocabSize, rows, b.Targets, losses)
		out = append(out, losses[:len(rows)]...)
	})
	return out
}

func (c *cpuAccel) LogProbs(b *Batch, adapterOff bool) ([]float64, error) {
	nt := c.net
	ws := nt.workspace(b.Len(), maxSegment(b.SegStart))
	nt.ws, nt.adapterOff, nt.evaluating = ws, adapterOff, true
	defer func() { nt.ws, nt.adapterOff, nt.evaluating = nil, false, false }()
	nt.forward(b, ws)
	return c.rowLogProbs(ws, b), nil
}

func (c *cpuAccel) StepRows(b *Batch, _ DropoutMask, grad func(logp []float64) ([]float64, error)) error {
	nt := c.net
	V := nt.M.Config.VocabSize
	var gerr error
	err := nt.run(b, func(ws *workspace) float64 {
		g, err := grad(c.rowLogProbs(ws, b))
		if err != nil {
			gerr = err
			return 0
		}
		k := 0
		nt.head(ws, b.Targets, true, func(rows []int, logits []float32, losses []float64) {
			// d loss / d logits = g·(onehot − softmax), a device's row-scaled
			// cross-entropy with scale −g.
			for i, r := range rows {
				lg := logits[i*V : (i+1)*V]
				softmaxInPlace(lg)
				s := float32(-g[k])
				for j := range lg {
					lg[j] *= s
				}
				lg[b.Targets[r]] -= s
				losses[i] = 0
				k++
			}
		})
		return 0
	})
	if gerr != nil {
		return gerr
	}
	return err
}

// A Net with an accelerator attached gives DPO's reference and policy
// log-probs, its pair statistics and gradients, and KD's loss and
// gradients exactly as the Net alone — with dropout on, over several
// micro-batches (the masks follow the micro-batch counter on both sides).
func TestAcceleratedDPOAndKDMatchTheNet(t *testing.T) {
	plain, _, _ := fixtureNet(t, "llama3-f32", "adapter")
	acc, _, _ := fixtureNet(t, "llama3-f32", "adapter")
	for _, n := range []*Net{plain, acc} {
		n.Adapter.Config.Dropout, n.DropoutSeed = 0.2, 11
	}
	if ok, err := acc.Accelerate("cpu-stand-in"); !ok {
		t.Fatal(err)
	}
	// The stand-in draws its own masks (a device uses the DropoutMask it is
	// given): the same seed, and a counter that moves in step with the host's.
	acc.accel.(*cpuAccel).net.DropoutSeed = 11
	b := dpoBatch(plain.M.Config.VocabSize)
	d := &DPO{Beta: 0.1, Loss: "sigmoid", LabelSmoothing: 0.05}
	for _, off := range []bool{true, false} {
		want, err := plain.SequenceLogProbs(b, off)
		if err != nil {
			t.Fatal(err)
		}
		got, err := acc.SequenceLogProbs(b, off)
		if err != nil {
			t.Fatal(err)
		}
		for i := range want {
			if math.Abs(got[i]-want[i]) > 1e-9 {
				t.Fatalf("adapter off %v: segment %d: %v, want %v", off, i, got[i], want[i])
			}
		}
	}
	ref, _ := plain.SequenceLogProbs(b, true)
	for step := range 3 { // micro-batches accumulate; the dropout masks move on
		ws, err := plain.StepDPO(b, ref, 4, d)
		if err != nil {
			t.Fatal(err)
		}
		gs, err := acc.StepDPO(b, ref, 4, d)
		if err != nil {
			t.Fatal(err)
		}
		if gs.Pairs != ws.Pairs || gs.Correct != ws.Correct || math.Abs(gs.Loss-ws.Loss) > 1e-9 ||
			math.Abs(gs.RewardChosen-ws.RewardChosen) > 1e-9 || math.Abs(gs.RewardRejected-ws.RewardRejected) > 1e-9 {
			t.Fatalf("micro-batch %d: stats %+v, want %+v", step, gs, ws)
		}
	}
	kd := &KD{Teacher: plain.M, Backend: tensor.CPU{}, Divergence: "jsd", Temperature: 1.5, Alpha: 0.3, Beta: 0.5}
	sb := dpoBatch(plain.M.Config.VocabSize)
	wl, err := plain.StepKD(sb, sb.Counted(), kd)
	if err != nil {
		t.Fatal(err)
	}
	gl, err := acc.StepKD(sb, sb.Counted(), kd)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(gl-wl) > 1e-9 {
		t.Fatalf("KD loss %v, want %v", gl, wl)
	}
	if plain.MicroBatches() != acc.MicroBatches() {
		t.Fatalf("micro-batches %d on the accelerated Net, %d on the plain one", acc.MicroBatches(), plain.MicroBatches())
	}
	worst := 0.0
	for i := range plain.Grads {
		worst = max(worst, math.Abs(float64(acc.Grads[i]-plain.Grads[i])))
	}
	if worst > 1e-6 {
		t.Fatalf("accumulated gradients differ by up to %g", worst)
	}
}
