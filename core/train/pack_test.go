package train

import (
	"math"
	"testing"
)

// TestPackingChangesNothing: the summed loss and the gradients of three
// examples are the same packed into one micro-batch as run one by one.
func TestPackingChangesNothing(t *testing.T) {
	net, _, _ := fixtureNet(t, "qwen2-f32", "adapter")
	var exs []Example
	for k, n := range []int{7, 12, 5} {
		ex := Example{IDs: make([]int, n), Mask: make([]bool, n)}
		for i := range ex.IDs {
			ex.IDs[i] = (i*31 + k*97 + 3) % net.M.Config.VocabSize
			ex.Mask[i] = i >= 2
		}
		exs = append(exs, ex)
	}
	packed, err := Pack(exs, 24)
	if err != nil || len(packed) != 1 {
		t.Fatalf("Pack: %d batches, %v", len(packed), err)
	}
	denom := packed[0].Counted()
	net.ZeroGrads()
	sumPacked, err := net.Step(packed[0], denom)
	if err != nil {
		t.Fatal(err)
	}
	gPacked := append([]float32(nil), net.Grads...)
	net.ZeroGrads()
	single, _ := Pack(exs, 12)
	if len(single) != 3 {
		t.Fatalf("Pack at 12 tokens: %d batches, want 3", len(single))
	}
	var sum float64
	for _, b := range single {
		s, err := net.Step(b, denom)
		if err != nil {
			t.Fatal(err)
		}
		sum += s
	}
	if math.Abs(sum-sumPacked) > 1e-4*math.Abs(sum) {
		t.Fatalf("packed loss %.6f, separate %.6f", sumPacked, sum)
	}
	for i := range gPacked {
		if d := math.Abs(float64(gPacked[i] - net.Grads[i])); d > 1e-5+1e-4*math.Abs(float64(net.Grads[i])) {
			t.Fatalf("gradient %d: packed %g, separate %g", i, gPacked[i], net.Grads[i])
		}
	}
	if _, err := Pack(exs, 6); err == nil {
		t.Fatal("an example longer than a micro-batch was accepted")
	}
}
