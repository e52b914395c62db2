package train

// The training ops' CPU reference under exported names, for other backends'
// parity tests (cuda's): these call the very code the trainer runs.

// RMSNormForward is rmsNormFwd: out(rows, d), rstd(rows) from x(rows, d), w(d).
func RMSNormForward(out, rstd, x, w []float32, eps float32) { rmsNormFwd(out, rstd, x, w, eps) }

// RMSNormBackward is rmsNormBwd: adds to dx(rows, d) and, when non-nil, dw(d).
func RMSNormBackward(dx, dw, dy, x, w, rstd []float32) { rmsNormBwd(dx, dw, dy, x, w, rstd) }

// RoPEAt is ropeAt: rotates n rows of x (nHeads × hd each) at positions pos.
func RoPEAt(x []float32, n, nHeads, hd int, pos []int, cos, sin []float32, inverse bool) {
	ropeAt(x, n, nHeads, hd, pos, cos, sin, inverse)
}

// SwiGLUForward is swigluFwd: a = silu(g)·u.
func SwiGLUForward(a, g, u []float32) { swigluFwd(a, g, u) }

// SwiGLUBackward is swigluBwd: dg, du from da.
func SwiGLUBackward(dg, du, da, g, u []float32) { swigluBwd(dg, du, da, g, u) }

// AttentionForward is attnFwd over a packed stream of n tokens in which
// token i attends segStart[i]..i: out(n, nH·hd), lse(n, nH).
func AttentionForward(out, lse, q, k, v []float32, n, nH, nKV, hd int, segStart []int, scale float32) {
	attnFwd(out, lse, q, k, v, attnShape{n: n, nH: nH, nKV: nKV, hd: hd, segStart: segStart, scale: scale})
}

// AttentionBackward is attnBwd: sets dq, dk, dv from dout.
func AttentionBackward(dq, dk, dv, dout, q, k, v, out, lse []float32, n, nH, nKV, hd int, segStart []int, scale float32) {
	attnBwd(dq, dk, dv, dout, q, k, v, out, lse, attnShape{n: n, nH: nH, nKV: nKV, hd: hd, segStart: segStart, scale: scale})
}

// CrossEntropyRows is ceRows: losses[i] = −log softmax(logits row i)[target]
// and the row becomes scale·(softmax − onehot); rows[i] indexes targets.
func CrossEntropyRows(logits []float32, V int, rows, targets []int, scale float32, losses []float64) {
	ceRows(logits, V, rows, targets, scale, losses)
}

// KDRow is KD.row: one position's distillation loss from student logits z
// and teacher logits t (both V), z overwritten with scale·dloss/dz.
func (k *KD) KDRow(z, t []float32, target int, scale float32) float64 {
	return k.row(z, t, target, scale, make([]float64, len(z)))
}
