package quant

import (
	"math/rand/v2"
	"testing"

	"distill/core/tensor"
)

// dequantParts dequantises element e from the parts alone, as a device
// backend does: the parts must carry everything NF4's layout needs.
func dequantParts(p tensor.NF4Parts, e int) float32 {
	c := p.Codes[e/2]
	if e%2 == 0 {
		c >>= 4
	}
	b := e / NF4BlockSize
	scale := float32(0)
	if p.Absmax != nil {
		scale = p.Absmax[b]
	} else {
		s := float32(p.Map2[p.QAbsmax[b]] * p.Absmax2[b/DQBlockSize])
		scale = s + p.Offset
	}
	return NF4Code[c&15] * scale
}

func TestNF4Parts(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	// 33×77: odd columns (rows start mid-byte) and a short last block.
	for _, dq := range []bool{false, true} {
		w := randWeights(r, tensor.BF16, 33, 77)
		q, err := Quantize(w, "nf4", dq)
		if err != nil {
			t.Fatal(err)
		}
		p, ok := q.NF4()
		if !ok || p.Rows != 33 || p.Cols != 77 || (p.Absmax == nil) != dq {
			t.Fatalf("dq=%v: NF4() = ok %v, %d×%d, absmax nil %v", dq, ok, p.Rows, p.Cols, p.Absmax == nil)
		}
		want := make([]float32, 33*77)
		q.Q.(*NF4).Dequantize(want)
		for e, v := range want {
			if got := dequantParts(p, e); got != v {
				t.Fatalf("dq=%v: element %d from the parts = %v, Dequantize = %v", dq, e, got, v)
			}
		}
	}
	q8, err := Quantize(randWeights(r, tensor.F32, 4, 64), "q8", false)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := q8.NF4(); ok {
		t.Fatal("Q8 matrix reports NF4 parts")
	}
}
