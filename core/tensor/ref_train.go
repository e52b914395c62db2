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

func attnBwdRowRef(p, ds []float32, l, d, scale float32) {
	for j := range p {
		pj := float32(math.Exp(float64(p[j] - l)))
		p[j] = pj
		ds[j] = pj * (ds[j] - d) * scale
	}
}
