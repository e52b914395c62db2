package train

import (
	"math"

	"distill/core/tensor"
)

// The element-wise and attention ops of training, forward next to backward.
// Buffers are f32, row-major; shapes in the comments. Reductions accumulate
// in float64 where the sum runs over a whole row.

// rmsNormFwd: out(rows, d) = x / sqrt(mean(x²) + eps) * w; rstd(rows) saved.
func rmsNormFwd(out, rstd, x, w []float32, eps float32) {
	d := len(w)
	tensor.ParallelFor(len(rstd), 8, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			xr, or := x[r*d:(r+1)*d], out[r*d:(r+1)*d]
			var ss float64
			for _, v := range xr {
				ss += float64(v) * float64(v)
			}
			s := float32(1 / math.Sqrt(ss/float64(d)+float64(eps)))
			rstd[r] = s
			for i, v := range xr {
				or[i] = v * s * w[i]
			}
		}
	})
}

// rmsNormBwd adds to dx(rows, d) the gradient through the norm, and to dw(d)
// (when non-nil) the weight gradient. With g = dy·w:
// dx = rstd·g − x·rstd³·(g·x)/d.
func rmsNormBwd(dx, dw, dy, x, w, rstd []float32) {
	d := len(w)
	rows := len(rstd)
	tensor.ParallelFor(rows, 8, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			xr, dyr, dxr := x[r*d:(r+1)*d], dy[r*d:(r+1)*d], dx[r*d:(r+1)*d]
			s := rstd[r]
			var gx float64
			for i := range xr {
				gx += float64(dyr[i]) * float64(w[i]) * float64(xr[i])
			}
			c := float32(gx/float64(d)) * s * s * s
			for i := range xr {
				dxr[i] += s*dyr[i]*w[i] - c*xr[i]
			}
		}
	})
	if dw != nil {
		// Rows reduce into one vector: split columns instead of rows.
		tensor.ParallelFor(d, 64, func(lo, hi int) {
			for r := 0; r < rows; r++ {
				s := rstd[r]
				xr, dyr := x[r*d:(r+1)*d], dy[r*d:(r+1)*d]
				for i := lo; i < hi; i++ {
					dw[i] += dyr[i] * xr[i] * s
				}
			}
		})
	}
}

// ropeAt rotates n rows of x, each nHeads × hd, at explicit positions pos
// (packed examples restart at 0). inverse rotates by −θ: RoPE's backward.
func ropeAt(x []float32, n, nHeads, hd int, pos []int, cos, sin []float32, inverse bool) {
	half := hd / 2
	sign := float32(1)
	if inverse {
		sign = -1
	}
	tensor.ParallelFor(n*nHeads, 32, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			p := pos[i/nHeads]
			c, s := cos[p*half:(p+1)*half], sin[p*half:(p+1)*half]
			h := x[i*hd : (i+1)*hd]
			for j := 0; j < half; j++ {
				a, b := h[j], h[j+half]
				sj := sign * s[j]
				h[j] = a*c[j] - b*sj
				h[j+half] = b*c[j] + a*sj
			}
		}
	})
}

// sigmoid in float64, so e^{-x} cannot overflow f32 for very negative x.
func sigmoid(x float32) float32 { return float32(1 / (1 + math.Exp(-float64(x)))) }

// swigluFwd: a = silu(g) · u, elementwise over (n, F).
func swigluFwd(a, g, u []float32) {
	tensor.ParallelFor(len(a), 4096, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			a[i] = g[i] * sigmoid(g[i]) * u[i]
		}
	})
}

// swigluBwd sets dg, du from da: du = da·silu(g), dg = da·u·σ(g)(1 + g(1−σ(g))).
func swigluBwd(dg, du, da, g, u []float32) {
	tensor.ParallelFor(len(da), 4096, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			s := sigmoid(g[i])
			du[i] = da[i] * g[i] * s
			dg[i] = da[i] * u[i] * s * (1 + g[i]*(1-s))
		}
	})
}

// attnShape describes one attention call over a flattened token stream in
// which token i attends to tokens segStart[i]..i (causal within its segment).
type attnShape struct {
	n, nH, nKV, hd int
	segStart       []int
	scale          float32
}

// attnFwd: out(n, nH·hd) and lse(n, nH), the log-sum-exp of each query's
// scores, saved so backward can rebuild the probabilities without storing
// the (n × n) matrix. q: (n, nH·hd); k, v: (n, nKV·hd).
func attnFwd(out, lse, q, k, v []float32, s attnShape) {
	group := s.nH / s.nKV
	qs, ks := s.nH*s.hd, s.nKV*s.hd
	tensor.ParallelFor(s.n*s.nH, 4, func(lo, hi int) {
		var scores []float32
		for idx := lo; idx < hi; idx++ {
			i, h := idx/s.nH, idx%s.nH
			kh := h / group
			qi := q[i*qs+h*s.hd : i*qs+(h+1)*s.hd]
			j0 := s.segStart[i]
			scores = append(scores[:0], make([]float32, i+1-j0)...)
			m := float32(math.Inf(-1))
			for j := j0; j <= i; j++ {
				sc := dot(qi, k[j*ks+kh*s.hd:j*ks+(kh+1)*s.hd]) * s.scale
				scores[j-j0] = sc
				m = max(m, sc)
			}
			var sum float64
			for t, sc := range scores {
				e := math.Exp(float64(sc - m))
				scores[t] = float32(e)
				sum += e
			}
			lse[i*s.nH+h] = m + float32(math.Log(sum))
			o := out[i*qs+h*s.hd : i*qs+(h+1)*s.hd]
			clear(o)
			inv := float32(1 / sum)
			for j := j0; j <= i; j++ {
				axpy(o, scores[j-j0]*inv, v[j*ks+kh*s.hd:j*ks+(kh+1)*s.hd])
			}
		}
	})
}

// attnBwd sets dq, dk, dv (same shapes as q, k, v) from dout, recomputing the
// probabilities from lse: dS = P∘(dP − Σ P∘dP) with dP = dO·Vᵀ. Work is split
// by KV head so each worker owns its slices of dk and dv.
func attnBwd(dq, dk, dv, dout, q, k, v, out, lse []float32, s attnShape) {
	group := s.nH / s.nKV
	qs, ks := s.nH*s.hd, s.nKV*s.hd
	clear(dq)
	clear(dk)
	clear(dv)
	tensor.ParallelFor(s.nKV, 1, func(lo, hi int) {
		var p []float32
		for kh := lo; kh < hi; kh++ {
			for h := kh * group; h < (kh+1)*group; h++ {
				for i := 0; i < s.n; i++ {
					off := i*qs + h*s.hd
					qi, doi, oi := q[off:off+s.hd], dout[off:off+s.hd], out[off:off+s.hd]
					dqi := dq[off : off+s.hd]
					j0 := s.segStart[i]
					l := lse[i*s.nH+h]
					di := dot(doi, oi) // Σ_j P_j dP_j
					p = append(p[:0], make([]float32, i+1-j0)...)
					for j := j0; j <= i; j++ {
						kj := k[j*ks+kh*s.hd : j*ks+(kh+1)*s.hd]
						p[j-j0] = float32(math.Exp(float64(dot(qi, kj)*s.scale - l)))
					}
					for j := j0; j <= i; j++ {
						kv := j*ks + kh*s.hd
						pj := p[j-j0]
						axpy(dv[kv:kv+s.hd], pj, doi)
						ds := pj * (dot(doi, v[kv:kv+s.hd]) - di) * s.scale
						axpy(dqi, ds, k[kv:kv+s.hd])
						axpy(dk[kv:kv+s.hd], ds, qi)
					}
				}
			}
		}
	})
}

func dot(a, b []float32) float32 {
	var s float32
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

func axpy(y []float32, a float32, x []float32) {
	for i := range y {
		y[i] += a * x[i]
	}
}
