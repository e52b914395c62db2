package train

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// The exported reference must be the trainer's ops, argument for argument:
// each is run beside the internal op on the same inputs and compared bit
// for bit (a swapped argument would show).
func TestReferenceIsTheTrainersOps(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	rnd := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(r.NormFloat64())
		}
		return v
	}
	const n, nH, nKV, hd = 7, 4, 2, 8
	x, w, dy := rnd(n*hd), rnd(hd), rnd(n*hd)
	o1, o2, s1, s2 := make([]float32, n*hd), make([]float32, n*hd), make([]float32, n), make([]float32, n)
	RMSNormForward(o1, s1, x, w, 1e-5)
	rmsNormFwd(o2, s2, x, w, 1e-5)
	same(t, "rmsnorm out", o1, o2)
	same(t, "rmsnorm rstd", s1, s2)
	dx1, dx2, dw1, dw2 := make([]float32, n*hd), make([]float32, n*hd), make([]float32, hd), make([]float32, hd)
	RMSNormBackward(dx1, dw1, dy, x, w, s1)
	rmsNormBwd(dx2, dw2, dy, x, w, s2)
	same(t, "rmsnorm dx", dx1, dx2)
	same(t, "rmsnorm dw", dw1, dw2)

	pos := []int{0, 1, 2, 0, 1, 2, 3}
	cos, sin := rnd(4*nH/2*hd), rnd(4*nH/2*hd)
	q := rnd(n * nH * hd)
	q1, q2 := slices.Clone(q), slices.Clone(q)
	RoPEAt(q1, n, nH, hd, pos, cos, sin, true)
	ropeAt(q2, n, nH, hd, pos, cos, sin, true)
	same(t, "rope", q1, q2)

	g, u, da := rnd(n*hd), rnd(n*hd), rnd(n*hd)
	SwiGLUForward(o1, g, u)
	swigluFwd(o2, g, u)
	same(t, "swiglu", o1, o2)
	SwiGLUBackward(dx1, o1, da, g, u)
	swigluBwd(dx2, o2, da, g, u)
	same(t, "swiglu dg", dx1, dx2)
	same(t, "swiglu du", o1, o2)

	seg := []int{0, 0, 0, 3, 3, 3, 3}
	k, v, dout := rnd(n*nKV*hd), rnd(n*nKV*hd), rnd(n*nH*hd)
	sh := attnShape{n: n, nH: nH, nKV: nKV, hd: hd, segStart: seg, scale: 0.35}
	a1, a2, l1, l2 := make([]float32, n*nH*hd), make([]float32, n*nH*hd), make([]float32, n*nH), make([]float32, n*nH)
	AttentionForward(a1, l1, q, k, v, n, nH, nKV, hd, seg, 0.35)
	attnFwd(a2, l2, q, k, v, sh)
	same(t, "attention out", a1, a2)
	same(t, "attention lse", l1, l2)
	g1 := [3][]float32{make([]float32, n*nH*hd), make([]float32, n*nKV*hd), make([]float32, n*nKV*hd)}
	g2 := [3][]float32{make([]float32, n*nH*hd), make([]float32, n*nKV*hd), make([]float32, n*nKV*hd)}
	AttentionBackward(g1[0], g1[1], g1[2], dout, q, k, v, a1, l1, n, nH, nKV, hd, seg, 0.35)
	attnBwd(g2[0], g2[1], g2[2], dout, q, k, v, a2, l2, sh)
	for i, name := range []string{"dq", "dk", "dv"} {
		same(t, "attention "+name, g1[i], g2[i])
	}

	const V = 11
	lg := rnd(3 * V)
	lg1, lg2 := slices.Clone(lg), slices.Clone(lg)
	ls1, ls2 := make([]float64, 3), make([]float64, 3)
	CrossEntropyRows(lg1, V, []int{0, 2, 5}, []int{1, 0, 3, 0, 0, 10}, 0.5, ls1)
	ceRows(lg2, V, []int{0, 2, 5}, []int{1, 0, 3, 0, 0, 10}, 0.5, ls2)
	same(t, "xent grad", lg1, lg2)
	if !slices.Equal(ls1, ls2) {
		t.Fatalf("xent losses %v != %v", ls1, ls2)
	}
}

func same(t *testing.T, name string, a, b []float32) {
	t.Helper()
	if !slices.Equal(a, b) {
		t.Fatalf("%s: exported and internal ops differ", name)
	}
}
