package tensor

import (
	"math"
	"math/rand/v2"
	"testing"
)

// closeTo reports got == want (infinities included), both NaN, or |got −
// want| ≤ tol·scale.
func closeTo(got, want float32, tol, scale float64) bool {
	if got != got || want != want {
		return got != got && want != want
	}
	return got == want || math.Abs(float64(got)-float64(want)) <= tol*scale
}

// trainOpInputs are values over the ranges training meets, with the edges:
// zeros, ±1e-20, large magnitudes where e^-g over- and underflows, and
// lengths that leave vector tails.
func trainOpInputs(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64() * 4)
	}
	edges := []float32{0, 1e-20, -1e-20, 90, -90, 105, -105, 1e30, -1e30, -1.2785}
	for i, e := range edges {
		if i < n {
			v[i] = e
		}
	}
	return v
}

// TestTrainOps checks training's element-wise kernels against ref_train.go
// at every kernel level. They differ from it in the exp (vexp.h's, ~1 ulp,
// against f64's rounded once) and the order of f64 sums: 4·10⁻⁷ of each
// result's scale (the magnitude of its factors) bounds both.
func TestTrainOps(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	forEachLevel(t, func(t *testing.T) {
		for _, n := range []int{1, 7, 8, 15, 16, 17, 33, 1000, 4099} {
			g, u, da := trainOpInputs(r, n), trainOpInputs(r, n), trainOpInputs(r, n)
			a, want := make([]float32, n), make([]float32, n)
			swiGLUFwdKernel(a, g, u)
			swiGLUFwdRef(want, g, u)
			for i := range a {
				// the result's own size; plus a hair for g < −88.7, where
				// σ(g) is 0 in f32 (see ops_train.c)
				gu := math.Abs(float64(g[i]) * float64(u[i]))
				sig := 1 / (1 + math.Exp(-float64(g[i])))
				if !closeTo(a[i], want[i], 4e-7, gu*sig+1e-30*gu) {
					t.Fatalf("swiglu fwd n=%d: a[%d] = %g, want %g (g %g, u %g)", n, i, a[i], want[i], g[i], u[i])
				}
			}
			dg, du, wdg, wdu := make([]float32, n), make([]float32, n), make([]float32, n), make([]float32, n)
			swiGLUBwdKernel(dg, du, da, g, u)
			swiGLUBwdRef(wdg, wdu, da, g, u)
			for i := range dg {
				sig := 1 / (1 + math.Exp(-float64(g[i])))
				sc := math.Abs(float64(da[i])*float64(u[i])) * (1 + math.Abs(float64(g[i])))
				sd := math.Abs(float64(da[i]) * float64(g[i]))
				if !closeTo(dg[i], wdg[i], 4e-7, sc*sig+1e-30*sc) || !closeTo(du[i], wdu[i], 4e-7, sd*sig+1e-30*sd) {
					t.Fatalf("swiglu bwd n=%d, %d: dg %g du %g, want %g %g (g %g)", n, i, dg[i], du[i], wdg[i], wdu[i], g[i])
				}
			}

			row := trainOpInputs(r, n)
			for i := range row {
				row[i] = max(min(row[i], 60), -60) // logits
			}
			want = append([]float32(nil), row...)
			lse, wlse := softmaxKernel(row), softmaxRef(want)
			if math.Abs(lse-wlse) > 1e-8*(1+math.Abs(wlse)) {
				t.Fatalf("softmax n=%d: lse %g, want %g", n, lse, wlse)
			}
			for i := range row {
				if !closeTo(row[i], want[i], 4e-7, float64(want[i])+1e-30) {
					t.Fatalf("softmax n=%d: p[%d] = %g, want %g", n, i, row[i], want[i])
				}
			}

			p, ds := trainOpInputs(r, n), trainOpInputs(r, n)
			for i := range p {
				p[i] = -float32(math.Abs(float64(p[i]))) // scores at or below the row's lse
			}
			wp, wds, ds0 := append([]float32(nil), p...), append([]float32(nil), ds...), append([]float32(nil), ds...)
			// pscale is the scale first, its product rounded: bit for bit
			// the row scaled beforehand (an FMA would skip that rounding).
			const ps = 0.0883883476 // 1/√128, inexact
			sp, sds := append([]float32(nil), p...), append([]float32(nil), ds...)
			pre, pds := make([]float32, len(p)), append([]float32(nil), ds...)
			for i, x := range p {
				pre[i] = x * ps
			}
			attnBwdRowKernel(sp, sds, 0.5, 0.25, 0.125, ps)
			attnBwdRowKernel(pre, pds, 0.5, 0.25, 0.125, 1)
			for i := range sp {
				if sp[i] != pre[i] || sds[i] != pds[i] {
					t.Fatalf("attn bwd n=%d, %d: pscale %g gives p %g ds %g, the scaled row %g %g", n, i, ps, sp[i], sds[i], pre[i], pds[i])
				}
			}
			attnBwdRowKernel(p, ds, 0.5, 0.25, 0.125, 0.75)
			attnBwdRowRef(wp, wds, 0.5, 0.25, 0.125, 0.75)
			for i := range p {
				sc := float64(wp[i]) * (math.Abs(float64(ds0[i])) + 0.25) * 0.125
				if !closeTo(p[i], wp[i], 4e-7, float64(wp[i])) || !closeTo(ds[i], wds[i], 4e-7, sc) {
					t.Fatalf("attn bwd n=%d, %d: p %g ds %g, want %g %g", n, i, p[i], ds[i], wp[i], wds[i])
				}
			}
		}
	})
}

// TestRMSNormKernels checks the RMSNorm rows against ref_train.go at every
// kernel level: the f64 sums differ in order only, so each result is within
// 4·10⁻⁷ of its scale (the magnitude of its terms).
func TestRMSNormKernels(t *testing.T) {
	r := rand.New(rand.NewPCG(31, 32))
	forEachLevel(t, func(t *testing.T) {
		for _, d := range []int{1, 7, 16, 17, 64, 576, 1000} {
			const rows = 5
			x, w, dy := trainOpInputs(r, rows*d), trainOpInputs(r, d), trainOpInputs(r, rows*d)
			for i := range x {
				x[i] = max(min(x[i], 1e4), -1e4) // activations, not the edges' 1e30
			}
			for i := range w {
				w[i] = max(min(w[i], 8), -8)
			}
			out, rstd, wout, wrstd := make([]float32, rows*d), make([]float32, rows), make([]float32, rows*d), make([]float32, rows)
			RMSNormFwd(out, rstd, x, w, 1e-6)
			rmsNormFwdRef(wout, wrstd, x, w, 1e-6)
			for i := range rstd {
				if !closeTo(rstd[i], wrstd[i], 4e-7, float64(wrstd[i])) {
					t.Fatalf("d=%d: rstd[%d] = %g, want %g", d, i, rstd[i], wrstd[i])
				}
			}
			for i := range out {
				sc := math.Abs(float64(x[i]) * float64(wrstd[i/d]) * float64(w[i%d]))
				if !closeTo(out[i], wout[i], 4e-7, sc) {
					t.Fatalf("d=%d: out[%d] = %g, want %g", d, i, out[i], wout[i])
				}
			}
			dx0 := trainOpInputs(r, rows*d)
			dx, wdx := append([]float32(nil), dx0...), append([]float32(nil), dx0...)
			RMSNormBwd(dx, dy, x, w, wrstd)
			rmsNormBwdRef(wdx, dy, x, w, wrstd)
			for i := range dx {
				row := i / d
				var gx float64
				for j := 0; j < d; j++ {
					gx += math.Abs(float64(dy[row*d+j]) * float64(w[j]) * float64(x[row*d+j]))
				}
				s := float64(wrstd[row])
				sc := math.Abs(float64(dx0[i])) + s*math.Abs(float64(dy[i])*float64(w[i%d])) + math.Abs(float64(x[i]))*s*s*s*gx/float64(d)
				if !closeTo(dx[i], wdx[i], 4e-7, sc) {
					t.Fatalf("d=%d: dx[%d] = %g, want %g", d, i, dx[i], wdx[i])
				}
			}
		}
	})
}

// TestSoftmaxCausal: a block of attention's scores, rows of n0 + r%m keys,
// scaled and normalised in place with the rest of each row zeroed; the bf16
// form (prompt attention under CPU.BF16Attention) gives the same weights,
// rounded, bit for bit, zero-padded to its row length.
func TestSoftmaxCausal(t *testing.T) {
	forEachLevel(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(21, 22))
		for _, c := range []struct {
			rows, ld, ldp, n0, m int
			scale                float32
		}{{15, 37, 38, 33, 5, 0.125}, {6, 70, 72, 1, 70, 0.3}, {4, 16, 16, 16, 1, 1}, {9, 33, 40, 31, 3, 0.0884}} {
			s := make([]float32, c.rows*c.ld)
			for i := range s {
				s[i] = float32(r.NormFloat64() * 8)
			}
			want := make([]float32, len(s))
			for i := range c.rows {
				row, n := want[i*c.ld:(i+1)*c.ld], c.n0+i%c.m
				for j := range row[:n] {
					row[j] = s[i*c.ld+j] * c.scale
				}
				softmaxRef(row[:n])
			}
			got := append([]float32(nil), s...)
			softmaxCausalKernel(got, c.rows, c.ld, c.n0, c.m, c.scale)
			for i, w := range want {
				if math.Abs(float64(got[i]-w)) > 2e-6*math.Abs(float64(w))+1e-9 || (w == 0) != (got[i] == 0) {
					t.Fatalf("%+v: [%d] = %g, want %g", c, i, got[i], w)
				}
			}
			if !haveBLAS {
				continue
			}
			p := make([]uint16, c.rows*c.ldp)
			for i := range p {
				p[i] = 0xffff
			}
			wantP, wantL := make([]uint16, len(p)), make([]float32, c.rows)
			bf16Rows(wantP, c.ldp, got, c.ld, c.rows, c.ld)
			for i := range c.rows { // SoftmaxRow's log-sum-exp of the same scaled row
				row := append([]float32(nil), s[i*c.ld:i*c.ld+c.n0+i%c.m]...)
				for j := range row {
					row[j] *= c.scale
				}
				wantL[i] = float32(SoftmaxRow(row))
			}
			lse := make([]float32, 2*c.rows)
			softmaxCausalBF16Kernel(append([]float32(nil), s...), p, c.rows, c.ld, c.ldp, c.n0, c.m, c.scale, lse, 2)
			for i := range p {
				if p[i] != wantP[i] {
					t.Fatalf("%+v: bf16 [%d] = %#04x, want %#04x", c, i, p[i], wantP[i])
				}
			}
			for i, l := range wantL {
				if lse[2*i] != l || lse[2*i+1] != 0 {
					t.Fatalf("%+v: lse[%d] = %g (next %g), want %g", c, i, lse[2*i], lse[2*i+1], l)
				}
			}
		}
	})
}
