package tensor

import (
	"math"
)

// CPU is the reference backend: f32 compute, parallel across cores. Its
// MatMul hands prefill to BLAS and decode to fused widen-and-dot kernels.
type CPU struct{}

func init() { Register("cpu", func() (Backend, error) { return CPU{}, nil }) }

func (CPU) Name() string { return "cpu" }

func (CPU) MatMul(out, x []float32, w *Tensor, T int) { matMul(out, x, w, T) }

func (CPU) RMSNorm(out, x, weight []float32, eps float32) {
	d := len(weight)
	rows := len(x) / d
	parallelFor(rows, 8, func(lo, hi int) {
		for r := lo; r < hi; r++ {
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
	})
}

func (CPU) RoPE(x []float32, T, nHeads, headDim, pos0 int, cos, sin []float32) {
	half := headDim / 2
	parallelFor(T*nHeads, 16, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			t := i / nHeads
			c := cos[(pos0+t)*half : (pos0+t+1)*half]
			s := sin[(pos0+t)*half : (pos0+t+1)*half]
			h := x[i*headDim : (i+1)*headDim]
			for j := 0; j < half; j++ {
				a, b := h[j], h[j+half]
				h[j] = a*c[j] - b*s[j]
				h[j+half] = b*c[j] + a*s[j]
			}
		}
	})
}

func (CPU) Attention(out, q, k, v []float32, T, pos0, nHeads, nKV, headDim int, scale float32) {
	group := nHeads / nKV
	kvStride := nKV * headDim
	qStride := nHeads * headDim
	parallelFor(T*nHeads, 1, func(lo, hi int) {
		scores := make([]float32, pos0+T)
		for i := lo; i < hi; i++ {
			t, h := i/nHeads, i%nHeads
			kvh := h / group
			qh := q[t*qStride+h*headDim : t*qStride+(h+1)*headDim]
			n := pos0 + t + 1 // causal: keys 0..pos0+t
			maxS := float32(math.Inf(-1))
			for p := 0; p < n; p++ {
				kp := k[p*kvStride+kvh*headDim : p*kvStride+(kvh+1)*headDim]
				s := dotF32(qh, kp) * scale
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
			oh := out[t*qStride+h*headDim : t*qStride+(h+1)*headDim]
			clear(oh)
			for p := 0; p < n; p++ {
				w := scores[p] / sum
				vp := v[p*kvStride+kvh*headDim : p*kvStride+(kvh+1)*headDim]
				for j := range oh {
					oh[j] += w * vp[j]
				}
			}
		}
	})
}

func (CPU) SwiGLU(gate, up []float32) {
	parallelFor(len(gate), 4096, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			g := gate[i]
			gate[i] = g / (1 + float32(math.Exp(float64(-g)))) * up[i]
		}
	})
}

func (CPU) Add(dst, src []float32) {
	parallelFor(len(dst), 16384, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			dst[i] += src[i]
		}
	})
}

func (CPU) AddBias(x, bias []float32) {
	n := len(bias)
	for r := 0; r < len(x)/n; r++ {
		row := x[r*n : (r+1)*n]
		for i := range row {
			row[i] += bias[i]
		}
	}
}

func (CPU) Embed(out []float32, table *Tensor, ids []int) {
	d := table.Cols()
	for i, id := range ids {
		table.RowF32(id, out[i*d:(i+1)*d])
	}
}

func dotF32(a, b []float32) float32 {
	var s float32
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}
