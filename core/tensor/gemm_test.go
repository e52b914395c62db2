package tensor

import (
	"math"
	"math/rand/v2"
	"testing"
)

func gaussF32(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}

func TestGemmAllTransposes(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, sz := range [][3]int{{1, 1, 1}, {3, 5, 7}, {64, 48, 130}, {9, 300, 70}, {200, 3, 90}} {
		m, n, k := sz[0], sz[1], sz[2]
		for _, ta := range []bool{false, true} {
			for _, tb := range []bool{false, true} {
				a, b := gaussF32(r, m*k), gaussF32(r, k*n)
				lda, ldb := k, n
				if ta {
					lda = m
				}
				if tb {
					ldb = k
				}
				c0 := gaussF32(r, m*n)
				got, want := append([]float32(nil), c0...), append([]float32(nil), c0...)
				Gemm(ta, tb, m, n, k, 0.5, a, lda, b, ldb, 1, got, n)
				gemmRef(ta, tb, m, n, k, 0.5, a, lda, b, ldb, 1, want, n)
				for i := range got {
					if math.Abs(float64(got[i]-want[i])) > 1e-4*(1+math.Abs(float64(want[i]))) {
						t.Fatalf("%v ta=%v tb=%v: c[%d] = %g, want %g", sz, ta, tb, i, got[i], want[i])
					}
				}
			}
		}
	}
}

func TestMatMulTAdd(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	forEachProducts(t, func(t *testing.T, bf16 bool) { testMatMulTAdd(t, r, bf16) })
}

// testMatMulTAdd checks MatMulTAdd against the reference on every dtype; with
// the bf16 products on, BF16's reference multiplies dy rounded to bf16.
func testMatMulTAdd(t *testing.T, r *rand.Rand, bf16 bool) {
	for _, dt := range []DType{F32, BF16, F16} {
		for _, sz := range [][3]int{{1, 5, 3}, {7, 96, 40}, {33, 600, 130}, {5, 77, 64}, {40, 2051, 200}, {3, 130, 129}} {
			T, N, K := sz[0], sz[1], sz[2]
			w := New("w", dt, N, K)
			wf := gaussF32(r, N*K)
			for i, v := range wf {
				switch dt {
				case F32:
					w.F32s()[i] = v
				case BF16:
					w.U16s()[i] = F32ToBF16(v)
				case F16:
					w.U16s()[i] = F32ToF16(v)
				}
			}
			wide := w.ToF32()
			dy := gaussF32(r, T*N)
			dx := gaussF32(r, T*K)
			want := append([]float32(nil), dx...)
			dyRef := dy
			if roundsBF16(w, bf16) {
				dyRef = make([]float32, len(dy))
				for i, v := range dy {
					dyRef[i] = roundBF16(v)
				}
			}
			gemmRef(false, false, T, K, N, 1, dyRef, N, wide, K, 1, want, K)
			CPU{BF16Products: bf16}.MatMulTAdd(dx, dy, w, T)
			for i := range dx {
				if math.Abs(float64(dx[i]-want[i])) > 1e-4*(1+math.Abs(float64(want[i]))) || dx[i] != dx[i] {
					t.Fatalf("%s %v: dx[%d] = %g, want %g", dt, sz, i, dx[i], want[i])
				}
			}
		}
	}
}
