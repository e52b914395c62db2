package tensor

import (
	"math"
	"unsafe"
)

// The reference kernels: plain Go, one obvious loop each, f32 arithmetic
// (f64 for RMSNorm's sum of squares). The fast kernels in the CPU backend are
// tested against them; a build without cgo runs them.

// matMulRef computes out(T, N) = x(T, K) · W(N, K)ᵀ one row of W at a time.
func matMulRef(out, x []float32, w *Tensor, T int) {
	N, K := w.Rows(), w.Cols()
	es := w.DType.Size()
	parallelFor(N, 16, func(lo, hi int) {
		row := make([]float32, K)
		for n := lo; n < hi; n++ {
			widenGo(row, w.DType, w.Data[n*K*es:(n+1)*K*es])
			for t := 0; t < T; t++ {
				out[t*N+n] = dotF32(x[t*K:(t+1)*K], row)
			}
		}
	})
}

// roundBF16 is x rounded to the nearest bfloat16 (F32ToBF16), widened back:
// what the bf16 products multiply.
func roundBF16(x float32) float32 { return BF16ToF32(F32ToBF16(x)) }

// rmsNormRef: out = x / sqrt(mean(x²) + eps) * weight, row by row.
func rmsNormRef(out, x, weight []float32, eps float32) {
	d := len(weight)
	for r := 0; r < len(x)/d; r++ {
		xr, or := x[r*d:(r+1)*d], out[r*d:(r+1)*d]
		var ss float64
		for _, v := range xr {
			ss += float64(v) * float64(v)
		}
		inv := float32(1 / math.Sqrt(ss/float64(d)+float64(eps)))
		for i, v := range xr {
			or[i] = v * inv * weight[i]
		}
	}
}

// swiGLURef: gate[i] = silu(gate[i]) * up[i].
func swiGLURef(gate, up []float32) {
	for i, g := range gate {
		gate[i] = g / (1 + float32(math.Exp(float64(-g)))) * up[i]
	}
}

// attentionRef is Backend.Attention one (query, head) pair at a time; with
// bf16 it is CPU.BF16Attention's: q, k, v and the softmax's weights rounded
// to bf16 (k and v here in copies).
func attentionRef(out, q, k, v []float32, T, pos0, nHeads, nKV, headDim int, scale float32, bf16 bool) {
	group := nHeads / nKV
	kvStride := nKV * headDim
	qStride := nHeads * headDim
	if bf16 {
		q = roundedInto(make([]float32, T*qStride), q)
		k = roundedInto(make([]float32, (pos0+T)*kvStride), k)
		v = roundedInto(make([]float32, (pos0+T)*kvStride), v)
	}
	scores := make([]float32, pos0+T)
	for t := 0; t < T; t++ {
		for h := 0; h < nHeads; h++ {
			kvh := h / group
			o := t*qStride + h*headDim
			attnHeadRef(out[o:o+headDim], q[o:o+headDim], k[kvh*headDim:], v[kvh*headDim:],
				pos0+t+1, kvStride, scale, scores, bf16)
		}
	}
}

// attnHeadRef: softmax(q·kᵀ·scale) · v for one head over keys 0..n-1; k and v
// start at the head's columns and step kvStride per position. roundP
// rounds the softmax's weights to bf16.
func attnHeadRef(oh, qh, k, v []float32, n, kvStride int, scale float32, scores []float32, roundP bool) {
	hd := len(qh)
	row := func(x []float32) func(p int) []float32 {
		return func(p int) []float32 { return x[p*kvStride : p*kvStride+hd] }
	}
	attnHeadRows(oh, qh, row(k), row(v), n, scale, scores, roundP)
}

// attnHeadRows is attnHeadRef with key and value p given by kRow(p) and
// vRow(p) (hd values each, read before the next call).
func attnHeadRows(oh, qh []float32, kRow, vRow func(p int) []float32, n int, scale float32, scores []float32, roundP bool) {
	maxS := float32(math.Inf(-1))
	for p := 0; p < n; p++ {
		s := dotF32(qh, kRow(p)) * scale
		scores[p] = s
		if s > maxS {
			maxS = s
		}
	}
	var sum float32
	for p := 0; p < n; p++ {
		e := float32(math.Exp(float64(scores[p] - maxS)))
		scores[p] = e
		sum += e
	}
	clear(oh)
	for p := 0; p < n; p++ {
		w := scores[p] / sum
		if roundP {
			w = roundBF16(w)
		}
		vp := vRow(p)
		for j := range oh {
			oh[j] += w * vp[j]
		}
	}
}

// widenGo is ToF32's scalar loop.
func widenGo(dst []float32, dt DType, src []byte) {
	if len(dst) == 0 {
		return
	}
	switch dt {
	case F32:
		copy(dst, unsafe.Slice((*float32)(unsafe.Pointer(&src[0])), len(dst)))
	case BF16:
		s := unsafe.Slice((*uint16)(unsafe.Pointer(&src[0])), len(dst))
		for i, h := range s {
			dst[i] = BF16ToF32(h)
		}
	case F16:
		s := unsafe.Slice((*uint16)(unsafe.Pointer(&src[0])), len(dst))
		for i, h := range s {
			dst[i] = F16ToF32(h)
		}
	}
}

func dotF32(a, b []float32) float32 {
	var s float32
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}
