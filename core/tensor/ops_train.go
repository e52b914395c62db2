package tensor

import "math"

// Training's element-wise kernels, for core/train's CPU step: vectorised C
// (ops_train.c) with vexp.h's exp, checked against ref_train.go.

// SwiGLUFwd sets a = g·σ(g)·u, split over the workers.
func SwiGLUFwd(a, g, u []float32) {
	if len(a) == 0 {
		return
	}
	_, _ = g[len(a)-1], u[len(a)-1]
	parallelFor(len(a), 16384, func(lo, hi int) { swiGLUFwdKernel(a[lo:hi], g[lo:hi], u[lo:hi]) })
}

// SwiGLUBwd sets du = da·g·σ(g) and dg = da·u·σ(g)·(1 + g·(1 − σ(g))), split
// over the workers.
func SwiGLUBwd(dg, du, da, g, u []float32) {
	n := len(da)
	if n == 0 {
		return
	}
	_, _, _, _ = dg[n-1], du[n-1], g[n-1], u[n-1]
	parallelFor(n, 16384, func(lo, hi int) { swiGLUBwdKernel(dg[lo:hi], du[lo:hi], da[lo:hi], g[lo:hi], u[lo:hi]) })
}

// SoftmaxRow turns row into softmax(row) on the calling goroutine (callers
// split rows over the workers) and returns log Σ exp(row), summed in f64.
func SoftmaxRow(row []float32) float64 {
	if len(row) == 0 {
		return math.Inf(-1)
	}
	return softmaxKernel(row)
}

// AttnBwdRow rebuilds one query's probabilities and score gradients in
// attention's backward: p[j] = e^(p[j]·pscale − lse), ds[j] = p[j]·(ds[j] −
// d)·scale, d being the row's dO·O; pscale is the scale p's scores still
// lack (1 where their GEMM applied it).
func AttnBwdRow(p, ds []float32, lse, d, scale, pscale float32) {
	if len(p) == 0 {
		return
	}
	_ = ds[len(p)-1]
	attnBwdRowKernel(p, ds, lse, d, scale, pscale)
}

// SoftmaxRowsBF16 turns m rows of attention's scores S (ld apart, row i's
// first n0+i valid) into their softmax after scaling them by scale, written
// to P in bf16 (rows ldp apart, zero past each row's n0+i), and each row's
// log-sum-exp to lse[i·lseStride]; S is left as scratch. It needs cgo; the
// values are SoftmaxRow's, rounded.
func SoftmaxRowsBF16(S []float32, P []uint16, m, ld, ldp, n0 int, scale float32, lse []float32, lseStride int) {
	softmaxCausalBF16Kernel(S, P, m, ld, ldp, n0, m, scale, lse, lseStride)
}

// RMSNormFwd sets out(rows, d) = x / √(mean(x²) + eps) · w for each row
// (rows = len(rstd), d = len(w)), saving each row's 1/√(…) in rstd; rows
// are split over the workers.
func RMSNormFwd(out, rstd, x, w []float32, eps float32) {
	rows, d := len(rstd), len(w)
	if rows == 0 || d == 0 {
		return
	}
	_, _ = out[rows*d-1], x[rows*d-1]
	parallelFor(rows, max(1, 8192/d), func(lo, hi int) {
		rmsNormFwdKernel(out[lo*d:hi*d], rstd[lo:hi], x[lo*d:hi*d], w, eps)
	})
}

// RMSNormBwd adds to dx(rows, d) the gradient through RMSNormFwd, from dy
// and the saved rstd: with g = dy·w, dx += rstd·g − x·rstd³·(g·x)/d.
func RMSNormBwd(dx, dy, x, w, rstd []float32) {
	rows, d := len(rstd), len(w)
	if rows == 0 || d == 0 {
		return
	}
	_, _, _ = dx[rows*d-1], dy[rows*d-1], x[rows*d-1]
	parallelFor(rows, max(1, 8192/d), func(lo, hi int) {
		rmsNormBwdKernel(dx[lo*d:hi*d], dy[lo*d:hi*d], x[lo*d:hi*d], w, rstd[lo:hi])
	})
}
