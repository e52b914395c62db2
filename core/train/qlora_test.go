package train

import (
	"math"
	"testing"

	"distill/core/quant"
	"distill/core/tensor"
)

// TestQLoRAEqualsLoRAOverDequantizedBase: training over an NF4 base gives the
// loss and adapter gradients of plain LoRA over a dense base holding the
// dequantised NF4 weights (torchtune's QLoRA parity check) — so everything
// the PyTorch parity tests prove of LoRA carries over to QLoRA.
func TestQLoRAEqualsLoRAOverDequantizedBase(t *testing.T) {
	for _, format := range []string{"nf4", "q8"} {
		t.Run(format, func(t *testing.T) {
			qnet, bf, _ := fixtureNet(t, "qwen3-f32", "adapter")
			rep, err := quant.QuantizeModel(qnet.M, format, format == "nf4", true)
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Tensors) != 7*len(qnet.M.Layers) {
				t.Fatalf("%d tensors quantised", len(rep.Tensors))
			}
			dnet, _, _ := fixtureNet(t, "qwen3-f32", "adapter")
			for l := range dnet.M.Layers {
				qL, dL := &qnet.M.Layers[l], &dnet.M.Layers[l]
				dst := []*tensor.Matrix{&dL.Q, &dL.K, &dL.V, &dL.O, &dL.Gate, &dL.Up, &dL.Down}
				for i, q := range qL.Projections() {
					qq := q.(*quant.Quantized)
					w := make([]float32, q.Rows()*q.Cols())
					qq.Q.DequantizeRows(0, q.Rows(), w)
					*dst[i] = tensor.FromF32("dequantized", w, q.Rows(), q.Cols())
				}
			}
			b := bf.batch()
			qs, err := qnet.Step(b, b.Counted())
			if err != nil {
				t.Fatal(err)
			}
			ds, err := dnet.Step(b, b.Counted())
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(qs-ds) > 1e-5*math.Abs(ds) {
				t.Errorf("loss over %s %.7f, over its dequantisation %.7f", format, qs, ds)
			}
			var num, den float64
			for i := range qnet.Grads {
				d := float64(qnet.Grads[i] - dnet.Grads[i])
				num += d * d
				den += float64(dnet.Grads[i]) * float64(dnet.Grads[i])
			}
			if rel := math.Sqrt(num / den); rel > 1e-5 {
				t.Errorf("adapter gradients differ by %.2e relative", rel)
			}
			t.Logf("%s: %.3f bits/param, loss %.5f", format, rep.BitsPerParam(), qs/float64(b.Counted()))
		})
	}
}
