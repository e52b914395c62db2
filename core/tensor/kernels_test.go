package tensor

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"unsafe"
)

// forEachLevel runs f at every kernel level this CPU has (scalar, AVX2,
// AVX-512), restoring the best level after.
func forEachLevel(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	best := kernelLevel()
	defer setKernelLevel(best)
	for l := levelScalar; l <= best; l++ {
		if setKernelLevel(l) != l {
			continue
		}
		t.Run(fmt.Sprintf("level%d", l), f)
	}
}

// forEachProducts runs f at every kernel level with the bf16 products off,
// then on (on AVX-512 BF16's kernels at the best level where the CPU has
// them).
func forEachProducts(t *testing.T, f func(t *testing.T, bf16 bool)) {
	t.Helper()
	for _, on := range []bool{false, true} {
		t.Run(map[bool]string{false: "f32", true: "bf16"}[on], func(t *testing.T) {
			forEachLevel(t, func(t *testing.T) { f(t, on) })
		})
	}
}

// randTensor returns an (n, k) tensor at dtype dt with values ~ N(0, 1)
// rounded to dt.
func randTensor(r *rand.Rand, dt DType, n, k int) *Tensor {
	w := New("w", dt, n, k)
	switch dt {
	case F32:
		for i := range w.F32s() {
			w.F32s()[i] = float32(r.NormFloat64())
		}
	case BF16:
		for i := range w.U16s() {
			w.U16s()[i] = F32ToBF16(float32(r.NormFloat64()))
		}
	case F16:
		for i := range w.U16s() {
			w.U16s()[i] = F32ToF16(float32(r.NormFloat64()))
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

// TestWiden checks the kernels' widening against the Go conversions for
// every 16-bit pattern (bit-exact; NaN only needs to stay NaN, since
// vcvtph2ps quiets signalling NaNs).
func TestWiden(t *testing.T) {
	forEachLevel(t, func(t *testing.T) {
		for _, dt := range []DType{BF16, F16} {
			src := make([]uint16, 65536+5) // +5: an odd tail
			for i := range src {
				src[i] = uint16(i)
			}
			w := &Tensor{Name: "all", DType: dt, Shape: []int{len(src)}}
			w.Data = make([]byte, 2*len(src))
			copy(w.U16s(), src)
			got := make([]float32, len(src))
			want := make([]float32, len(src))
			widen(got, dt, w.Data)
			widenGo(want, dt, w.Data)
			for i := range got {
				g, h := got[i], want[i]
				if g != g && h != h {
					continue
				}
				if math.Float32bits(g) != math.Float32bits(h) {
					t.Fatalf("%s %#04x: got %g (%#08x), want %g (%#08x)", dt, src[i], g, math.Float32bits(g), h, math.Float32bits(h))
				}
			}
		}
	})
}

// checkMatMul compares out with matMulRef's; the tolerance is relative to
// the sum of |x_k·w_nk| (the scale of f32 summation error), 1e-5.
func checkMatMul(t *testing.T, got []float32, x []float32, w *Tensor, T int, bf16 bool) {
	t.Helper()
	N, K := w.Rows(), w.Cols()
	if roundsBF16(w, bf16) {
		// The bf16 products multiply x rounded to bf16; each product of
		// two bf16 is exact in f32, so against the reference on the
		// rounded x only the order of the sums differs.
		xr := make([]float32, len(x))
		for i, v := range x {
			xr[i] = roundBF16(v)
		}
		x = xr
	}
	want := make([]float32, T*N)
	matMulRef(want, x, w, T)
	row := make([]float32, K)
	worst, worstAt := 0.0, -1
	for n := 0; n < N; n++ {
		widenGo(row, w.DType, w.Data[n*K*w.DType.Size():])
		for tt := 0; tt < T; tt++ {
			var mag float64
			for k := 0; k < K; k++ {
				mag += math.Abs(float64(x[tt*K+k]) * float64(row[k]))
			}
			i := tt*N + n
			e := math.Abs(float64(got[i]-want[i])) / max(mag, 1e-30)
			if e > worst || got[i] != got[i] {
				worst, worstAt = e, i
				if got[i] != got[i] {
					worst = math.Inf(1)
				}
			}
		}
	}
	if worst > 1e-5 {
		t.Fatalf("%s N=%d K=%d T=%d: out[%d] = %g, want %g (relative error %.3g > 1e-5)",
			w.DType, N, K, T, worstAt, got[worstAt], want[worstAt], worst)
	}
}

func TestMatMul(t *testing.T) {
	// Small tiles and grains so that odd shapes cross tile and worker
	// boundaries.
	defer func(a, b, c int) { matvecTileBytes, matvecMinBytes, gemmTileBytes = a, b, c }(matvecTileBytes, matvecMinBytes, gemmTileBytes)
	matvecTileBytes, matvecMinBytes, gemmTileBytes = 4096, 1024, 8192
	r := rand.New(rand.NewPCG(1, 2))
	forEachProducts(t, func(t *testing.T, bf16 bool) {
		for _, dt := range []DType{BF16, F16, F32} {
			for _, N := range []int{1, 3, 5, 17, 64, 100, 131} {
				for _, K := range []int{1, 7, 15, 16, 31, 33, 64, 100, 577} {
					w := randTensor(r, dt, N, K)
					for _, T := range []int{1, 2, 7, 8, 25, 64} {
						x := randF32(r, T*K)
						out := make([]float32, T*N)
						for i := range out {
							out[i] = float32(math.NaN()) // every element must be written
						}
						matMul(out, x, w, T, bf16)
						checkMatMul(t, out, x, w, T, bf16)
					}
				}
			}
		}
	})
}

// TestMatMulLarge runs the default tiling on model-sized shapes through
// every path: decode, tiled small-T matvec and sgemm.
func TestMatMulLarge(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	forEachProducts(t, func(t *testing.T, bf16 bool) {
		for _, dt := range []DType{BF16, F16, F32} {
			for _, s := range [][2]int{{576, 576}, {1536, 576}, {576, 1536}, {192, 576}, {1001, 333}, {130, 2051}} {
				w := randTensor(r, dt, s[0], s[1])
				for _, T := range []int{1, 3, 65, 131} {
					x := randF32(r, T*s[1])
					out := make([]float32, T*s[0])
					for i := range out {
						out[i] = float32(math.NaN())
					}
					CPU{BF16Products: bf16}.MatMul(out, x, w, T)
					checkMatMul(t, out, x, w, T, bf16)
				}
			}
		}
	})
}

// within reports whether |got-want| ≤ rel·scale, treating NaN = NaN.
func within(got, want float32, rel, scale float64) bool {
	if got != got || want != want {
		return got != got && want != want
	}
	if got == want {
		return true
	}
	return math.Abs(float64(got)-float64(want)) <= rel*scale
}

func TestRMSNorm(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	forEachLevel(t, func(t *testing.T) {
		for _, d := range []int{1, 7, 16, 33, 576, 1000} {
			for _, rows := range []int{1, 3, 64} {
				x := randF32(r, rows*d)
				for i := range x {
					x[i] *= 10
				}
				wt := randF32(r, d)
				want := make([]float32, len(x))
				rmsNormRef(want, x, wt, 1e-5)
				got := make([]float32, len(x))
				CPU{}.RMSNorm(got, x, wt, 1e-5)
				CPU{}.RMSNorm(x, x, wt, 1e-5) // in place
				for i := range got {
					if !within(got[i], want[i], 1e-6, math.Abs(float64(want[i]))) || x[i] != got[i] {
						t.Fatalf("d=%d rows=%d: out[%d] = %g (in place %g), want %g", d, rows, i, got[i], x[i], want[i])
					}
				}
			}
		}
	})
}

func TestSwiGLU(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	special := []float32{0, float32(math.Copysign(0, -1)), 1e-30, -1e-30, 1, -1, 20, -20, 87, -87, 88.5, -88.5,
		89, -89, 100, -100, 1e30, -1e30, float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN())}
	forEachLevel(t, func(t *testing.T) {
		for _, n := range []int{1, 7, 16, 33, 1536, 100003} {
			g := randF32(r, n)
			u := randF32(r, n)
			for i := range g {
				g[i] *= 8
				if i < len(special) && n > 100 {
					g[i] = special[i]
				}
			}
			want := append([]float32(nil), g...)
			swiGLURef(want, u)
			got := append([]float32(nil), g...)
			CPU{}.SwiGLU(got, u)
			for i := range got {
				// Beyond |g| ≈ 88 exp over/underflows at slightly different
				// points; the result is then below 1e-30 either way.
				if !within(got[i], want[i], 1e-6, math.Abs(float64(want[i]))) &&
					!(math.Abs(float64(got[i])) < 1e-30 && math.Abs(float64(want[i])) < 1e-30) {
					t.Fatalf("n=%d: silu(%g)·%g = %g, want %g", n, g[i], u[i], got[i], want[i])
				}
			}
		}
	})
}

func TestAddEmbed(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	forEachLevel(t, func(t *testing.T) {
		for _, n := range []int{1, 15, 16, 17, 70000} {
			a, b := randF32(r, n), randF32(r, n)
			want := make([]float32, n)
			for i := range want {
				want[i] = a[i] + b[i]
			}
			CPU{}.Add(a, b)
			for i := range a {
				if a[i] != want[i] {
					t.Fatalf("Add n=%d: [%d] = %g, want %g", n, i, a[i], want[i])
				}
			}
		}
		x := randF32(r, 3*37)
		bias := randF32(r, 37)
		want := append([]float32(nil), x...)
		for i := range want {
			want[i] += bias[i%37]
		}
		CPU{}.AddBias(x, bias)
		for i := range x {
			if x[i] != want[i] {
				t.Fatalf("AddBias: [%d] = %g, want %g", i, x[i], want[i])
			}
		}
		for _, dt := range []DType{BF16, F16, F32} {
			table := randTensor(r, dt, 50, 37)
			ids := []int{0, 49, 7, 7}
			got := make([]float32, len(ids)*37)
			CPU{}.Embed(got, table, ids)
			for i, id := range ids {
				wantRow := make([]float32, 37)
				widenGo(wantRow, dt, table.Data[id*37*dt.Size():])
				for j := range wantRow {
					if got[i*37+j] != wantRow[j] {
						t.Fatalf("Embed %s id %d [%d] = %g, want %g", dt, id, j, got[i*37+j], wantRow[j])
					}
				}
			}
		}
	})
}

// attnShape is one attention call's shape in the tests.
type attnShape struct{ T, pos0, nHeads, nKV, headDim int }

// eachAttnPass runs f on every shape three times: a prompt of attnBlockMin
// queries or more in blocks (pass 0), row by row (pass 1), and in blocks
// of 1 to 9 queries, the scores bounded (pass 2).
func eachAttnPass(shapes []attnShape, f func(pass int, s attnShape)) {
	defer func(n, m int) { attnBlockMin, attnScoresMax = n, m }(attnBlockMin, attnScoresMax)
	for i, s := range append(append(slices.Clone(shapes), shapes...), shapes...) {
		attnBlockMin, attnScoresMax = 32, 1<<21
		switch i / len(shapes) {
		case 1:
			attnBlockMin = 1 << 30
		case 2:
			attnScoresMax = (s.nHeads / s.nKV) * (s.pos0 + s.T) * (1 + i%9)
		}
		f(i/len(shapes), s)
	}
}

func TestAttention(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	shapes := []attnShape{
		{1, 0, 9, 3, 64}, {1, 100, 9, 3, 64}, {1, 2047, 9, 3, 64}, {7, 5, 9, 3, 64},
		{64, 0, 9, 3, 64}, {3, 10, 4, 4, 17}, {1, 33, 2, 1, 8}, {5, 0, 6, 2, 100},
		{150, 37, 9, 3, 64}, {40, 0, 4, 2, 17}, {130, 0, 2, 1, 8},
	}
	forEachProducts(t, func(t *testing.T, bf16 bool) {
		eachAttnPass(shapes, func(_ int, s attnShape) {
			qs, kvs := s.nHeads*s.headDim, s.nKV*s.headDim
			maxSeq := s.pos0 + s.T + 3
			q := randF32(r, s.T*qs)
			k := randF32(r, maxSeq*kvs)
			v := randF32(r, maxSeq*kvs)
			if bf16 { // the cache's earlier rows, as earlier calls left them
				RoundBF16(k[:s.pos0*kvs])
				RoundBF16(v[:s.pos0*kvs])
			}
			q0 := slices.Clone(q)
			scale := float32(1 / math.Sqrt(float64(s.headDim)))
			want := make([]float32, s.T*qs)
			attentionRef(want, q, k, v, s.T, s.pos0, s.nHeads, s.nKV, s.headDim, scale, bf16)
			got := make([]float32, s.T*qs)
			CPU{BF16Attention: bf16}.Attention(got, q, k, v, s.T, s.pos0, s.nHeads, s.nKV, s.headDim, scale)
			if !slices.Equal(q, q0) {
				t.Fatalf("%+v: Attention changed q", s)
			}
			if bf16 {
				for i, x := range k[:(s.pos0+s.T)*kvs] {
					if x != roundBF16(x) || v[i] != roundBF16(v[i]) {
						t.Fatalf("%+v: k, v [%d] = %g, %g: not rounded to bf16 in place", s, i, x, v[i])
					}
				}
			}
			// The tolerance is relative to Σ_p w_p·|v_p[j]|, the scale of the
			// output's rounding error (the reference's weights w_p are ≥ 0).
			// With bf16 the outputs are held to a float64 sum over the
			// rounded q, k, v and weights instead: a weight within 4·10⁻⁶
			// of a bf16 tie may round either way (the kernels' exp and sums
			// move it by an ulp or so), and each such weight widens the bound
			// by its two roundings' difference. Unrounded weights, or any
			// unrounded operand, miss it.
			group := s.nHeads / s.nKV
			qr, kr, vr := q, k, v
			if bf16 {
				qr = roundedInto(make([]float32, len(q)), q)
				kr, vr = roundedInto(make([]float32, len(k)), k), roundedInto(make([]float32, len(v)), v)
			}
			for tt := 0; tt < s.T; tt++ {
				n := s.pos0 + tt + 1
				for h := 0; h < s.nHeads; h++ {
					o := tt*qs + h*s.headDim
					kvh := h / group
					w := make([]float64, n)
					var mx, sum float64 = math.Inf(-1), 0
					for p := range w {
						for j := 0; j < s.headDim; j++ {
							w[p] += float64(qr[o+j]) * float64(kr[p*kvs+kvh*s.headDim+j])
						}
						w[p] *= float64(scale)
						mx = max(mx, w[p])
					}
					for p := range w {
						w[p] = math.Exp(w[p] - mx)
						sum += w[p]
					}
					rw, spread := make([]float64, n), make([]float64, n)
					for p := range w {
						w[p] /= sum
						if bf16 {
							rw[p] = float64(roundBF16(float32(w[p])))
							lo, hi := float64(roundBF16(float32(w[p]*(1-4e-6)))), float64(roundBF16(float32(w[p]*(1+4e-6))))
							spread[p] = hi - lo
						}
					}
					for j := 0; j < s.headDim; j++ {
						var mag, exact, allow float64
						for p := range w {
							vp := float64(vr[p*kvs+kvh*s.headDim+j])
							mag += w[p] * math.Abs(vp)
							exact += rw[p] * vp
							allow += spread[p] * math.Abs(vp)
						}
						if !bf16 && !within(got[o+j], want[o+j], 1e-6, mag) ||
							bf16 && !(math.Abs(float64(got[o+j])-exact) <= 2e-6*mag+allow) {
							t.Fatalf("%+v: t=%d head %d [%d] = %g, want %g (attentionRef %g, scale %g, ties %g)",
								s, tt, h, j, got[o+j], exact, want[o+j], mag, allow)
						}
					}
				}
			}
		})
	})
}

// TestAttentionBF16Cache: attention over a cache held in bf16 is bit for bit
// BF16Attention's over an f32 cache of the same (rounded) values, on every
// path — decode's rows, a prompt's blocks (the cache itself the bf16 GEMM's
// operand where the CPU has it; widened once elsewhere), small blocks —
// at every kernel level, head sizes off the vectors' widths included.
func TestAttentionBF16Cache(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	shapes := []attnShape{
		{1, 0, 9, 3, 64}, {1, 100, 9, 3, 64}, {1, 700, 14, 2, 64}, {7, 5, 9, 3, 64},
		{64, 0, 9, 3, 64}, {3, 10, 4, 4, 17}, {1, 33, 2, 1, 8}, {5, 0, 6, 2, 100},
		{150, 37, 9, 3, 64}, {40, 0, 4, 2, 17}, {130, 0, 2, 1, 8}, {33, 20, 8, 2, 128},
	}
	forEachLevel(t, func(t *testing.T) {
		eachAttnPass(shapes, func(pass int, s attnShape) {
			qs, kvs := s.nHeads*s.headDim, s.nKV*s.headDim
			maxSeq := s.pos0 + s.T + 3
			q := randF32(r, s.T*qs)
			k, v := randF32(r, maxSeq*kvs), randF32(r, maxSeq*kvs)
			RoundBF16(k[:s.pos0*kvs]) // the earlier rows, as earlier calls left them
			RoundBF16(v[:s.pos0*kvs])
			k16, v16 := make([]uint16, maxSeq*kvs), make([]uint16, maxSeq*kvs)
			RoundRowsBF16(k16, kvs, k, kvs, s.pos0+s.T, kvs) // as a cache stores its rows
			RoundRowsBF16(v16, kvs, v, kvs, s.pos0+s.T, kvs)
			scale := float32(1 / math.Sqrt(float64(s.headDim)))
			want := make([]float32, s.T*qs)
			CPU{BF16Attention: true}.Attention(want, q, k, v, s.T, s.pos0, s.nHeads, s.nKV, s.headDim, scale)
			got := make([]float32, s.T*qs)
			AttentionBF16Cache(got, q, k16, v16, s.T, s.pos0, s.nHeads, s.nKV, s.headDim, scale)
			for j := range want {
				if math.Float32bits(got[j]) != math.Float32bits(want[j]) {
					t.Fatalf("%+v (pass %d) [%d] = %g over the bf16 cache, %g over the f32 one", s, pass, j, got[j], want[j])
				}
			}
		})
	})
}

// TestBF16Cols: the transposed bf16 operand is bf16Rows' values, moved,
// with each row zero-padded from the source's row count.
func TestBF16Cols(t *testing.T) {
	if !haveBLAS {
		t.Skip("the C kernels need cgo")
	}
	r := rand.New(rand.NewPCG(31, 32))
	for _, c := range [][4]int{{1, 1, 2, 3}, {17, 33, 20, 40}, {64, 100, 64, 101}, {5, 16, 8, 16}} {
		m, k, ldd, lds := c[0], c[1], c[2], c[3]
		src := randF32(r, m*lds)
		rows := make([]uint16, m*k)
		bf16Rows(rows, k, src, lds, m, k)
		dst := make([]uint16, k*ldd)
		for i := range dst {
			dst[i] = 0xffff
		}
		bf16Cols(dst, ldd, src, lds, m, k)
		for j := range k {
			for i := range ldd {
				want := uint16(0)
				if i < m {
					want = rows[i*k+j]
				}
				if dst[j*ldd+i] != want {
					t.Fatalf("%v: [%d][%d] = %#04x, want %#04x", c, j, i, dst[j*ldd+i], want)
				}
			}
		}
	}
}

// TestBF16Rows checks the C rounding of activations to bf16 bit for bit
// against roundBF16 on ties, the largest floats, infinities, NaNs and
// subnormals, and that rows are zero-padded.
func TestBF16Rows(t *testing.T) {
	if !haveBLAS {
		t.Skip("the C kernels need cgo")
	}
	forEachLevel(t, testBF16Rows)
}

func testBF16Rows(t *testing.T) {
	bits := []uint32{0, 0x80000000, 0x3f808000, 0x3f818000, 0x3f80ffff, 0x3f807fff, 0x7f7fffff, 0xff7fffff,
		0x7f800000, 0xff800000, 0x7fc00000, 0x7f800001, 0xffc00001, 0x00000001, 0x007fffff, 0x80008000}
	r := rand.New(rand.NewPCG(9, 10))
	for range 1000 {
		bits = append(bits, r.Uint32())
	}
	k := len(bits)
	src := make([]float32, 2*k)
	for i, b := range bits {
		src[i], src[k+i] = math.Float32frombits(b), -math.Float32frombits(b)
	}
	ldd := k + 3
	dst := make([]uint16, 2*ldd)
	for i := range dst {
		dst[i] = 0xffff
	}
	bf16Rows(dst, ldd, src, k, 2, k)
	// RoundBF16 rounds the same values in place, to the same bits (a NaN's
	// payload aside: both quiet it).
	inPlace := append([]float32(nil), src...)
	RoundBF16(inPlace)
	for i, v := range inPlace {
		want := math.Float32frombits(uint32(dst[i/k*ldd+i%k]) << 16)
		if math.Float32bits(v) != math.Float32bits(want) && !(v != v && want != want) {
			t.Fatalf("RoundBF16(%#08x) = %#08x, want %#08x", math.Float32bits(src[i]), math.Float32bits(v), math.Float32bits(want))
		}
	}
	for row := range 2 {
		for i := range k {
			got := math.Float32frombits(uint32(dst[row*ldd+i]) << 16)
			want := roundBF16(src[row*k+i])
			if got != got && want != want {
				continue
			}
			if math.Float32bits(got) != math.Float32bits(want) {
				t.Fatalf("bf16(%#08x) = %#04x, want %#08x", math.Float32bits(src[row*k+i]), dst[row*ldd+i], math.Float32bits(want))
			}
		}
		for i := k; i < ldd; i++ {
			if dst[row*ldd+i] != 0 {
				t.Fatalf("row %d: pad %d = %#04x, want 0", row, i, dst[row*ldd+i])
			}
		}
	}
}

// TestMatMulBF16Kernel runs the AVX-512 BF16 GEMM itself (matMul picks it
// only at the best level with the products on) on shapes that cross its
// strips, row blocks and k blocks, against the reference on rounded x.
func TestMatMulBF16Kernel(t *testing.T) {
	if !haveBF16Dot || !BF16ProductsFast() {
		t.Skip("no AVX-512 BF16 on this CPU")
	}
	r := rand.New(rand.NewPCG(11, 12))
	for _, s := range [][3]int{{1, 1, 1}, {7, 37, 19}, {13, 200, 1001}, {6, 64, 2048}, {25, 130, 2051}, {64, 129, 577}, {3, 4100, 33}} {
		T, N, K := s[0], s[1], s[2]
		w := randTensor(r, BF16, N, K)
		x := randF32(r, T*K)
		out := make([]float32, T*N)
		for i := range out {
			out[i] = float32(math.NaN())
		}
		matMulBF16(out, x, w, T)
		checkMatMul(t, out, x, w, T, true)
	}
}

// TestBF16GemmAMX runs the bf16 GEMM with and without AMX tiles on shapes
// that cross their edges — rows past the last block of 32, k past the last
// group of 16 pairs and past a k block, strips narrower than 64, b stored
// (n, k) and (k, n), setting and adding — against a float64 reference on
// the same bf16 values: only the order of the f32 sums may differ.
func TestBF16GemmAMX(t *testing.T) {
	if !haveBF16Dot || !BF16ProductsFast() {
		t.Skip("no AVX-512 BF16 on this CPU")
	}
	if !haveAMX {
		t.Skip("no AMX-BF16 on this CPU (or DISTILL_NO_AMX is set): only the vdpbf16ps kernel runs here")
	}
	defer useAMX(true)
	r := rand.New(rand.NewPCG(21, 22))
	pack := make([]uint16, bf16PackLen)
	for _, s := range [][3]int{{32, 64, 32}, {71, 100, 577}, {96, 13, 2051}, {64, 130, 1024}, {33, 64, 31}, {40, 200, 96},
		{55, 150, 900}, {12, 70, 64}, {9, 64, 2100}, {7, 64, 64}} {
		m, n, k := s[0], s[1], s[2]
		lda := (k + 1) &^ 1
		a := make([]uint16, m*lda)
		for i := 0; i < m; i++ {
			for j := 0; j < k; j++ {
				a[i*lda+j] = F32ToBF16(float32(r.NormFloat64()))
			}
		}
		b := make([]uint16, n*k)
		for i := range b {
			b[i] = F32ToBF16(float32(r.NormFloat64()))
		}
		bb := unsafe.Slice((*byte)(unsafe.Pointer(&b[0])), 2*len(b))
		for _, bkn := range []bool{false, true} {
			ldb := k // b (n, k)
			if bkn {
				ldb = n // b (k, n)
			}
			bAt := func(kk, j int) float64 {
				if bkn {
					return float64(BF16ToF32(b[kk*n+j]))
				}
				return float64(BF16ToF32(b[j*k+kk]))
			}
			c0 := randF32(r, m*n)
			var runs [2][]float32
			for ui, amx := range []bool{false, true} {
				useAMX(amx)
				for _, acc := range []bool{false, true} {
					c := append([]float32(nil), c0...)
					for i := range pack { // stale scratch: the padded block's rows past m are read
						pack[i] = 0x7fc0 // bf16 NaN
					}
					gemmBF16(c, n, a, lda, bb, ldb, m, n, k, bkn, acc, pack)
					for i := 0; i < m; i++ {
						for j := 0; j < n; j++ {
							var want, mag float64
							for kk := 0; kk < k; kk++ {
								p := float64(BF16ToF32(a[i*lda+kk])) * bAt(kk, j)
								want, mag = want+p, mag+math.Abs(p)
							}
							if acc {
								want += float64(c0[i*n+j])
								mag += math.Abs(float64(c0[i*n+j]))
							}
							if got := float64(c[i*n+j]); !(math.Abs(got-want) <= 1e-6*mag) {
								t.Fatalf("amx %v, %dx%dx%d, b (k, n) %v, acc %v: c[%d][%d] = %g, want %g", amx, m, n, k, bkn, acc, i, j, got, want)
							}
						}
					}
					if !acc {
						runs[ui] = c
					}
				}
			}
			same := 0
			for i := range runs[0] {
				if runs[0][i] == runs[1][i] {
					same++
				}
			}
			t.Logf("%dx%dx%d, b (k, n) %v: %d of %d values bit-identical between the kernels", m, n, k, bkn, same, len(runs[0]))
			// Rows after the last block of 32, DT_AMX_PAD_MIN (8) or more,
			// run on the tiles too: their sums go in another order.
			if tail := m &^ 31; m-tail >= 8 && k >= 32 {
				differ := 0
				for i := tail * n; i < m*n; i++ {
					if runs[0][i] != runs[1][i] {
						differ++
					}
				}
				if differ == 0 {
					t.Errorf("%dx%dx%d, b (k, n) %v: rows %d to %d are bit-identical with and without AMX: not on the tiles", m, n, k, bkn, tail, m)
				}
			}
		}
	}
}
