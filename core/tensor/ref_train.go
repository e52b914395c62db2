package tensor

import "math"

// The references of training's element-wise kernels (ops_train.c): what
// core/train computed in Go before them, f64 exp and sums. A build without
// cgo runs them.

func sigmoidRef(x float32) float32 { return float32(1 / (1 + math.Exp(-float64(x)))) }

func swiGLUFwdRef(a, g, u []float32) {
	for i := range a {
		a[i] = g[i] * sigmoidRef(g[i]) * u[i]
	}
}

func swiGLUBwdRef(dg, du, da, g, u []float32) {
	for i := range da {
		s := sigmoidRef(g[i])
		du[i] = da[i] * g[i] * s
		dg[i] = da[i] * u[i] * s * (1 + g[i]*(1-s))
	}
}

func softmaxRef(row []float32) float64 {
	m := row[0]
	for _, v := range row {
		m = max(m, v)
	}
	var sum float64
	for j, v := range row {
		e := math.Exp(float64(v - m))
		row[j] = float32(e)
		sum += e
	}
	inv := float32(1 / sum)
	for j := range row {
		row[j] *= inv
	}
	return float64(m) + math.Log(sum)
}

func attnBwdRowRef(p, ds []float32, l, d, scale, pscale float32) {
	for j := range p {
		pj := float32(math.Exp(float64(p[j]*pscale - l)))
		p[j] = pj
		ds[j] = pj * (ds[j] - d) * scale
	}
}

// rmsNormFwdRef: out(rows, d) = x / sqrt(mean(x²) + eps) · w per row, the
// sum in f64; rstd(rows) saved.
func rmsNormFwdRef(out, rstd, x, w []float32, eps float32) {
	d := len(w)
	for r := range rstd {
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
}

// rmsNormBwdRef adds to dx(rows, d) the gradient through the norm: with
// g = dy·w, dx += rstd·g − x·rstd³·(g·x)/d.
func rmsNormBwdRef(dx, dy, x, w, rstd []float32) {
	d := len(w)
	for r, s := range rstd {
		xr, dyr, dxr := x[r*d:(r+1)*d], dy[r*d:(r+1)*d], dx[r*d:(r+1)*d]
		var gx float64
		for i := range xr {
			gx += float64(dyr[i]) * float64(w[i]) * float64(xr[i])
		}
		c := float32(gx/float64(d)) * s * s * s
		for i := range xr {
			dxr[i] += s*dyr[i]*w[i] - c*xr[i]
		}
	}
}
