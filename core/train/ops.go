package train

import (
	"slices"

	"distill/core/tensor"
)

// The element-wise and attention ops of training, forward next to backward.
// Buffers are f32, row-major; shapes in the comments. Reductions accumulate
// in float64 where the sum runs over a whole row.

// rmsNormFwd: out(rows, d) = x / sqrt(mean(x²) + eps) * w; rstd(rows) saved.
func rmsNormFwd(out, rstd, x, w []float32, eps float32) { tensor.RMSNormFwd(out, rstd, x, w, eps) }

// rmsNormBwd adds to dx(rows, d) the gradient through the norm, and to dw(d)
// (when non-nil) the weight gradient. With g = dy·w:
// dx = rstd·g − x·rstd³·(g·x)/d.
func rmsNormBwd(dx, dw, dy, x, w, rstd []float32) {
	tensor.RMSNormBwd(dx, dy, x, w, rstd)
	if dw != nil {
		// Rows reduce into one vector: split columns instead of rows.
		d, rows := len(w), len(rstd)
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
	// scratch holds 2·Threads buffers of (attnRows × maxSeg) floats: each
	// worker's score and score-gradient blocks; acc holds 2·(Threads−1)
	// buffers of (n, nKV·hd): the backward's dk and dv of workers 1…. Both
	// are planned in the workspace (attnFloats); nil, they are allocated.
	scratch, acc []float32
	mode         attnMode // how the products multiply
	// rounded, roundedB and work hold the bf16 modes' operands and
	// per-worker scratch, planned in the workspace (attnBF16Floats); nil,
	// they come from tensor's pool.
	rounded, roundedB, work []float32
}

// attnRows is the query rows of one unit of attention work: a unit is
// (segment, query head, block of attnRows rows), and it multiplies only
// against the keys up to its block's last row, so most of the causal
// triangle's masked half is never computed. Units this small also share
// evenly among the workers, where (segment, KV head) units could not (two
// threads split SmolLM2's three KV heads 2:1).
const attnRows = 64

// attnFloats is the scratch and acc a call over n tokens, longest segment
// maxSeg, needs (attnShape's fields).
func attnFloats(n, maxSeg, kvDim int) (scratch, acc int) {
	return 2 * tensor.Threads * min(attnRows, maxSeg) * maxSeg, 2 * (tensor.Threads - 1) * n * kvDim
}

// maxSegment is the longest segment of a stream.
func maxSegment(segStart []int) int {
	m := 0
	for i, s := range segStart {
		m = max(m, i-s+1)
	}
	return m
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

// attnUnit is query rows [i0, i1) of head h in the segment of length L
// starting at token s0.
type attnUnit struct{ s0, L, h, i0, i1 int }

// cost is the unit's score entries, to which its work is proportional.
func (u attnUnit) cost() int { return (u.i1 - u.i0) * u.i1 }

// units lists every (segment, head, row block) and deals them to
// min(Threads, units) workers, costliest first, each to the least-loaded
// worker. The deal depends only on the shape and Threads, so a worker's
// order of accumulation, and with it the result, is the same at every step.
func (s attnShape) units() [][]attnUnit {
	var us []attnUnit
	for _, seg := range s.segments() {
		L := seg[1] - seg[0]
		for h := 0; h < s.nH; h++ {
			for i0 := 0; i0 < L; i0 += attnRows {
				us = append(us, attnUnit{seg[0], L, h, i0, min(i0+attnRows, L)})
			}
		}
	}
	slices.SortStableFunc(us, func(a, b attnUnit) int { return b.cost() - a.cost() })
	per := make([][]attnUnit, max(1, min(tensor.Threads, len(us))))
	load := make([]int, len(per))
	for _, u := range us {
		w := 0
		for j := range load {
			if load[j] < load[w] {
				w = j
			}
		}
		per[w] = append(per[w], u)
		load[w] += u.cost()
	}
	return per
}

// workerBufs returns worker w's two (rows × L) buffers; maxSeg is the
// stream's longest segment (maxSegment), which sizes each worker's part.
func (s attnShape) workerBufs(w, rows, L, maxSeg int) (a, b []float32) {
	if s.scratch == nil {
		return make([]float32, rows*L), make([]float32, rows*L)
	}
	size := min(attnRows, maxSeg) * maxSeg
	base := 2 * w * size
	return s.scratch[base : base+rows*L], s.scratch[base+size : base+size+rows*L]
}

// attnFwd: out(n, nH·hd) and lse(n, nH), the log-sum-exp of each query's
// scores, saved so backward can rebuild the probabilities. q: (n, nH·hd);
// k, v: (n, nKV·hd). Each unit is two GEMMs on strided views — S = q·kᵀ,
// O = P·v, over the keys up to its last row — with the causal mask and
// softmax between them; S lives only in a per-worker buffer. s.mode says
// how they multiply (attnOperands).
func attnFwd(out, lse, q, k, v []float32, s attnShape) {
	qs, ks := s.nH*s.hd, s.nKV*s.hd
	group := s.nH / s.nKV
	ops := s.operands(q, k, v, nil)
	defer ops.release()
	per := s.units()
	tensor.ParallelFor(len(per), 1, func(lo, hi int) {
		for w := lo; w < hi; w++ {
			wk := ops.worker(w)
			for _, u := range per[w] {
				m, kn := u.i1-u.i0, u.i1
				S, _ := s.workerBufs(w, m, kn, ops.maxSeg)
				qo, ko := (u.s0+u.i0)*qs+u.h*s.hd, u.s0*ks+u.h/group*s.hd
				ops.scores(S, s, qo, ko, m, kn, wk)
				ops.softmaxTimesV(out, lse[(u.s0+u.i0)*s.nH+u.h:], S, s, qo, ko, u.i0, m, kn, wk)
			}
			wk.release()
		}
	})
}

// attnBwd sets dq, dk, dv (same shapes as q, k, v) from dout, rebuilding P
// from lse: dV = Pᵀ·dO, dP = dO·vᵀ, dS = P∘(dP − rowsum(dO∘O))·scale,
// dq = dS·k, dk = dSᵀ·q. Units are attnFwd's; a unit owns its rows of dq,
// while dk and dv gather from every unit of a KV head, so each worker adds
// them into its own buffers (worker 0 into dk and dv), summed in worker
// order at the end. In the bf16 modes P and dS are rounded before the
// products they enter; in attnBF16Fast those buffers hold dKᵀ and dVᵀ
// (bwdProducts), turned back once summed.
func attnBwd(dq, dk, dv, dout, q, k, v, out, lse []float32, s attnShape) {
	group := s.nH / s.nKV
	qs, ks := s.nH*s.hd, s.nKV*s.hd
	clear(dk)
	clear(dv)
	ops := s.operands(q, k, v, dout)
	defer ops.release()
	per := s.units()
	nk := s.n * ks
	acc := s.acc
	if need := 2 * (len(per) - 1) * nk; len(acc) < need {
		acc = make([]float32, need)
	}
	accOf := func(w int) (dkw, dvw []float32) {
		if w == 0 {
			return dk, dv
		}
		o := 2 * (w - 1) * nk
		return acc[o : o+nk], acc[o+nk : o+2*nk]
	}
	tensor.ParallelFor(len(per), 1, func(lo, hi int) {
		for w := lo; w < hi; w++ {
			wk := ops.worker(w)
			dkw, dvw := accOf(w)
			clear(dkw)
			clear(dvw)
			for _, u := range per[w] {
				m, kn := u.i1-u.i0, u.i1
				P, dS := s.workerBufs(w, m, kn, ops.maxSeg)
				qo, ko := (u.s0+u.i0)*qs+u.h*s.hd, u.s0*ks+u.h/group*s.hd
				ops.scores(P, s, qo, ko, m, kn, wk)
				ops.gradScores(dS, s, qo, ko, m, kn, wk)
				for i := 0; i < m; i++ {
					p, ds, keys := P[i*kn:(i+1)*kn], dS[i*kn:(i+1)*kn], u.i0+i+1
					r := u.s0 + u.i0 + i
					off := r*qs + u.h*s.hd
					d := dot(ops.dout[off:off+s.hd], out[off:off+s.hd]) // the dO that dP = dO·vᵀ multiplies
					tensor.AttnBwdRow(p[:keys], ds[:keys], lse[r*s.nH+u.h], d, s.scale, ops.pscale(s))
					clear(p[keys:])
					clear(ds[keys:])
				}
				if s.mode == attnBF16Fast {
					ops.bwdProducts(dq, dkw, dvw, P, dS, s, u.s0, u.i0, u.h, m, kn, wk)
					continue
				}
				if s.mode != attnF32 { // Pᵀ·dO and dSᵀ·q run on f32 GEMMs over the rounded values
					tensor.RoundBF16(P[:m*kn])
					tensor.RoundBF16(dS[:m*kn])
				}
				tensor.GemmSerial(true, false, kn, s.hd, m, 1, P, kn, ops.dout[qo:], qs, 1, dvw[ko:], ks)
				ops.times(dq[qo:], qs, dS, true, ops.k, ops.kb, s, ko, m, kn, wk)
				tensor.GemmSerial(true, false, kn, s.hd, m, 1, dS, kn, ops.q[qo:], qs, 1, dkw[ko:], ks)
			}
			wk.release()
		}
	})
	for w := 1; w < len(per); w++ {
		dkw, dvw := accOf(w)
		tensor.ParallelFor(nk, 4096, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				dk[i] += dkw[i]
				dv[i] += dvw[i]
			}
		})
	}
	if s.mode == attnBF16Fast { // dk and dv hold dKᵀ, dVᵀ (nKV·hd, n)
		tmp := ops.q[:nk] // the rounded q, read by no GEMM of this mode and done with
		for _, g := range [][]float32{dk, dv} {
			tensor.TransposeF32(tmp, g, ks, s.n)
			copy(g, tmp)
		}
	}
}

func dot(a, b []float32) float32 {
	var s float32
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}
