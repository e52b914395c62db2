package train

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"distill/core/tensor"
)

// Finite-difference checks of every op's backward. For an op f and a random
// upstream gradient dy, L = Σ dy·f(inputs); the analytic backward must be dL.
// Two references per op:
//
//   - sharp: a float64 re-implementation of the forward (a few lines, written
//     from the definition, not from the op's code), differentiated by central
//     differences in float64 (step 1e-6·max(1, |x|): truncation ~1e-12,
//     rounding ~1e-10 relative), against which the f32 analytic gradient is
//     held to f32 accuracy (~1e-6);
//   - loose: the op's own f32 forward, differentiated by central differences
//     with L accumulated in float64. This ties backward to the forward the
//     engine actually runs; f32 rounding of f (~6e-8·|f|) over a step of
//     ~1e-2 limits it to ~1e-4 relative.
//
// Tolerances are on the relative error of the whole gradient vector,
// ‖g − g_ref‖ / ‖g_ref‖, each with a comment on why it is what it is. Run
// with -v to see the errors reached.

// fdRel64 is the f64 finite-difference step relative to max(1, |x|).
const fdRel64 = 1e-6

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0xd15711)) }

func randn(rng *rand.Rand, n int, scale float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(scale * rng.NormFloat64())
	}
	return v
}

// to64 widens v; nil stays nil (an absent bias).
func to64(v []float32) []float64 {
	if v == nil {
		return nil
	}
	w := make([]float64, len(v))
	for i, x := range v {
		w[i] = float64(x)
	}
	return w
}

// dot64 is Σ dy·y accumulated in float64.
func dot64[T float32 | float64](dy []float32, y []T) float64 {
	var s float64
	for i, v := range y {
		s += float64(dy[i]) * float64(v)
	}
	return s
}

// fd32 is the central difference of loss with respect to each x[i], stepping
// x[i] (in place, restored) by ±eps·max(1, |x[i]|) in float32 and dividing by
// the step actually taken after rounding to float32.
func fd32(x []float32, eps float32, loss func() float64) []float64 {
	g := make([]float64, len(x))
	for i, x0 := range x {
		h := eps * max(1, float32(math.Abs(float64(x0))))
		xp, xm := x0+h, x0-h
		x[i] = xp
		lp := loss()
		x[i] = xm
		lm := loss()
		x[i] = x0
		g[i] = (lp - lm) / (float64(xp) - float64(xm))
	}
	return g
}

// fd64 is fd32 in float64.
func fd64(x []float64, eps float64, loss func() float64) []float64 {
	g := make([]float64, len(x))
	for i, x0 := range x {
		h := eps * max(1, math.Abs(x0))
		xp, xm := x0+h, x0-h
		x[i] = xp
		lp := loss()
		x[i] = xm
		lm := loss()
		x[i] = x0
		g[i] = (lp - lm) / (xp - xm)
	}
	return g
}

// fdScalar is the f64 central difference of f at x0.
func fdScalar(x0 float64, f func(float64) float64) float64 {
	h := fdRel64 * max(1, math.Abs(x0))
	xp, xm := x0+h, x0-h
	return (f(xp) - f(xm)) / (xp - xm)
}

// relErr is ‖got − want‖ / ‖want‖ and the largest |got − want| with its index.
func relErr[T float32 | float64](got []T, want []float64) (rel, maxDiff float64, at int) {
	var num, den float64
	for i := range want {
		d := float64(got[i]) - want[i]
		num += d * d
		den += want[i] * want[i]
		if math.Abs(d) > maxDiff || math.IsNaN(d) {
			maxDiff, at = math.Abs(d), i
		}
	}
	return math.Sqrt(num / max(den, 1e-300)), maxDiff, at
}

// checkClose fails when relErr(got, want) > tol (or is NaN), printing the max
// difference and the first values, and logs the error reached.
func checkClose[T float32 | float64](t *testing.T, name string, got []T, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, reference has %d", name, len(got), len(want))
	}
	rel, md, at := relErr(got, want)
	if !(rel <= tol) {
		k := min(6, len(want))
		t.Errorf("%s: relative error %.2e > %.0e; max |diff| %.2e at %d (%g vs %g)\n  first got  %v\n  first want %v",
			name, rel, tol, md, at, got[at], want[at], got[:k], want[:k])
		return
	}
	t.Logf("%-28s rel %.2e  max|diff| %.2e  (tol %.0e)", name, rel, md, tol)
}

// ---- RMSNorm ----

// rmsNormRef64: out = x / sqrt(mean(x²) + eps) · w, per row of len(w).
func rmsNormRef64(x, w []float64, eps float64) []float64 {
	d := len(w)
	out := make([]float64, len(x))
	for r := 0; r < len(x)/d; r++ {
		var ss float64
		for _, v := range x[r*d : (r+1)*d] {
			ss += v * v
		}
		s := 1 / math.Sqrt(ss/float64(d)+eps)
		for i := 0; i < d; i++ {
			out[r*d+i] = x[r*d+i] * s * w[i]
		}
	}
	return out
}

func TestRMSNormBackwardFD(t *testing.T) {
	const rows, eps = 3, 1e-5
	for _, d := range []int{7, 64} {
		t.Run(fmt.Sprint("d=", d), func(t *testing.T) {
			rng := newRand(uint64(d))
			x := randn(rng, rows*d, 1)
			x[0] += 2 // rows not centred: the mean(x²) term matters
			w := randn(rng, d, 0.3)
			for i := range w {
				w[i] += 1
			}
			dy := randn(rng, rows*d, 1)

			out, rstd := make([]float32, rows*d), make([]float32, rows)
			rmsNormFwd(out, rstd, x, w, eps)
			x64, w64 := to64(x), to64(w)
			// f32 forward with f64 row sums: a few ulps.
			checkClose(t, "forward vs f64", out, rmsNormRef64(x64, w64, eps), 1e-6)

			dx, dw := make([]float32, rows*d), make([]float32, d)
			rmsNormBwd(dx, dw, dy, x, w, rstd)

			// Sharp: f32 products and a d-term f64 sum, a few ulps; observed
			// ≤ 8e-8.
			l64 := func() float64 { return dot64(dy, rmsNormRef64(x64, w64, eps)) }
			checkClose(t, "dx vs f64 FD", dx, fd64(x64, fdRel64, l64), 1e-6)
			checkClose(t, "dw vs f64 FD", dw, fd64(w64, fdRel64, l64), 1e-6)

			// Loose: step 1e-2 on O(1) inputs: f32 rounding of the outputs
			// (~6e-8·√d over 2e-2) and h²·f‴/6 ~ 1e-5; observed ≤ 3e-5.
			l32 := func() float64 { rmsNormFwd(out, rstd, x, w, eps); return dot64(dy, out) }
			checkClose(t, "dx vs f32 FD", dx, fd32(x, 1e-2, l32), 5e-4)
			checkClose(t, "dw vs f32 FD", dw, fd32(w, 1e-2, l32), 5e-4)

			// Contract: both gradients are added to, not set. dx's second
			// pass adds the same values (exact doubling on amd64, where Go
			// fuses no multiply-adds; an ulp elsewhere); dw sums in a
			// different order: a few ulps.
			rmsNormFwd(out, rstd, x, w, eps)
			dx2, dw2 := append([]float32(nil), dx...), append([]float32(nil), dw...)
			rmsNormBwd(dx2, dw2, dy, x, w, rstd)
			checkClose(t, "dx accumulates", dx2, scaled(dx, 2), 1e-6)
			checkClose(t, "dw accumulates", dw2, scaled(dw, 2), 1e-6)
		})
	}
}

func scaled(v []float32, s float64) []float64 {
	w := to64(v)
	for i := range w {
		w[i] *= s
	}
	return w
}

// ---- RoPE ----

// ropeTables are cos/sin of p·θ^(−2j/hd), (positions, hd/2), as f32.
func ropeTables(positions, hd int, theta float64) (cos, sin []float32) {
	half := hd / 2
	cos, sin = make([]float32, positions*half), make([]float32, positions*half)
	for p := 0; p < positions; p++ {
		for j := 0; j < half; j++ {
			a := float64(p) / math.Pow(theta, float64(2*j)/float64(hd))
			cos[p*half+j], sin[p*half+j] = float32(math.Cos(a)), float32(math.Sin(a))
		}
	}
	return cos, sin
}

// ropeRef64 rotates each head's pairs (j, j+hd/2) by the angle of its row's
// position: HF's rotate-half, x·cos + rotate_half(x)·sin.
func ropeRef64(x []float64, nHeads, hd int, pos []int, cos, sin []float32) []float64 {
	half := hd / 2
	out := make([]float64, len(x))
	for i, p := range pos {
		for h := 0; h < nHeads; h++ {
			o := (i*nHeads + h) * hd
			for j := 0; j < half; j++ {
				c, s := float64(cos[p*half+j]), float64(sin[p*half+j])
				a, b := x[o+j], x[o+j+half]
				out[o+j] = a*c - b*s
				out[o+j+half] = b*c + a*s
			}
		}
	}
	return out
}

func TestRoPEInverseIsBackwardFD(t *testing.T) {
	pos := []int{0, 1, 2, 0, 1, 5} // two packed examples, non-contiguous positions
	const nHeads, hd = 3, 8
	n := len(pos)
	cos, sin := ropeTables(6, hd, 10000)
	rng := newRand(7)
	x := randn(rng, n*nHeads*hd, 1)
	dy := randn(rng, n*nHeads*hd, 1)
	x64 := to64(x)

	y := append([]float32(nil), x...)
	ropeAt(y, n, nHeads, hd, pos, cos, sin, false)
	// One product and one sum per value: an ulp or two.
	checkClose(t, "forward vs f64", y, ropeRef64(x64, nHeads, hd, pos, cos, sin), 1e-6)
	for i, p := range pos { // position 0 is the identity, exactly
		for c := i * nHeads * hd; p == 0 && c < (i+1)*nHeads*hd; c++ {
			if y[c] != x[c] {
				t.Fatalf("row %d at position 0 changed: %g -> %g", i, x[c], y[c])
			}
		}
	}

	// Backward of a rotation is its inverse (transpose) applied to dy.
	dx := append([]float32(nil), dy...)
	ropeAt(dx, n, nHeads, hd, pos, cos, sin, true)

	// L is linear in x, so central differences have no truncation error:
	// sharp in f64, and in f32 a large step (0.5) drowns the rounding of y
	// (observed 5e-8 against a tolerance of 1e-6).
	l64 := func() float64 { return dot64(dy, ropeRef64(x64, nHeads, hd, pos, cos, sin)) }
	checkClose(t, "dx vs f64 FD", dx, fd64(x64, fdRel64, l64), 1e-6)
	l32 := func() float64 {
		copy(y, x)
		ropeAt(y, n, nHeads, hd, pos, cos, sin, false)
		return dot64(dy, y)
	}
	checkClose(t, "dx vs f32 FD", dx, fd32(x, 0.5, l32), 1e-6)

	// inverse ∘ forward = identity up to cos² + sin² = 1 in f32.
	copy(y, x)
	ropeAt(y, n, nHeads, hd, pos, cos, sin, false)
	ropeAt(y, n, nHeads, hd, pos, cos, sin, true)
	checkClose(t, "inverse(forward(x))", y, x64, 1e-6)
}

// ---- SwiGLU ----

func swigluRef64(g, u []float64) []float64 {
	a := make([]float64, len(g))
	for i := range g {
		a[i] = g[i] / (1 + math.Exp(-g[i])) * u[i]
	}
	return a
}

func TestSwiGLUBackwardFD(t *testing.T) {
	const n = 48
	rng := newRand(3)
	g := randn(rng, n, 2)
	u := randn(rng, n, 1)
	da := randn(rng, n, 1)
	// Saturated gates: silu(20) = 20, silu(−20) ≈ −4e-8, σ′ ≈ 2e-9.
	copy(g, []float32{20, -20, 19.5, -19.5, 15, -15, 8, -8, -1.2785, 0})
	g64, u64 := to64(g), to64(u)

	a := make([]float32, n)
	swigluFwd(a, g, u)
	checkClose(t, "forward vs f64", a, swigluRef64(g64, u64), 1e-6)

	dg, du := make([]float32, n), make([]float32, n)
	swigluBwd(dg, du, da, g, u)

	// Sharp, element by element. The op is elementwise, so each gradient is
	// the derivative of one term da·silu(g)·u: differencing that term alone
	// (not the whole sum, whose f64 rounding of ~1e-16·|L| over a 1e-6 step
	// would swamp the 1e-8 gradients at g = −20) is accurate to ~1e-10.
	fdG, fdU := make([]float64, n), make([]float64, n)
	for i := range g {
		gi, ui, dai := g64[i], u64[i], float64(da[i])
		fdG[i] = fdScalar(gi, func(x float64) float64 { return dai * x / (1 + math.Exp(-x)) * ui })
		fdU[i] = fdScalar(ui, func(x float64) float64 { return dai * gi / (1 + math.Exp(-gi)) * x })
		// A few f32 roundings per value (σ, then the products): 1e-6 of the
		// value, plus 1e-6·|da·u| for the cancellation in 1 + g(1 − σ) near
		// its zero (g ≈ −1.28), where the relative error is meaningless.
		tolG := 1e-6 * (math.Abs(fdG[i]) + math.Abs(dai*ui))
		if d := math.Abs(float64(dg[i]) - fdG[i]); !(d <= tolG) {
			t.Errorf("dg[%d] at g=%g: %g, f64 FD %g (|diff| %.2e > %.2e)", i, g[i], dg[i], fdG[i], d, tolG)
		}
		if d := math.Abs(float64(du[i]) - fdU[i]); !(d <= 1e-6*math.Abs(fdU[i])) {
			t.Errorf("du[%d] at g=%g: %g, f64 FD %g (|diff| %.2e)", i, g[i], du[i], fdU[i], d)
		}
	}
	checkClose(t, "dg vs f64 FD", dg, fdG, 1e-6)
	checkClose(t, "du vs f64 FD", du, fdU, 1e-6)

	// Loose: step 1e-2·max(1,|g|); at |g| = 20 the step is 0.2 but silu is
	// nearly linear there (and the tiny gradients at −20 weigh nothing in
	// the norm). Observed ≤ 2e-5.
	l32 := func() float64 { swigluFwd(a, g, u); return dot64(da, a) }
	checkClose(t, "dg vs f32 FD", dg, fd32(g, 1e-2, l32), 5e-4)
	checkClose(t, "du vs f32 FD", du, fd32(u, 1e-2, l32), 5e-4)
}

// Far into saturation σ(g) rounds to 1 or underflows to 0 in f32 (and e^{−g}
// would overflow f32 below g ≈ −88.7 if computed there); nothing may become
// NaN or Inf, and the values must still be the limits (silu(g) → g or 0).
func TestSwiGLUExtremeGates(t *testing.T) {
	g := []float32{20, -20, 50, -50, 88, -88, 89, -89, 100, -100, 1e3, -1e3, 1e4, -1e4}
	u := make([]float32, len(g))
	da := make([]float32, len(g))
	for i := range u {
		u[i], da[i] = 1.5, -0.75
	}
	a, dg, du := make([]float32, len(g)), make([]float32, len(g)), make([]float32, len(g))
	swigluFwd(a, g, u)
	swigluBwd(dg, du, da, g, u)
	for i, gi := range g {
		x := float64(gi)
		s := 1 / (1 + math.Exp(-x))
		wantA := x * s * 1.5
		wantDU := -0.75 * x * s
		wantDG := -0.75 * 1.5 * s * (1 + x*(1-s))
		for _, c := range []struct {
			name      string
			got       float32
			want, tol float64
		}{
			// σ(g) < 1e-38 is subnormal or zero in f32 (g ≲ −87): values
			// under 1e-30 may flush to zero.
			{"a", a[i], wantA, 1e-6*math.Abs(wantA) + 1e-30},
			{"du", du[i], wantDU, 1e-6*math.Abs(wantDU) + 1e-30},
			// σ(g) rounds to 1 in f32 from g ≈ 17, dropping g(1 − σ) ≤ 4e-7·g.
			{"dg", dg[i], wantDG, 1e-6*math.Abs(wantDG) + 1e-6},
		} {
			if math.IsNaN(float64(c.got)) || math.IsInf(float64(c.got), 0) || math.Abs(float64(c.got)-c.want) > c.tol {
				t.Errorf("g=%g: %s = %g, want %g", gi, c.name, c.got, c.want)
			}
		}
	}
}

// ---- Attention ----

// attnRef64 is softmax attention written from the definition: query i of
// head h attends to key j of KV head h/(nH/nKV) iff j ≤ i and j is in i's
// segment (same segment start): a block-diagonal causal mask over the whole
// (n × n) score matrix.
func attnRef64(q, k, v []float64, s attnShape) (out, lse []float64) {
	group := s.nH / s.nKV
	qs, ks := s.nH*s.hd, s.nKV*s.hd
	out, lse = make([]float64, s.n*qs), make([]float64, s.n*s.nH)
	for h := 0; h < s.nH; h++ {
		kh := h / group
		for i := 0; i < s.n; i++ {
			sc := make([]float64, s.n)
			m := math.Inf(-1)
			for j := 0; j < s.n; j++ {
				sc[j] = math.Inf(-1)
				if j > i || s.segStart[j] != s.segStart[i] {
					continue
				}
				var d float64
				for c := 0; c < s.hd; c++ {
					d += q[i*qs+h*s.hd+c] * k[j*ks+kh*s.hd+c]
				}
				sc[j] = d * float64(s.scale)
				m = max(m, sc[j])
			}
			var sum float64
			for j := range sc {
				sc[j] = math.Exp(sc[j] - m) // exp(−Inf) = 0 outside the mask
				sum += sc[j]
			}
			lse[i*s.nH+h] = m + math.Log(sum)
			for j := range sc {
				for c := 0; c < s.hd; c++ {
					out[i*qs+h*s.hd+c] += sc[j] / sum * v[j*ks+kh*s.hd+c]
				}
			}
		}
	}
	return out, lse
}

var attnSegments = []struct {
	name     string
	segStart []int
}{
	{"segments", []int{0, 0, 0, 3, 3, 3, 3, 7, 7}},
	{"single", []int{0, 0, 0, 0, 0, 0, 0, 0, 0}},
	{"singletons", []int{0, 0, 2, 3, 3, 3, 6, 6, 8}}, // one-token segments at 2 and 8
}

func TestAttentionBackwardFD(t *testing.T) {
	const nH, hd = 4, 8
	for _, nKV := range []int{4, 2, 1} {
		for si, seg := range attnSegments {
			t.Run(fmt.Sprintf("nKV=%d/%s", nKV, seg.name), func(t *testing.T) {
				n := len(seg.segStart)
				s := attnShape{n: n, nH: nH, nKV: nKV, hd: hd, segStart: seg.segStart, scale: float32(1 / math.Sqrt(hd))}
				rng := newRand(uint64(100*nKV + si))
				// Scores q·k/√hd of std 1.5² ≈ 2.3: softmaxes from flat to peaked.
				q := randn(rng, n*nH*hd, 1.5)
				k := randn(rng, n*nKV*hd, 1.5)
				v := randn(rng, n*nKV*hd, 1)
				dout := randn(rng, n*nH*hd, 1)
				q64, k64, v64 := to64(q), to64(k), to64(v)

				out, lse := make([]float32, len(q)), make([]float32, n*nH)
				attnFwd(out, lse, q, k, v, s)
				refOut, refLSE := attnRef64(q64, k64, v64, s)
				// f32 dot products of hd terms and an f32 weighted sum.
				checkClose(t, "out vs f64", out, refOut, 1e-6)
				checkClose(t, "lse vs f64", lse, refLSE, 1e-6)

				dq, dk, dv := make([]float32, len(q)), make([]float32, len(k)), make([]float32, len(v))
				attnBwd(dq, dk, dv, dout, q, k, v, out, lse, s)

				// Sharp: P is rebuilt from the f32 lse (abs error ~1e-7·|lse|)
				// and dS = P(dP − Σ P dP) cancels in f32; observed ≤ 7e-7.
				l64 := func() float64 { o, _ := attnRef64(q64, k64, v64, s); return dot64(dout, o) }
				checkClose(t, "dq vs f64 FD", dq, fd64(q64, fdRel64, l64), 5e-6)
				checkClose(t, "dk vs f64 FD", dk, fd64(k64, fdRel64, l64), 5e-6)
				checkClose(t, "dv vs f64 FD", dv, fd64(v64, fdRel64, l64), 5e-6)

				// Loose: step 1e-2·max(1,|x|) on the f32 forward, truncation
				// ~h²·f‴/6 through the exponentials; observed ≤ 6e-5.
				l32 := func() float64 { attnFwd(out, lse, q, k, v, s); return dot64(dout, out) }
				checkClose(t, "dq vs f32 FD", dq, fd32(q, 1e-2, l32), 1e-3)
				checkClose(t, "dk vs f32 FD", dk, fd32(k, 1e-2, l32), 1e-3)
				checkClose(t, "dv vs f32 FD", dv, fd32(v, 1e-2, l32), 1e-3)
			})
		}
	}
}

// Attention never crosses a segment boundary nor looks ahead: rewriting the
// q, k, v of one segment, or of the last token, leaves every other token's
// output bit for bit unchanged.
func TestAttentionSegmentsIsolated(t *testing.T) {
	const nH, nKV, hd = 4, 2, 8
	segStart := attnSegments[0].segStart // [0,0,0 | 3,3,3,3 | 7,7]
	n := len(segStart)
	s := attnShape{n: n, nH: nH, nKV: nKV, hd: hd, segStart: segStart, scale: float32(1 / math.Sqrt(hd))}
	rng := newRand(11)
	q, k, v := randn(rng, n*nH*hd, 1.5), randn(rng, n*nKV*hd, 1.5), randn(rng, n*nKV*hd, 1)
	out, lse := make([]float32, len(q)), make([]float32, n*nH)
	attnFwd(out, lse, q, k, v, s)

	for _, c := range []struct {
		name        string
		lo, hi      int // rows rewritten
		keepLo, hi2 int
	}{
		{"middle segment", 3, 7, 0, 0},
		{"first segment", 0, 3, 0, 0},
		{"last token", 8, 9, 0, 0},
	} {
		q2, k2, v2 := append([]float32(nil), q...), append([]float32(nil), k...), append([]float32(nil), v...)
		for i := c.lo; i < c.hi; i++ {
			for j := 0; j < nH*hd; j++ {
				q2[i*nH*hd+j] = float32(rng.NormFloat64())
			}
			for j := 0; j < nKV*hd; j++ {
				k2[i*nKV*hd+j] = float32(3 * rng.NormFloat64())
				v2[i*nKV*hd+j] = float32(3 * rng.NormFloat64())
			}
		}
		out2, lse2 := make([]float32, len(q)), make([]float32, n*nH)
		attnFwd(out2, lse2, q2, k2, v2, s)
		for i := 0; i < n; i++ {
			inside := i >= c.lo && i < c.hi
			changed := false
			for j := i * nH * hd; j < (i+1)*nH*hd; j++ {
				changed = changed || out2[j] != out[j]
			}
			if inside != changed {
				t.Errorf("%s (rows %d..%d rewritten): row %d changed=%v, want %v", c.name, c.lo, c.hi-1, i, changed, inside)
			}
		}
	}
}

// TestAttentionBlocksAndWorkers: segments longer than attnRows split into
// row blocks that see only the keys before them, dealt to several workers
// that sum dk and dv each in its own buffer. Forward against float64,
// gradients against float64 finite differences at sampled entries (every
// block's rows among them), for one worker and for three; and the three
// workers' gradients equal the one worker's up to the order of summation.
func TestAttentionBlocksAndWorkers(t *testing.T) {
	const nH, nKV, hd = 4, 2, 4
	// Two segments: 150 tokens (blocks of 64, 64, 22) and 37.
	segStart := make([]int, 187)
	for i := 150; i < len(segStart); i++ {
		segStart[i] = 150
	}
	n := len(segStart)
	s := attnShape{n: n, nH: nH, nKV: nKV, hd: hd, segStart: segStart, scale: float32(1 / math.Sqrt(hd))}
	rng := newRand(29)
	q, k, v := randn(rng, n*nH*hd, 1.5), randn(rng, n*nKV*hd, 1.5), randn(rng, n*nKV*hd, 1)
	dout := randn(rng, n*nH*hd, 1)
	q64, k64, v64 := to64(q), to64(k), to64(v)
	refOut, refLSE := attnRef64(q64, k64, v64, s)
	l64 := func() float64 { o, _ := attnRef64(q64, k64, v64, s); return dot64(dout, o) }

	threads := tensor.Threads
	defer func() { tensor.Threads = threads }()
	var grads [][3][]float32
	for _, workers := range []int{1, 3} {
		tensor.Threads = workers
		if got := len(s.units()); got != workers {
			t.Fatalf("%d threads: %d workers", workers, got)
		}
		out, lse := make([]float32, len(q)), make([]float32, n*nH)
		attnFwd(out, lse, q, k, v, s)
		checkClose(t, fmt.Sprintf("out vs f64 (%d workers)", workers), out, refOut, 1e-6)
		checkClose(t, fmt.Sprintf("lse vs f64 (%d workers)", workers), lse, refLSE, 1e-6)
		dq, dk, dv := make([]float32, len(q)), make([]float32, len(k)), make([]float32, len(v))
		attnBwd(dq, dk, dv, dout, q, k, v, out, lse, s)
		for gi, c := range []struct {
			name string
			got  []float32
			x    []float64
		}{{"dq", dq, q64}, {"dk", dk, k64}, {"dv", dv, v64}} {
			width := len(c.x) / n
			for _, row := range []int{0, 63, 64, 100, 128, 149, 150, 186} {
				i := row*width + (row+gi)%width
				x0 := c.x[i]
				want := fdScalar(x0, func(x float64) float64 { c.x[i] = x; defer func() { c.x[i] = x0 }(); return l64() })
				if d := math.Abs(float64(c.got[i]) - want); d > 5e-6+5e-6*math.Abs(want) {
					t.Errorf("%d workers: %s[row %d] = %.7f, finite difference %.7f", workers, c.name, row, c.got[i], want)
				}
			}
		}
		grads = append(grads, [3][]float32{dq, dk, dv})
	}
	for j, name := range []string{"dq", "dk", "dv"} {
		checkClose(t, name+": 3 workers vs 1", grads[1][j], to64(grads[0][j]), 1e-6)
	}
}

// TestAttentionBF16Modes: attention under --cpu-bf16 multiplies q, k, v, dO,
// P and dS rounded to bf16. On the bf16 GEMM (where the CPU has it) and on
// the f32 GEMMs over the rounded values it gives the same results up to
// the order of f32 sums (and a rounded P or dS that lands on the other side
// of a bf16 boundary); against f32 attention it is within bf16's rounding.
func TestAttentionBF16Modes(t *testing.T) {
	const nH, nKV, hd = 4, 2, 24 // 1/√24: a scale the row kernels must round after
	// 101 tokens (blocks of 64 and 37), then 49 from an odd start: units of
	// odd counts of queries, the last ending the stream at an even n.
	segStart := make([]int, 150)
	for i := 101; i < len(segStart); i++ {
		segStart[i] = 101
	}
	n := len(segStart)
	rng := newRand(41)
	q, k, v := randn(rng, n*nH*hd, 1.5), randn(rng, n*nKV*hd, 1.5), randn(rng, n*nKV*hd, 1)
	dout := randn(rng, n*nH*hd, 1)
	run := func(mode attnMode) [5][]float32 {
		s := attnShape{n: n, nH: nH, nKV: nKV, hd: hd, segStart: segStart, scale: float32(1 / math.Sqrt(hd)), mode: mode}
		out, lse := make([]float32, len(q)), make([]float32, n*nH)
		attnFwd(out, lse, q, k, v, s)
		dq, dk, dv := make([]float32, len(q)), make([]float32, len(k)), make([]float32, len(v))
		attnBwd(dq, dk, dv, dout, q, k, v, out, lse, s)
		return [5][]float32{out, lse, dq, dk, dv}
	}
	names := []string{"out", "lse", "dq", "dk", "dv"}
	f32, bf := run(attnF32), run(attnBF16)
	for i, name := range names {
		// bf16 keeps 8 bits: each rounded operand is off by up to 2⁻⁹.
		checkClose(t, name+": bf16 vs f32", bf[i], to64(f32[i]), 2e-2)
		if i != 1 && relNorm(bf[i], f32[i]) < 1e-5 {
			t.Errorf("%s: bf16 attention equals f32's (%.2g): nothing was rounded", name, relNorm(bf[i], f32[i]))
		}
	}
	if !tensor.BF16ProductsFast() {
		t.Log("no AVX-512 BF16 here: the bf16 GEMM path is not run")
		return
	}
	// The backward's dK and dV gather from every worker (transposed on the
	// bf16 GEMM): one, two and three workers.
	threads := tensor.Threads
	defer func() { tensor.Threads = threads }()
	for _, workers := range []int{1, 2, 3} {
		tensor.Threads = workers
		fast := run(attnBF16Fast)
		for i, name := range names {
			checkClose(t, fmt.Sprintf("%s: bf16 GEMM vs f32 GEMMs on the rounded values (%d workers)", name, workers), fast[i], to64(bf[i]), 1e-6)
		}
	}
}

func relNorm(a, b []float32) float64 {
	var num, den float64
	for i := range a {
		d := float64(a[i]) - float64(b[i])
		num, den = num+d*d, den+float64(b[i])*float64(b[i])
	}
	return math.Sqrt(num / den)
}
