package train

import (
	"math"
	"testing"
)

// TestDropoutGradientsByFiniteDifference: with LoRA dropout on, the analytic
// adapter gradients equal finite differences of the loss under the same
// masks (the mask is a function of the micro-batch counter, reset here).
func TestDropoutGradientsByFiniteDifference(t *testing.T) {
	net, bf, _ := fixtureNet(t, "llama3-f32", "adapter")
	net.Adapter.Config.Dropout = 0.3
	net.Checkpoint = true // the recompute must see the same masks
	b := bf.batch()
	n := b.Counted()
	loss := func() float64 {
		net.microBatches = 7
		s, err := net.Step(b, n)
		if err != nil {
			t.Fatal(err)
		}
		return s / float64(n)
	}
	net.ZeroGrads()
	base := loss()
	grads := append([]float32(nil), net.Grads...)
	net.Adapter.Config.Dropout = 0
	if plain := loss(); math.Abs(plain-base) < 1e-3 {
		t.Fatalf("dropout changed the loss by only %g", plain-base)
	}
	net.Adapter.Config.Dropout = 0.3
	worst := 0.0
	for k := 0; k < 12; k++ {
		i := (k*7919 + 101) % len(net.Params)
		old := net.Params[i]
		const eps = 1e-2
		net.Params[i] = old + eps
		up := loss()
		net.Params[i] = old - eps
		down := loss()
		net.Params[i] = old
		fd := (up - down) / (2 * eps)
		d := math.Abs(fd - float64(grads[i]))
		worst = max(worst, d)
		// f32 loss differences at eps 1e-2: a few e-4 absolute.
		if d > 2e-3+2e-2*math.Abs(fd) {
			t.Errorf("param %d: analytic %.6f, finite difference %.6f", i, grads[i], fd)
		}
	}
	t.Logf("worst |analytic − FD| = %.2e", worst)
}

func TestDropoutMaskRate(t *testing.T) {
	net, _, _ := fixtureNet(t, "llama3-f32", "adapter")
	net.Adapter.Config.Dropout = 0.25
	x := make([]float32, 100000)
	for i := range x {
		x[i] = 1
	}
	out := net.dropout(make([]float32, len(x)), x, 3)
	zeros := 0
	for _, v := range out {
		switch v {
		case 0:
			zeros++
		case 1 / 0.75:
		default:
			t.Fatalf("kept value %g, want %g", v, 1/0.75)
		}
	}
	if rate := float64(zeros) / float64(len(x)); math.Abs(rate-0.25) > 0.01 {
		t.Fatalf("dropped %.3f, want 0.25", rate)
	}
	other := net.dropout(make([]float32, len(x)), x, 4)
	same := 0
	for i := range out {
		if out[i] == other[i] {
			same++
		}
	}
	if same == len(x) {
		t.Fatal("two modules got the same mask")
	}
}

// Validation scores the adapter as it will be used: SequenceLogProbs applies
// no dropout (it once did, adding noise to every validation loss).
func TestSequenceLogProbsWithoutDropout(t *testing.T) {
	net, bf, _ := fixtureNet(t, "llama3-f32", "adapter")
	b := bf.batch()
	net.Adapter.Config.Dropout = 0
	plain, err := net.SequenceLogProbs(b, false)
	if err != nil {
		t.Fatal(err)
	}
	net.Adapter.Config.Dropout = 0.3
	got, err := net.SequenceLogProbs(b, false)
	if err != nil {
		t.Fatal(err)
	}
	for i := range plain {
		if got[i] != plain[i] {
			t.Fatalf("segment %d: %v with dropout configured, %v without", i, got[i], plain[i])
		}
	}
	// Training steps still drop.
	n := b.Counted()
	s1, _ := net.Step(b, n)
	net.Adapter.Config.Dropout = 0
	s0, _ := net.Step(b, n)
	if s1 == s0 {
		t.Fatal("a training step with dropout 0.3 equals one without")
	}
}
