package train

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"distill/core/lora"
	"distill/core/tensor"
)

// Finite-difference checks of linearBwd (frozen W, optional bias, LoRA pair)
// and of a whole Net's adapter gradients. Helpers are in ops_test.go.

// linearRef64: y(n, out) = x·Wᵀ + bias + s·(x·Aᵀ)·Bᵀ, with A (r, in) and
// B (out, r); a nil bias or A leaves that term out.
func linearRef64(x, w, bias, a, b []float64, n, in, out, r int, s float64) []float64 {
	y := make([]float64, n*out)
	for t := 0; t < n; t++ {
		xt := x[t*in : (t+1)*in]
		u := make([]float64, r)
		for k := 0; a != nil && k < r; k++ {
			for i, xv := range xt {
				u[k] += xv * a[k*in+i]
			}
		}
		for o := 0; o < out; o++ {
			var acc float64
			for i, xv := range xt {
				acc += xv * w[o*in+i]
			}
			if bias != nil {
				acc += bias[o]
			}
			for k := 0; a != nil && k < r; k++ {
				acc += s * u[k] * b[o*r+k]
			}
			y[t*out+o] = acc
		}
	}
	return y
}

// linearNet is the least Net linearFwd/linearBwd need: the CPU backend and
// an adapter config of rank r and alpha 2r, so scaling s = 2.
func linearNet(t *testing.T, r int) *Net {
	t.Helper()
	be, err := tensor.Open("cpu")
	if err != nil {
		t.Fatal(err)
	}
	nt := &Net{Be: be, Adapter: &lora.Adapter{Config: lora.Config{R: r, Alpha: float64(2 * r)}}}
	if s := nt.Adapter.Config.Scaling(); s != 2 {
		t.Fatalf("scaling %g, want 2", s)
	}
	return nt
}

// randWeight is a random (out, in) weight at dtype dt and the f32 values it
// holds (BF16-rounded for BF16).
func randWeight(rng *rand.Rand, dt tensor.DType, out, in int, scale float64) (*tensor.Tensor, []float32) {
	v := make([]float32, out*in)
	for i := range v {
		v[i] = float32(scale * rng.NormFloat64())
	}
	if dt == tensor.F32 {
		return tensor.FromF32("w", v, out, in), v
	}
	w := tensor.New("w", dt, out, in)
	h := w.U16s()
	for i, x := range v {
		h[i] = tensor.F32ToBF16(x)
		v[i] = tensor.BF16ToF32(h[i])
	}
	return w, v
}

func TestLinearBackwardFD(t *testing.T) {
	const in, out, r, s = 12, 10, 3, 2.0
	for ci, c := range []struct {
		name                string
		n                   int
		dt                  tensor.DType
		bias, adapter, full bool // full: also gw, gb (full fine-tuning)
	}{
		{"f32", 5, tensor.F32, false, true, false},
		{"f32+bias", 5, tensor.F32, true, true, false},
		{"f32+bias/n=9", 9, tensor.F32, true, true, false}, // T ≥ 8: the sgemm forward
		{"bf16+bias", 5, tensor.BF16, true, true, false},   // MatMulTAdd widens W
		{"bf16/no adapter", 5, tensor.BF16, false, false, false},
		{"f32+bias/full", 5, tensor.F32, true, false, true},
		{"f32/full", 5, tensor.F32, false, false, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			n := c.n
			nt := linearNet(t, r)
			rng := newRand(uint64(40 + ci))
			w, wv := randWeight(rng, c.dt, out, in, 1/math.Sqrt(in))
			x := randn(rng, n*in, 1)
			dy := randn(rng, n*out, 1)
			var bias []float32
			if c.bias {
				bias = randn(rng, out, 1)
			}
			var p, gp *lora.Pair
			if c.adapter {
				p = &lora.Pair{In: in, Out: out, A: randn(rng, r*in, 0.3), B: randn(rng, out*r, 0.3)}
				gp = &lora.Pair{In: in, Out: out, A: make([]float32, r*in), B: make([]float32, out*r)}
			}
			x64, w64, b64 := to64(x), to64(wv), to64(bias) // nil stays nil
			var a64, bb64 []float64
			if p != nil {
				a64, bb64 = to64(p.A), to64(p.B)
			}

			y, u, du := make([]float32, n*out), make([]float32, n*r), make([]float32, n*r)
			nt.linearFwd(y, x, n, w, bias, p, u, 0)
			// f32 dots of 12 terms: a few ulps of the largest term.
			checkClose(t, "forward vs f64", y, linearRef64(x64, w64, b64, a64, bb64, n, in, out, r, s), 1e-6)

			var gw, gb []float32
			if c.full {
				gw = make([]float32, out*in)
				if c.bias {
					gb = make([]float32, out)
				}
			}
			dx := make([]float32, n*in)
			nt.linearBwd(dx, dy, x, n, w, p, gp, u, du, gw, gb, 0)

			// Sharp: L is linear in x, W, bias and bilinear in (A, B), so the
			// f64 differences are exact to rounding; the analytic gradients
			// are f32 sums of ≤ 12 products. Observed ≤ 1.2e-7.
			l64 := func() float64 { return dot64(dy, linearRef64(x64, w64, b64, a64, bb64, n, in, out, r, s)) }
			checkClose(t, "dx vs f64 FD", dx, fd64(x64, fdRel64, l64), 1e-6)
			if p != nil {
				checkClose(t, "dA vs f64 FD", gp.A, fd64(a64, fdRel64, l64), 1e-6)
				checkClose(t, "dB vs f64 FD", gp.B, fd64(bb64, fdRel64, l64), 1e-6)
			}
			if gw != nil {
				checkClose(t, "dW vs f64 FD", gw, fd64(w64, fdRel64, l64), 1e-6)
			}
			if gb != nil {
				checkClose(t, "dbias vs f64 FD", gb, fd64(b64, fdRel64, l64), 1e-6)
			}

			// Loose: the f32 forward, step 1e-2 (no truncation error for the
			// linear x and the bilinear A·B, only f32 rounding of y: ~6e-8·|y|
			// over 2e-2). Observed ≤ 2e-5.
			l32 := func() float64 { nt.linearFwd(y, x, n, w, bias, p, u, 0); return dot64(dy, y) }
			checkClose(t, "dx vs f32 FD", dx, fd32(x, 1e-2, l32), 2e-4)
			if p != nil {
				checkClose(t, "dA vs f32 FD", gp.A, fd32(p.A, 1e-2, l32), 2e-4)
				checkClose(t, "dB vs f32 FD", gp.B, fd32(p.B, 1e-2, l32), 2e-4)
			}
			if gw != nil { // wv is W's storage (FromF32 does not copy)
				checkClose(t, "dW vs f32 FD", gw, fd32(wv, 1e-2, l32), 2e-4)
			}
			if gb != nil {
				checkClose(t, "dbias vs f32 FD", gb, fd32(bias, 1e-2, l32), 2e-4)
			}

			// Contract: dx, dA and dB are added to (u must be the forward's).
			nt.linearFwd(y, x, n, w, bias, p, u, 0)
			dx2 := append([]float32(nil), dx...)
			var gp2 *lora.Pair
			if p != nil {
				gp2 = &lora.Pair{In: in, Out: out, A: append([]float32(nil), gp.A...), B: append([]float32(nil), gp.B...)}
			}
			gw2, gb2 := append([]float32(nil), gw...), append([]float32(nil), gb...)
			nt.linearBwd(dx2, dy, x, n, w, p, gp2, u, du, nilIfNil(gw, gw2), nilIfNil(gb, gb2), 0)
			// Accumulating in the GEMM's β = 1 sums in another order than the
			// first pass: a few ulps.
			checkClose(t, "dx accumulates", dx2, scaled(dx, 2), 1e-6)
			if p != nil {
				checkClose(t, "dA accumulates", gp2.A, scaled(gp.A, 2), 1e-6)
				checkClose(t, "dB accumulates", gp2.B, scaled(gp.B, 2), 1e-6)
			}
			if gw != nil {
				checkClose(t, "dW accumulates", gw2, scaled(gw, 2), 1e-6)
			}
			if gb != nil {
				checkClose(t, "dbias accumulates", gb2, scaled(gb, 2), 1e-6)
			}
		})
	}
}

// The widened path of MatMulTAdd over several tiles of W's rows: with
// in = 32768 a 2 MiB tile holds 16 rows, so out = 40 runs tiles of 16, 16
// and 8, each reading its own columns of dy. dx = dy·W against float64.
func TestLinearBackwardBF16Tiles(t *testing.T) {
	const n, in, out = 3, 32768, 40
	nt := linearNet(t, 1)
	rng := newRand(5)
	w, wv := randWeight(rng, tensor.BF16, out, in, 1)
	dy := randn(rng, n*out, 1)
	want := make([]float64, n*in)
	for row := 0; row < n; row++ {
		for o := 0; o < out; o++ {
			g := float64(dy[row*out+o])
			for i := 0; i < in; i++ {
				want[row*in+i] += g * float64(wv[o*in+i])
			}
		}
	}
	dx := make([]float32, n*in)
	nt.linearBwd(dx, dy, nil, n, w, nil, nil, nil, nil, nil, nil, 0)
	// Each value is an f32 sum of 40 products.
	checkClose(t, "dx vs f64", dx, want, 1e-6)
}

// The whole model: d(mean token loss)/d(adapter parameter) by central
// differences of Net.Step's loss, for one random parameter of every
// module's A and B (14 in all), plain and packed batches.
func TestNetGradientsFD(t *testing.T) {
	net, bf, _ := fixtureNet(t, "llama3-f32", "adapter")
	for bi, b := range []*Batch{bf.batch(), bf.packedBatch()} {
		name := []string{"batch", "packed"}[bi]
		t.Run(name, func(t *testing.T) {
			denom := b.Counted()
			loss := func() float64 {
				net.ZeroGrads()
				sum, err := net.Step(b, denom)
				if err != nil {
					t.Fatal(err)
				}
				return sum / float64(denom)
			}
			loss()
			grads := append([]float32(nil), net.Grads...)

			rng := newRand(uint64(77 + bi))
			params := net.Adapter.Params
			var idx []int
			var labels []string
			// One parameter per (module, A|B), in a random layer.
			nL := len(net.Adapter.Layers)
			for m := range lora.Modules {
				l := rng.IntN(nL)
				p := net.Adapter.Layers[l][m]
				if p == nil {
					continue
				}
				for _, ab := range []struct {
					n string
					v []float32
				}{{"A", p.A}, {"B", p.B}} {
					j := rng.IntN(len(ab.v))
					idx = append(idx, offsetIn(params, ab.v)+j)
					labels = append(labels, fmt.Sprintf("L%d.%s.%s[%d]", l, lora.Modules[m], ab.n, j))
				}
			}

			got := make([]float32, len(idx))
			fd := make([]float64, len(idx))
			for k, i := range idx {
				got[k] = grads[i]
			}
			// Step 1e-2·max(1,|θ|): the loss (≈ 10 nats from f32 logits)
			// carries ~1e-6 of rounding, ~5e-5 of error in a difference over
			// 2e-2, against gradients of 1e-3..0.3; truncation (h²·L‴/6) is
			// smaller. Observed 1.3e-4 over the 14, max |diff| 3e-5.
			for k, i := range idx {
				fd[k] = fd32(params[i:i+1], 1e-2, loss)[0]
			}
			for k := range idx {
				t.Logf("%-22s grad %+.6e  FD %+.6e", labels[k], got[k], fd[k])
			}
			checkClose(t, "adapter grads vs f32 FD", got, fd, 1e-3)
		})
	}
}

// nilIfNil is v, or nil where like is nil (an absent gradient stays absent).
func nilIfNil(like, v []float32) []float32 {
	if like == nil {
		return nil
	}
	return v
}

// offsetIn is the index of view's first element within buf.
func offsetIn(buf, view []float32) int {
	for i := range buf {
		if &buf[i] == &view[0] {
			return i
		}
	}
	panic("view not in buffer")
}
