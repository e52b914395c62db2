package train

import (
	"math"
	"testing"
)

// TestDPOPairLossByHand: the loss formulas against values worked out by
// hand. β = 0.1, h_c = 1, h_r = −1: z = 0.2, −log σ(0.2) = log(1 + e^−0.2)
// = 0.598138869…; with ε = 0.1: 0.9·0.598138869 + 0.1·log(1 + e^0.2)
// = 0.9·0.598138869 + 0.1·0.798138869 = 0.618138869; IPO with β = 0.5:
// (2 − 1)² = 1.
func TestDPOPairLossByHand(t *testing.T) {
	for _, tc := range []struct {
		d            DPO
		hc, hr, want float64
	}{
		{DPO{Beta: 0.1, Loss: "sigmoid"}, 1, -1, 0.5981388693},
		{DPO{Beta: 0.1, LabelSmoothing: 0.1, Loss: "sigmoid"}, 1, -1, 0.6181388693},
		{DPO{Beta: 0.5, Loss: "ipo"}, 1, -1, 1},
		{DPO{Beta: 0.1, Loss: "sigmoid"}, 0, 0, math.Ln2},
	} {
		loss, dhc, dhr := tc.d.pairLoss(tc.hc, tc.hr)
		if math.Abs(loss-tc.want) > 1e-9 {
			t.Errorf("%+v (%g, %g): loss %.10f, want %.10f", tc.d, tc.hc, tc.hr, loss, tc.want)
		}
		const eps = 1e-6
		up, _, _ := tc.d.pairLoss(tc.hc+eps, tc.hr)
		down, _, _ := tc.d.pairLoss(tc.hc-eps, tc.hr)
		if fd := (up - down) / (2 * eps); math.Abs(fd-dhc) > 1e-6 {
			t.Errorf("%+v: dhc %.8f, finite difference %.8f", tc.d, dhc, fd)
		}
		up, _, _ = tc.d.pairLoss(tc.hc, tc.hr+eps)
		down, _, _ = tc.d.pairLoss(tc.hc, tc.hr-eps)
		if fd := (up - down) / (2 * eps); math.Abs(fd-dhr) > 1e-6 {
			t.Errorf("%+v: dhr %.8f, finite difference %.8f", tc.d, dhr, fd)
		}
	}
}

// dpoBatch builds two pairs sharing prompts, chosen then rejected.
func dpoBatch(V int) *Batch {
	b := &Batch{}
	for p := 0; p < 2; p++ {
		prompt := []int{1, (7 + p) % V, (19 + 3*p) % V}
		for _, completion := range [][]int{{(40 + p) % V, (41 + p) % V, 2}, {(90 + p) % V, 2}} {
			ids := append(append([]int(nil), prompt...), completion...)
			mask := make([]bool, len(ids))
			for i := len(prompt); i < len(ids); i++ {
				mask[i] = true
			}
			b.AddSequence(ids, mask)
		}
	}
	return b
}

// TestStepDPO: with the adapter's B at zero the policy is the reference, so
// every pair's loss is log 2; and the gradient matches finite differences.
func TestStepDPO(t *testing.T) {
	net, _, _ := fixtureNet(t, "qwen2-f32", "adapter")
	d := &DPO{Beta: 0.5, LabelSmoothing: 0.05, Loss: "sigmoid"}
	b := dpoBatch(net.M.Config.VocabSize)
	ref, err := net.SequenceLogProbs(b, true)
	if err != nil {
		t.Fatal(err)
	}
	pol, _ := net.SequenceLogProbs(b, false)
	if math.Abs(pol[0]-ref[0]) < 1e-3 {
		t.Fatal("the adapter does not change the sequence log-probs: the reference test would be vacuous")
	}
	loss := func() float64 {
		st, err := net.StepDPO(b, ref, 2, d)
		if err != nil {
			t.Fatal(err)
		}
		return st.Loss / 2
	}
	net.ZeroGrads()
	loss()
	grads := append([]float32(nil), net.Grads...)
	for k := 0; k < 10; k++ {
		i := (k*7919 + 3) % len(net.Params)
		old := net.Params[i]
		const eps = 1e-2
		net.Params[i] = old + eps
		up := loss()
		net.Params[i] = old - eps
		down := loss()
		net.Params[i] = old
		fd := (up - down) / (2 * eps)
		if diff := math.Abs(fd - float64(grads[i])); diff > 1e-3+2e-2*math.Abs(fd) {
			t.Errorf("param %d: analytic %.6f, finite difference %.6f", i, grads[i], fd)
		}
	}
	// Policy = reference: zero the adapter's B.
	for _, layer := range net.Adapter.Layers {
		for _, p := range layer {
			if p != nil {
				clear(p.B)
			}
		}
	}
	st, err := net.StepDPO(b, ref, 2, &DPO{Beta: 0.5, Loss: "sigmoid"})
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(st.Loss/2-math.Ln2) > 1e-4 || st.Pairs != 2 {
		t.Fatalf("policy = reference: mean loss %.6f over %d pairs, want log 2", st.Loss/2, st.Pairs)
	}
}
