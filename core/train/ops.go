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

// swigluFwd: a = silu(g) · u, elementwise over (n, F).
func swigluFwd(a, g, u []float32) { tensor.SwiGLUFwd(a, g, u) }

// swigluBwd sets dg, du from da: du = da·silu(g), dg = da·u·σ(g)(1 + g(1−σ(g))).
func swigluBwd(dg, du, da, g, u []float32) { tensor.SwiGLUBwd(dg, du, da, g, u) }

// attnShape describes one attention call over a flattened token stream in
// which token i attends to tokens segStart[i]..i (causal within its segment).
type attnShape struct {
	n, nH, nKV, hd int
	segStart       []int
	scale          float32
	// scratch holds 2·Threads buffers of (maxSeg × maxSeg) floats: each
	// worker's score and score-gradient matrices, planned in the workspace.
	scratch []float32
}

// maxSegment is the longest segment of a stream.
func maxSegment(segStart []int) int {
	m := 0
	for i, s := range segStart {
		m = max(m, i-s+1)
	}
	return m
}

// workerBufs returns worker w's two (L × L) buffers.
// Without planned scratch (direct callers, tests) it allocates.
func (s attnShape) workerBufs(w, L int) (a, b []float32) {
	if s.scratch == nil {
		return make([]float32, L*L), make([]float32, L*L)
	}
	m := maxSegment(s.segStart)
	base := 2 * w * m * m
	return s.scratch[base : base+L*L], s.scratch[base+m*m : base+m*m+L*L]
}

// forWorkers runs fn(w, u) for units u in [0, units), unit u on worker
// u mod Threads, so each worker can own a scratch buffer.
func forWorkers(units int, fn func(w, u int)) {
	workers := min(tensor.Threads, units)
	tensor.ParallelFor(workers, 1, func(lo, hi int) {
		for w := lo; w < hi; w++ {
			for u := w; u < units; u += workers {
				fn(w, u)
			}
		}
	})
}

// segments lists the [start, end) ranges of the stream's segments.
func (s attnShape) segments() [][2]int {
	var segs [][2]int
	for i := 0; i < s.n; i++ {
		if i == 0 || s.segStart[i] != s.segStart[i-1] {
			segs = append(segs, [2]int{i, i})
		}
		segs[len(segs)-1][1] = i + 1
	}
	return segs
}

// attnFwd: out(n, nH·hd) and lse(n, nH), the log-sum-exp of each query's
// scores, saved so backward can rebuild the probabilities. q: (n, nH·hd);
// k, v: (n, nKV·hd). Each (segment, head) is two GEMMs on strided views —
// S = q·kᵀ, O = P·v — with the causal mask and softmax between them; the
// (L × L) score matrix lives only in a per-worker buffer.
func attnFwd(out, lse, q, k, v []float32, s attnShape) {
	group := s.nH / s.nKV
	qs, ks := s.nH*s.hd, s.nKV*s.hd
	segs := s.segments()
	forWorkers(len(segs)*s.nH, func(w, u int) {
		{
			seg, h := segs[u/s.nH], u%s.nH
			s0, L := seg[0], seg[1]-seg[0]
			kh := h / group
			S, _ := s.workerBufs(w, L)
			qo, ko := s0*qs+h*s.hd, s0*ks+kh*s.hd
			tensor.GemmSerial(false, true, L, L, s.hd, s.scale, q[qo:], qs, k[ko:], ks, 0, S, L)
			for i := 0; i < L; i++ {
				row := S[i*L : (i+1)*L]
				lse[(s0+i)*s.nH+h] = float32(tensor.SoftmaxRow(row[:i+1]))
				clear(row[i+1:])
			}
			tensor.GemmSerial(false, false, L, s.hd, L, 1, S, L, v[ko:], ks, 0, out[qo:], qs)
		}
	})
}

// attnBwd sets dq, dk, dv (same shapes as q, k, v) from dout, rebuilding P
// from lse: dV = Pᵀ·dO, dP = dO·vᵀ, dS = P∘(dP − rowsum(dO∘O))·scale,
// dq = dS·k, dk = dSᵀ·q. Work is split by (segment, KV head) so each worker
// owns its slices of dk and dv.
func attnBwd(dq, dk, dv, dout, q, k, v, out, lse []float32, s attnShape) {
	group := s.nH / s.nKV
	qs, ks := s.nH*s.hd, s.nKV*s.hd
	clear(dk)
	clear(dv)
	segs := s.segments()
	forWorkers(len(segs)*s.nKV, func(w, u int) {
		{
			seg, kh := segs[u/s.nKV], u%s.nKV
			s0, L := seg[0], seg[1]-seg[0]
			P, dS := s.workerBufs(w, L)
			ko := s0*ks + kh*s.hd
			for h := kh * group; h < (kh+1)*group; h++ {
				qo := s0*qs + h*s.hd
				tensor.GemmSerial(false, true, L, L, s.hd, s.scale, q[qo:], qs, k[ko:], ks, 0, P, L)
				tensor.GemmSerial(false, true, L, L, s.hd, 1, dout[qo:], qs, v[ko:], ks, 0, dS, L)
				for i := 0; i < L; i++ {
					p, ds := P[i*L:(i+1)*L], dS[i*L:(i+1)*L]
					l := lse[(s0+i)*s.nH+h]
					off := (s0+i)*qs + h*s.hd
					d := dot(dout[off:off+s.hd], out[off:off+s.hd])
					tensor.AttnBwdRow(p[:i+1], ds[:i+1], l, d, s.scale)
					clear(p[i+1:])
					clear(ds[i+1:])
				}
				tensor.GemmSerial(true, false, L, s.hd, L, 1, P, L, dout[qo:], qs, 1, dv[ko:], ks)
				tensor.GemmSerial(false, false, L, s.hd, L, 1, dS, L, k[ko:], ks, 0, dq[qo:], qs)
				tensor.GemmSerial(true, false, L, s.hd, L, 1, dS, L, q[qo:], qs, 1, dk[ko:], ks)
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
