package quant

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"distill/core/tensor"
)

// randWeights returns an (n, k) tensor at dtype dt of N(0, 0.02²) weights
// with a few outliers (×30) and exact zeros, like a checkpoint's.
func randWeights(r *rand.Rand, dt tensor.DType, n, k int) *tensor.Tensor {
	v := make([]float32, n*k)
	for i := range v {
		v[i] = float32(0.02 * r.NormFloat64())
		switch r.IntN(1000) {
		case 0:
			v[i] *= 30
		case 1:
			v[i] = 0
		}
	}
	w := tensor.New(fmt.Sprintf("w%dx%d", n, k), dt, n, k)
	switch dt {
	case tensor.F32:
		copy(w.F32s(), v)
	case tensor.BF16:
		for i, f := range v {
			w.U16s()[i] = tensor.F32ToBF16(f)
		}
	case tensor.F16:
		for i, f := range v {
			w.U16s()[i] = tensor.F32ToF16(f)
		}
	}
	return w
}

func randF32(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}

// Shapes for the matmul tests: SmolLM2's, odd row counts (the 4-row kernels'
// remainders), columns that are not a multiple of the block (the generic
// path: blocks straddle rows, odd columns start rows mid-byte), tiny ones.
var testShapes = [][2]int{{576, 576}, {100, 192}, {37, 200}, {5, 7}, {64, 64}, {9, 128}, {3, 96}, {130, 33}}

func TestNF4ErrorBound(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, s := range [][2]int{{64, 64}, {97, 201}, {256, 576}, {1, 5}} {
		w := randWeights(r, tensor.F32, s[0], s[1])
		orig := w.F32s()
		for _, dq := range []bool{false, true} {
			q, err := QuantizeNF4(w, dq)
			if err != nil {
				t.Fatal(err)
			}
			deq := make([]float32, len(orig))
			q.Dequantize(deq)
			// Each element is within half the largest code gap of its
			// block's absmax; with double quantisation the absmax itself is
			// approximate, which adds |c|·|a - a'| ≤ |a - a'|.
			var exact []float32
			if dq {
				p, _ := QuantizeNF4(w, false)
				exact = p.Absmax
			}
			scales := q.Scales()
			worst := 0.0
			for i, v := range orig {
				b := i / NF4BlockSize
				a := float64(scales[b])
				bound := NF4MaxHalfGap * a
				if dq {
					bound = NF4MaxHalfGap*float64(exact[b]) + math.Abs(float64(exact[b])-a)
				}
				e := math.Abs(float64(deq[i]) - float64(v))
				if e > bound*(1+1e-6)+1e-12 {
					t.Fatalf("%v dq=%v: element %d: |%v - %v| = %.3g > bound %.3g (absmax %v)", s, dq, i, deq[i], v, e, bound, a)
				}
				worst = max(worst, e/max(a, 1e-30))
			}
			maxAbs, rms := q.QuantError(w)
			t.Logf("%v dq=%v: worst error %.4f·absmax (bound %.4f), max %.3g, rms %.3g, %.4f bits/param",
				s, dq, worst, NF4MaxHalfGap, maxAbs, rms, q.BitsPerParam())
		}
	}
}

func TestDoubleQuantAbsmaxError(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	w := randWeights(r, tensor.F32, 512, 576)
	p, _ := QuantizeNF4(w, false)
	q, _ := QuantizeNF4(w, true)
	// Each centred absmax is within half the largest gap of the dynamic map
	// (near ±1: 0.9/64) times its block's absmax2. Relative to small
	// absmaxes far below the mean the error can reach several percent: the
	// map is logarithmic around 0, not around the offset.
	halfGap := 0.0
	for i := 0; i+1 < 256; i++ {
		halfGap = max(halfGap, float64(DynamicMap[i+1]-DynamicMap[i])/2)
	}
	worst, worstRel := 0.0, 0.0
	for b, a := range q.Scales() {
		e := math.Abs(float64(a) - float64(p.Absmax[b]))
		a2 := float64(q.Absmax2[b/DQBlockSize])
		if e > halfGap*a2*(1+1e-5)+1e-9 {
			t.Fatalf("block %d: absmax %v decoded as %v: error %.3g > %.4f·absmax2 (%v)", b, p.Absmax[b], a, e, halfGap, a2)
		}
		worst = max(worst, e/a2)
		worstRel = max(worstRel, e/float64(p.Absmax[b]))
	}
	t.Logf("double-quantised absmax: worst error %.5f·absmax2 (bound %.5f), %.4f relative, over %d blocks, offset %v",
		worst, halfGap, worstRel, len(p.Absmax), q.Offset)
}

func TestBitsPerParam(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	w := randWeights(r, tensor.BF16, 256, 64*256/256*4) // 256×256: 1024 blocks, 4 second-level blocks
	p, _ := QuantizeNF4(w, false)
	q, _ := QuantizeNF4(w, true)
	n := float64(w.Elems())
	if got := p.BitsPerParam(); got != 4.5 {
		t.Errorf("NF4 bits/param %v, want 4.5", got)
	}
	want := 4 + 8.0/64 + 32.0/(64*256) + 32/n
	if got := q.BitsPerParam(); math.Abs(got-want) > 1e-12 {
		t.Errorf("NF4 double-quant bits/param %v, want %v", got, want)
	}
	q8, _ := QuantizeQ8(w)
	if got := q8.BitsPerParam(); got != 9 {
		t.Errorf("Q8 bits/param %v, want 9", got)
	}
	t.Logf("bits/param: NF4 %.4f, NF4+DQ %.4f, Q8 %.4f", p.BitsPerParam(), q.BitsPerParam(), q8.BitsPerParam())
}

func TestQ8ErrorBound(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, s := range [][2]int{{64, 64}, {97, 201}, {1, 5}} {
		w := randWeights(r, tensor.F32, s[0], s[1])
		q, err := QuantizeQ8(w)
		if err != nil {
			t.Fatal(err)
		}
		deq := make([]float32, w.Elems())
		q.Dequantize(deq)
		for i, v := range w.F32s() {
			d := float64(q.Scales[i/Q8BlockSize])
			if e := math.Abs(float64(deq[i]) - float64(v)); e > d*(0.5+1e-5)+1e-12 {
				t.Fatalf("%v: element %d: |%v - %v| = %.3g > d/2 = %.3g", s, i, deq[i], v, e, d/2)
			}
		}
		maxAbs, rms := q.QuantError(w)
		t.Logf("%v: Q8 max error %.3g, rms %.3g", s, maxAbs, rms)
	}
}

// TestDTypes: quantising F16 or BF16 weights equals quantising their exact
// f32 widening.
func TestDTypes(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for _, dt := range []tensor.DType{tensor.BF16, tensor.F16} {
		w := randWeights(r, dt, 33, 130)
		wf := tensor.FromF32("widened", w.ToF32(), 33, 130)
		forEachLevel(t, func(t *testing.T) {
			a, _ := QuantizeNF4(w, true)
			b, _ := QuantizeNF4(wf, true)
			sameBytes(t, dt.String()+" NF4 codes", a.Codes, b.Codes)
			sameBytes(t, dt.String()+" qabsmax", a.QAbsmax, b.QAbsmax)
			c, _ := QuantizeQ8(w)
			d, _ := QuantizeQ8(wf)
			sameF32(t, dt.String()+" Q8 scales", c.Scales, d.Scales)
		})
	}
}

func TestNonFinite(t *testing.T) {
	for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))} {
		v := make([]float32, 7*300)
		for i := range v {
			v[i] = float32(i%13) - 6
		}
		v[4*300+17] = bad
		v[6*300+1] = bad // a later one, in another worker's share
		w := tensor.FromF32("model.layers.3.mlp.up_proj.weight", v, 7, 300)
		forEachLevel(t, func(t *testing.T) {
			_, err := QuantizeNF4(w, false)
			if !errors.Is(err, ErrNonFinite) {
				t.Fatalf("NF4 of %v: error %v, want ErrNonFinite", bad, err)
			}
			want := "element 1217 (row 4, column 17)"
			if msg := err.Error(); !strings.Contains(msg, want) || !strings.Contains(msg, w.Name) {
				t.Errorf("NF4 error %q does not name %q and the tensor", msg, want)
			}
			if _, err := QuantizeQ8(w); !errors.Is(err, ErrNonFinite) {
				t.Errorf("Q8 of %v: error %v, want ErrNonFinite", bad, err)
			}
		})
	}
	if _, err := QuantizeNF4(tensor.New("empty", tensor.F32, 0, 4), false); err == nil {
		t.Error("empty tensor quantised without error")
	}
}

func TestDequantizeRows(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for _, s := range testShapes {
		w := randWeights(r, tensor.BF16, s[0], s[1])
		q, _ := QuantizeNF4(w, true)
		q8, _ := QuantizeQ8(w)
		for _, lin := range []Linear{q, q8, Dense{w}} {
			N, K := lin.Shape()
			all := make([]float32, N*K)
			lin.DequantizeRows(0, N, all)
			for range 5 {
				r0 := r.IntN(N)
				r1 := r0 + r.IntN(N-r0) + 1
				got := make([]float32, (r1-r0)*K)
				lin.DequantizeRows(r0, r1, got)
				sameF32(t, fmt.Sprintf("%T %v rows [%d, %d)", lin, s, r0, r1), got, all[r0*K:r1*K])
			}
		}
		// The reference agrees with the kernels, tile by tile.
		tile := make([]float32, s[0]*s[1])
		ref := make([]float32, s[0]*s[1])
		k0, k1 := s[1]/3, s[1]-s[1]/5
		nf4DequantTile(tile, k1-k0, q, 1, s[0], k0, k1, false)
		nf4DequantTileRef(ref, k1-k0, q, 1, s[0], k0, k1)
		sameF32(t, fmt.Sprintf("NF4 tile %v cols [%d, %d)", s, k0, k1), tile[:(s[0]-1)*(k1-k0)], ref[:(s[0]-1)*(k1-k0)])
	}
}

// naiveMatMul is out(T, N) = x(T, K) · W(N, K)ᵀ in f64 over the dequantised
// W, with the scale Σ|x·w| of each output for the tolerance.
func naiveMatMul(x, w []float32, T, N, K int) (out, scale []float64) {
	out, scale = make([]float64, T*N), make([]float64, T*N)
	for t := 0; t < T; t++ {
		for n := 0; n < N; n++ {
			var s, a float64
			for k := 0; k < K; k++ {
				p := float64(x[t*K+k]) * float64(w[n*K+k])
				s += p
				a += math.Abs(p)
			}
			out[t*N+n], scale[t*N+n] = s, a
		}
	}
	return
}

// naiveMatMulT is dx(T, K) = dy(T, N) · W(N, K) in f64.
func naiveMatMulT(dy, w []float32, T, N, K int) (out, scale []float64) {
	out, scale = make([]float64, T*K), make([]float64, T*K)
	for t := 0; t < T; t++ {
		for k := 0; k < K; k++ {
			var s, a float64
			for n := 0; n < N; n++ {
				p := float64(dy[t*N+n]) * float64(w[n*K+k])
				s += p
				a += math.Abs(p)
			}
			out[t*K+k], scale[t*K+k] = s, a
		}
	}
	return
}

// checkClose allows f32 accumulation error: 1e-5 of Σ|terms|.
func checkClose(t *testing.T, what string, got []float32, want, scale []float64) {
	t.Helper()
	worst, at := 0.0, 0
	for i := range want {
		e := math.Abs(float64(got[i])-want[i]) / (scale[i] + 1e-20)
		if e > worst {
			worst, at = e, i
		}
	}
	if worst > 1e-5 || math.IsNaN(worst) {
		t.Errorf("%s: error %.3g of Σ|terms| at %d: %v want %v", what, worst, at, got[at], want[at])
	}
}

func quantizedOf(t *testing.T, w *tensor.Tensor) map[string]Linear {
	q, err := QuantizeNF4(w, false)
	if err != nil {
		t.Fatal(err)
	}
	dq, _ := QuantizeNF4(w, true)
	q8, _ := QuantizeQ8(w)
	return map[string]Linear{"NF4": q, "NF4-DQ": dq, "Q8": q8, "Dense": Dense{w}}
}

func TestMatMul(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	forEachLevel(t, func(t *testing.T) {
		for _, s := range testShapes {
			N, K := s[0], s[1]
			w := randWeights(r, tensor.BF16, N, K)
			for name, lin := range quantizedOf(t, w) {
				deq := make([]float32, N*K)
				lin.DequantizeRows(0, N, deq)
				for _, T := range []int{1, 3, 64} {
					x := randF32(r, T*K)
					want, scale := naiveMatMul(x, deq, T, N, K)
					out := make([]float32, T*N+1)
					out[T*N] = 42 // canary
					lin.MatMul(out, x, T)
					checkClose(t, fmt.Sprintf("%s %dx%d MatMul T=%d", name, N, K, T), out, want, scale)
					if out[T*N] != 42 {
						t.Errorf("%s %dx%d MatMul T=%d wrote past out", name, N, K, T)
					}

					dy := randF32(r, T*N)
					wantT, scaleT := naiveMatMulT(dy, deq, T, N, K)
					dx := make([]float32, T*K+1)
					for i := range dx {
						dx[i] = float32(math.NaN()) // must be overwritten, not accumulated into
					}
					dx[T*K] = 42
					lin.MatMulT(dx, dy, T)
					checkClose(t, fmt.Sprintf("%s %dx%d MatMulT T=%d", name, N, K, T), dx, wantT, scaleT)
					if dx[T*K] != 42 {
						t.Errorf("%s %dx%d MatMulT T=%d wrote past dx", name, N, K, T)
					}
				}
			}
		}
	})
}

// TestMatMulPaths forces each MatMul path (fused kernel over tiles, sgemm on
// tiles split by rows of W or of x) on the same product.
func TestMatMulPaths(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 16))
	defer func(a, b, c int) { gemmMinT, matvecTileBytes, gemmTileBytes = a, b, c }(gemmMinT, matvecTileBytes, gemmTileBytes)
	for _, s := range [][2]int{{300, 576}, {40, 640}} {
		N, K := s[0], s[1]
		w := randWeights(r, tensor.F32, N, K)
		for name, lin := range quantizedOf(t, w) {
			deq := make([]float32, N*K)
			lin.DequantizeRows(0, N, deq)
			T := 20
			x := randF32(r, T*K)
			want, scale := naiveMatMul(x, deq, T, N, K)
			for _, p := range []struct{ minT, vecTile, gemmTile int }{{100, 4 << 10, 0}, {2, 0, 64 << 10}, {2, 0, 4 << 10}} {
				gemmMinT, matvecTileBytes, gemmTileBytes = p.minT, max(p.vecTile, 1), max(p.gemmTile, 1)
				out := make([]float32, T*N)
				lin.MatMul(out, x, T)
				checkClose(t, fmt.Sprintf("%s %dx%d T=%d path %+v", name, N, K, T, p), out, want, scale)
				dy := randF32(r, T*N)
				wantT, scaleT := naiveMatMulT(dy, deq, T, N, K)
				dx := make([]float32, T*K)
				lin.MatMulT(dx, dy, T)
				checkClose(t, fmt.Sprintf("%s %dx%d T=%d MatMulT path %+v", name, N, K, T, p), dx, wantT, scaleT)
			}
		}
	}
}

// TestMatvecKernels checks each fused kernel level and the reference kernel
// on row ranges that start past 0 (the kernels index rows absolutely).
func TestMatvecKernels(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 18))
	for _, s := range [][2]int{{7, 64}, {13, 640}, {4, 1536}} {
		N, K := s[0], s[1]
		w := randWeights(r, tensor.F32, N, K)
		x := randF32(r, K)
		for _, dq := range []bool{false, true} {
			q, _ := QuantizeNF4(w, dq)
			q8, _ := QuantizeQ8(w)
			deq, deq8 := make([]float32, N*K), make([]float32, N*K)
			q.Dequantize(deq)
			q8.Dequantize(deq8)
			want, scale := naiveMatMul(x, deq, 1, N, K)
			want8, scale8 := naiveMatMul(x, deq8, 1, N, K)
			got := make([]float32, N)
			nf4MatvecRef(got, q, x, 0, N)
			checkClose(t, fmt.Sprintf("NF4 reference dq=%v %v", dq, s), got, want, scale)
			q8MatvecRef(got, q8, x, 0, N)
			checkClose(t, fmt.Sprintf("Q8 reference %v", s), got, want8, scale8)
			forEachLevel(t, func(t *testing.T) {
				xp := make([]float32, nf4XPLen(K))
				nf4Prep(xp, x)
				got := make([]float32, N)
				nf4Matvec(got, q, xp, 1, N, false)
				checkClose(t, fmt.Sprintf("NF4 dq=%v %v", dq, s), got[1:], want[1:], scale[1:])
				q8Matvec(got, q8, x, 2, N)
				checkClose(t, fmt.Sprintf("Q8 %v", s), got[2:], want8[2:], scale8[2:])
			})
		}
	}
}

// TestBF16Products runs NF4's products with the CPU backend's bf16 products
// at every kernel level, on AVX-512 BF16's GEMM (where the CPU has it) and
// on the f32 fallback, over small tiles so that products cross several
// (T = 1 and 3 go through the fused matvec). The reference rounds each
// dequantised weight and each input to bf16 (what bitsandbytes' bf16
// compute dtype multiplies) and sums in f64, so only the order of the sums
// may differ. The backward is checked accumulating into dx and setting it.
func TestBF16Products(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 16))
	defer func(b int, f func() bool) { gemmTileBytes, bf16GEMM = b, f }(gemmTileBytes, bf16GEMM)
	gemmTileBytes = 16 << 10
	for _, fast := range []bool{true, false} {
		if fast && !tensor.BF16ProductsFast() {
			continue
		}
		bf16GEMM = func() bool { return fast && tensor.BF16ProductsFast() }
		t.Run(map[bool]string{true: "vdpbf16ps", false: "f32"}[fast], func(t *testing.T) {
			forEachLevel(t, func(t *testing.T) { testBF16Products(t, r) })
		})
	}
}

func testBF16Products(t *testing.T, r *rand.Rand) {
	for _, s := range append(testShapes, [2]int{1100, 320}, [2]int{131, 448}) {
		N, K := s[0], s[1]
		w := randWeights(r, tensor.BF16, N, K)
		for _, dq := range []bool{false, true} {
			q, err := QuantizeNF4(w, dq)
			if err != nil {
				t.Fatal(err)
			}
			f := &Quantized{Q: q, w: nf4Weights{q: q}}
			deq := make([]float32, N*K)
			q.DequantizeRows(0, N, deq)
			roundBF16(deq)
			for _, T := range []int{1, 3, 64} {
				x := randF32(r, T*K)
				xr := roundedCopy(make([]float32, len(x)), x)
				want, scale := naiveMatMul(xr, deq, T, N, K)
				out := make([]float32, T*N)
				for i := range out {
					out[i] = float32(math.NaN())
				}
				f.MatMulCPU(out, x, T, true)
				checkClose(t, fmt.Sprintf("NF4 dq=%v %dx%d bf16 MatMul T=%d", dq, N, K, T), out, want, scale)

				dy := randF32(r, T*N)
				dyr := roundedCopy(make([]float32, len(dy)), dy)
				wantT, scaleT := naiveMatMulT(dyr, deq, T, N, K)
				dx := make([]float32, T*K)
				for i := range dx {
					dx[i] = float32(math.NaN()) // set, not accumulated into
				}
				matMulTAcc(nf4Weights{q, true}, dx, dy, T, false)
				checkClose(t, fmt.Sprintf("NF4 dq=%v %dx%d bf16 MatMulT T=%d", dq, N, K, T), dx, wantT, scaleT)
				for i := range dx {
					dx[i] = 1 // MatMulTAddCPU accumulates
					wantT[i]++
					scaleT[i]++
				}
				f.MatMulTAddCPU(dx, dy, T, true)
				checkClose(t, fmt.Sprintf("NF4 dq=%v %dx%d bf16 MatMulTAdd T=%d", dq, N, K, T), dx, wantT, scaleT)
			}
		}
	}
}
