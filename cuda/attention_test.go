//go:build cuda

package cuda_test

import (
	"math"
	"testing"

	"distill/core/tensor"
	"distill/core/train"
	"distill/cuda"
)

// attnCase is a packed stream of segments, GQA heads.
type attnCase struct {
	segs        []int // segment lengths
	nH, nKV, hd int
}

func (c attnCase) stream() (n, maxLen int, segStart []int) {
	for _, L := range c.segs {
		for i := 0; i < L; i++ {
			segStart = append(segStart, n)
		}
		n += L
		maxLen = max(maxLen, L)
	}
	return
}

func TestAttentionParity(t *testing.T) {
	d := device(t)
	for _, c := range []attnCase{
		{[]int{1}, 1, 1, 32},
		{[]int{7, 1, 20}, 4, 2, 64}, // GQA 2:1, three segments
		{[]int{33, 64}, 14, 2, 64},  // Qwen2.5-0.5B heads (7:1)
		{[]int{130}, 8, 8, 80},      // MHA, hd not a power of two
		{[]int{300, 45}, 9, 3, 64},  // SmolLM2-135M heads (3:1), longer rows
	} {
		n, maxLen, segStart := c.stream()
		t.Run(shapeName("n%d_h%d_kv%d_hd%d", n, c.nH, c.nKV, c.hd), func(t *testing.T) {
			r := rng(uint64(n*c.nH + c.hd))
			qn, kn := n*c.nH*c.hd, n*c.nKV*c.hd
			q, k, v, dout := randn(r, qn, 1), randn(r, kn, 1), randn(r, kn, 1), randn(r, qn, 1)
			scale := float32(1 / math.Sqrt(float64(c.hd)))
			out, lse := make([]float32, qn), make([]float32, n*c.nH)
			train.AttentionForward(out, lse, q, k, v, n, c.nH, c.nKV, c.hd, segStart, scale)
			dq, dk, dv := make([]float32, qn), make([]float32, kn), make([]float32, kn)
			train.AttentionBackward(dq, dk, dv, dout, q, k, v, out, lse, n, c.nH, c.nKV, c.hd, segStart, scale)

			hi := make([]int32, n)
			for i := range hi {
				hi[i] = int32(i + 1)
			}
			s := cuda.AttnShape{NQ: n, NK: n, NH: c.nH, NKV: c.nKV, HD: c.hd, MaxLen: maxLen,
				Lo: up(t, d, cuda.I32, i32s(segStart)), Hi: up(t, d, cuda.I32, hi), Scale: scale}
			qd, kd, vd := up(t, d, cuda.F32, q), up(t, d, cuda.F32, k), up(t, d, cuda.F32, v)
			od, ld := zeros(t, d, cuda.F32, qn), zeros(t, d, cuda.F32, n*c.nH)
			ok(t, d.AttnFwd(od, ld, qd, kd, vd, s))
			// f32 dots of hd terms and softmax sums (the CPU sums in f64):
			// 1e-5 relative, 1e-5 absolute on outputs of size ~1.
			near(t, "out", down(t, od), out, 1e-5, 1e-5)
			near(t, "lse", down(t, ld), lse, 1e-5, 1e-5)
			dqd, dkd, dvd := zeros(t, d, cuda.F32, qn), zeros(t, d, cuda.F32, kn), zeros(t, d, cuda.F32, kn)
			ok(t, d.AttnBwd(dqd, dkd, dvd, up(t, d, cuda.F32, dout), qd, kd, vd, od, ld, s))
			// dS subtracts rowsum(dO∘O) from dP, and dk, dv sum over up to
			// group·L queries with atomics in any order: 1e-4 relative, 1e-4 absolute.
			near(t, "dq", down(t, dqd), dq, 1e-4, 1e-4)
			near(t, "dk", down(t, dkd), dk, 1e-4, 1e-4)
			near(t, "dv", down(t, dvd), dv, 1e-4, 1e-4)
		})
	}
}

// The Backend's decode-style Attention (queries at pos0.., keys 0..pos0+T)
// against the CPU backend's.
func TestBackendAttentionParity(t *testing.T) {
	d := device(t)
	be := cuda.NewBackend(d)
	for _, c := range [][5]int{{1, 0, 4, 2, 64}, {1, 37, 14, 2, 64}, {9, 20, 9, 3, 64}, {16, 0, 8, 8, 128}} {
		T, pos0, nH, nKV, hd := c[0], c[1], c[2], c[3], c[4]
		t.Run(shapeName("T%d_pos%d_h%d_kv%d_hd%d", T, pos0, nH, nKV, hd), func(t *testing.T) {
			r := rng(uint64(T + pos0 + nH))
			maxSeq := pos0 + T + 5 // rows beyond pos0+T must be ignored
			q, k, v := randn(r, T*nH*hd, 1), randn(r, maxSeq*nKV*hd, 1), randn(r, maxSeq*nKV*hd, 1)
			scale := float32(1 / math.Sqrt(float64(hd)))
			want, got := make([]float32, T*nH*hd), make([]float32, T*nH*hd)
			tensor.CPU{}.Attention(want, q, k, v, T, pos0, nH, nKV, hd, scale)
			be.Attention(got, q, k, v, T, pos0, nH, nKV, hd, scale)
			near(t, "out", got, want, 1e-5, 1e-5) // as TestAttentionParity's forward
		})
	}
}

// The Backend's remaining element-wise methods against the CPU backend's.
func TestBackendElementwiseParity(t *testing.T) {
	d := device(t)
	be := cuda.NewBackend(d)
	r := rng(99)
	const T, nH, hd, dim = 6, 4, 64, 256
	x, w := randn(r, T*dim, 1), randn(r, dim, 1)
	want, got := make([]float32, T*dim), make([]float32, T*dim)
	tensor.CPU{}.RMSNorm(want, x, w, 1e-5)
	be.RMSNorm(got, x, w, 1e-5)
	near(t, "rmsnorm", got, want, f32Tol, 1e-6)

	cos, sin := ropeTables(40, hd, 1e4)
	q := randn(r, T*nH*hd, 1)
	want, got = append([]float32(nil), q...), append([]float32(nil), q...)
	tensor.CPU{}.RoPE(want, T, nH, hd, 30, cos, sin)
	be.RoPE(got, T, nH, hd, 30, cos, sin)
	near(t, "rope", got, want, f32Tol, 1e-6)

	g, u := randn(r, 1000, 2), randn(r, 1000, 1)
	want, got = append([]float32(nil), g...), append([]float32(nil), g...)
	tensor.CPU{}.SwiGLU(want, u)
	be.SwiGLU(got, u)
	near(t, "swiglu", got, want, f32Tol, 1e-7)
}
