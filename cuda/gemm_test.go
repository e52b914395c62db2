//go:build cuda

package cuda_test

import (
	"math"
	"slices"
	"strings"
	"testing"

	"distill/core/quant"
	"distill/core/tensor"
	"distill/cuda"
)

// gemmShapes: (m, n, k), tensor-core-unfriendly ones among them (odd, not a
// multiple of 8 or 16).
var gemmShapes = [][3]int{{1, 1, 1}, {7, 33, 65}, {64, 576, 576}, {100, 1000, 257}, {128, 4864, 896}}

// bf16Round rounds v to bf16 and back, so the CPU multiplies exactly the
// values the GPU does and only the accumulation differs.
func bf16Round(v []float32) ([]float32, []uint16) {
	f, h := make([]float32, len(v)), make([]uint16, len(v))
	for i, x := range v {
		h[i] = tensor.F32ToBF16(x)
		f[i] = tensor.BF16ToF32(h[i])
	}
	return f, h
}

func TestGemmParity(t *testing.T) {
	d := device(t)
	for _, sh := range gemmShapes {
		m, n, k := sh[0], sh[1], sh[2]
		for _, tr := range [][2]bool{{false, false}, {false, true}, {true, false}, {true, true}} {
			ta, tb := tr[0], tr[1]
			t.Run(shapeName("%dx%dx%d_tA%v_tB%v", m, n, k, ta, tb), func(t *testing.T) {
				r := rng(uint64(m*n*k) + uint64(len(shapeName("%v%v", ta, tb))))
				lda, ldb := k, n
				if ta {
					lda = m
				}
				if tb {
					ldb = k
				}
				a, b, c0 := randn(r, m*k, 1), randn(r, k*n, 1), randn(r, m*n, 1)
				want := slices.Clone(c0)
				tensor.Gemm(ta, tb, m, n, k, 0.5, a, lda, b, ldb, 0.25, want, n)
				cd := up(t, d, cuda.F32, c0)
				ok(t, d.GemmF32(ta, tb, m, n, k, 0.5, up(t, d, cuda.F32, a), lda, up(t, d, cuda.F32, b), ldb, 0.25, cd, n))
				// f32 both sides, different summation order: each add rounds at the
				// ulp of a partial sum of ~sqrt(k), k adds in a random walk: about
				// 1e-7·k absolute, whatever the result's own size; 1e-5·sqrt(k) ≥ that.
				near(t, "f32", down(t, cd), want, f32Tol, 1e-5*math.Sqrt(float64(k)))

				cd = up(t, d, cuda.F32, c0)
				ok(t, d.GemmTF32(ta, tb, m, n, k, 0.5, up(t, d, cuda.F32, a), lda, up(t, d, cuda.F32, b), ldb, 0.25, cd, n))
				// TF32 keeps 10 of f32's 23 mantissa bits of each input (rounded or
				// truncated: up to 2^-10 relative), so a product of unit-variance
				// inputs errs by σ ≲ 6e-4 and k of them by 6e-4·sqrt(k); the
				// tolerance is ~7σ of that.
				near(t, "tf32", down(t, cd), want, 1e-3, 4e-3*math.Sqrt(float64(k)))

				af, ah := bf16Round(a)
				bf, bh := bf16Round(b)
				want = slices.Clone(c0)
				tensor.Gemm(ta, tb, m, n, k, 0.5, af, lda, bf, ldb, 0.25, want, n)
				cd = up(t, d, cuda.F32, c0)
				ok(t, d.GemmBF16(ta, tb, m, n, k, 0.5, up(t, d, cuda.BF16, ah), lda, up(t, d, cuda.BF16, bh), ldb, 0.25, cd, n))
				// Exact bf16 products, f32 accumulation on tensor cores, whose adders
				// may align and truncate partial sums: 1e-4 relative, 5e-5·sqrt(k).
				near(t, "bf16", down(t, cd), want, 1e-4, 5e-5*math.Sqrt(float64(k)))

				// C in bf16: the same sum (beta reading C widened), rounded
				// once as it is stored — within an ulp of bf16 (2^-8
				// relative) of want, beyond the f32 sum's own tolerance.
				cf, ch := bf16Round(c0)
				want = slices.Clone(cf)
				tensor.Gemm(ta, tb, m, n, k, 0.5, af, lda, bf, ldb, 0.25, want, n)
				cb := up(t, d, cuda.BF16, ch)
				ok(t, d.GemmBF16(ta, tb, m, n, k, 0.5, up(t, d, cuda.BF16, ah), lda, up(t, d, cuda.BF16, bh), ldb, 0.25, cb, n))
				hb, err := cuda.Download[uint16](cb)
				ok(t, err)
				got := make([]float32, len(hb))
				for i, v := range hb {
					got[i] = tensor.BF16ToF32(v)
				}
				near(t, "bf16 out", got, want, 1.0/256, 5e-5*math.Sqrt(float64(k)))
			})
		}
	}
}

// The adapter's grouped products as one strided batch (GemmTF32Batched):
// each of three products against tensor.Gemm on its own operands, with the
// shared operand at stride 0 (u = x·Aᵀ for q, k and v; dA = duᵀ·x) and
// apart (under LoRA dropout each module's x is its own), at a rank-like n
// and odd sizes. Tolerance: TestGemmParity's TF32 one (same products).
func TestGemmTF32BatchedParity(t *testing.T) {
	d := device(t)
	const batch = 3
	for _, c := range []struct {
		m, n, k        int
		ta, tb, shareB bool
	}{
		{64, 16, 96, false, true, true},  // u_i = x·A_iᵀ, x shared
		{16, 96, 64, true, false, true},  // dA_i = du_iᵀ·x, x shared
		{16, 96, 64, true, false, false}, // dA_i = du_iᵀ·x_i, dropped apart
		{33, 7, 65, false, false, false}, // odd, nothing shared
	} {
		t.Run(shapeName("%dx%dx%d_tA%v_tB%v_shared%v", c.m, c.n, c.k, c.ta, c.tb, c.shareB), func(t *testing.T) {
			r := rng(uint64(c.m*c.n*c.k) + 11)
			lda, ldb := c.k, c.n
			if c.ta {
				lda = c.m
			}
			if c.tb {
				ldb = c.k
			}
			sa, sb, sc := c.m*c.k, c.k*c.n, c.m*c.n
			nb := batch
			if c.shareB {
				sb, nb = 0, 1
			}
			a, b, c0 := randn(r, batch*sa, 1), randn(r, nb*c.k*c.n, 1), randn(r, batch*sc, 1)
			want := slices.Clone(c0)
			for i := range batch {
				tensor.Gemm(c.ta, c.tb, c.m, c.n, c.k, 0.5, a[i*sa:], lda, b[i*sb:], ldb, 0.25, want[i*sc:(i+1)*sc], c.n)
			}
			cd := up(t, d, cuda.F32, c0)
			ok(t, d.GemmTF32Batched(c.ta, c.tb, c.m, c.n, c.k, 0.5, up(t, d, cuda.F32, a), lda, up(t, d, cuda.F32, b), ldb,
				0.25, cd, c.n, cuda.Batch{Count: batch, SA: sa, SB: sb, SC: sc}))
			near(t, "tf32 batched", down(t, cd), want, 1e-3, 4e-3*math.Sqrt(float64(c.k)))
		})
	}
	// Outputs that overlap, or a batch past a buffer's end: errors naming it.
	a, b, cc := zeros(t, d, cuda.F32, 3*8*4), zeros(t, d, cuda.F32, 4*8), zeros(t, d, cuda.F32, 3*8*8)
	if err := d.GemmTF32Batched(false, false, 8, 8, 4, 1, a, 4, b, 8, 0, cc, 8, cuda.Batch{Count: 3, SA: 32, SC: 32}); err == nil || !strings.Contains(err.Error(), "overlap") {
		t.Errorf("overlapping outputs: %v", err)
	}
	if err := d.GemmTF32Batched(false, false, 8, 8, 4, 1, a, 4, b, 8, 0, cc, 8, cuda.Batch{Count: 3, SA: 32, SB: 32, SC: 64}); err == nil || !strings.Contains(err.Error(), "B") {
		t.Errorf("B's batch past its end: %v", err)
	}
	ok(t, d.GemmTF32Batched(false, false, 8, 8, 4, 1, a, 4, b, 8, 0, cc, 8, cuda.Batch{Count: 3, SA: 32, SC: 64}))
	// C over what the product reads (cuBLAS would race, silently): refused,
	// one product or a batch; beside it, taken.
	ab := zeros(t, d, cuda.F32, 8*4+8*8)
	if err := d.GemmF32(false, false, 8, 8, 4, 1, ab, 4, b, 8, 0, ab.View(16, 64), 8); err == nil || !strings.Contains(err.Error(), "C and A overlap") {
		t.Errorf("C over A: %v", err)
	}
	if err := d.GemmTF32Batched(false, false, 8, 8, 4, 1, a, 4, b, 8, 0, a, 8, cuda.Batch{Count: 1}); err == nil || !strings.Contains(err.Error(), "C and A overlap") {
		t.Errorf("a batch's C over its A: %v", err)
	}
	if err := d.GemmF32(false, false, 8, 8, 4, 1, a, 4, cc, 8, 0, cc.View(16, 64), 8); err == nil || !strings.Contains(err.Error(), "C and B overlap") {
		t.Errorf("C over B: %v", err)
	}
	ok(t, d.GemmF32(false, false, 8, 8, 4, 1, ab, 4, b, 8, 0, ab.View(32, 64), 8))
}

// nf4Weights quantises an (n, k) N(0, 0.02²) weight to NF4.
func nf4Weights(t testing.TB, n, k int, dq bool) *quant.Quantized {
	t.Helper()
	return nf4WeightsSeed(t, n, k, dq, uint64(n*k)+7)
}

// nf4WeightsSeed is nf4Weights from the given seed (two same-shaped
// weights that must differ).
func nf4WeightsSeed(t testing.TB, n, k int, dq bool, seed uint64) *quant.Quantized {
	t.Helper()
	r := rng(seed)
	w := tensor.New(shapeName("w%dx%d", n, k), tensor.BF16, n, k)
	for i, v := range randn(r, n*k, 0.02) {
		w.U16s()[i] = tensor.F32ToBF16(v)
	}
	q, err := quant.Quantize(w, "nf4", dq)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// nf4Shapes: odd column counts start rows mid-byte; 77·33 ends in a short
// block; 4864×896 has more than 256 blocks per double-quant group boundary.
var nf4Shapes = [][2]int{{33, 77}, {64, 64}, {130, 896}, {4864, 896}}

func TestNF4DequantParity(t *testing.T) {
	d := device(t)
	for _, sh := range nf4Shapes {
		for _, dq := range []bool{false, true} {
			n, k := sh[0], sh[1]
			t.Run(shapeName("%dx%d_dq%v", n, k, dq), func(t *testing.T) {
				q := nf4Weights(t, n, k, dq)
				w := upNF4(t, d, q)
				want := make([]float32, n*k)
				q.Q.(*quant.NF4).Dequantize(want)
				// Rows [r0, r1) not starting at 0: the tile offset is exercised.
				r0, r1 := n/3, n
				f := zeros(t, d, cuda.F32, (r1-r0)*k)
				ok(t, d.NF4Dequant(f, w, r0, r1))
				// Same operations, each rounded, no FMA: bit for bit.
				near(t, "f32", down(t, f), want[r0*k:r1*k], 0, 0)
				b := zeros(t, d, cuda.BF16, (r1-r0)*k)
				ok(t, d.NF4Dequant(b, w, r0, r1))
				got, err := cuda.Download[uint16](b)
				ok(t, err)
				for i, h := range got {
					if h != tensor.F32ToBF16(want[r0*k+i]) {
						t.Fatalf("bf16 element %d = %#04x, want %#04x", i, h, tensor.F32ToBF16(want[r0*k+i]))
					}
				}
				x := randn(rng(3), k, 1)
				y := zeros(t, d, cuda.F32, n)
				ok(t, d.NF4MatVec(y, w, up(t, d, cuda.F32, x)))
				wantY := make([]float32, n)
				tensor.CPU{}.MatMul(wantY, x, q, 1)
				// f32 dots of k terms of size ~0.02, summed in another order.
				near(t, "matvec", down(t, y), wantY, 1e-4, 1e-6*math.Sqrt(float64(k)))
			})
		}
	}
}

// The Backend's MatMul and MatMulTAdd against the CPU backend's, for NF4
// and dense BF16 and F32 weights, decode (T = 1) and prefill.
func TestBackendMatMulParity(t *testing.T) {
	d := device(t)
	be := cuda.NewBackend(d)
	t.Cleanup(func() { be.Release() })
	for _, sh := range [][2]int{{33, 77}, {130, 896}, {1000, 576}} {
		n, k := sh[0], sh[1]
		q := nf4Weights(t, n, k, true)
		dense := tensor.New("dense", tensor.BF16, n, k)
		dense32 := tensor.New("dense32", tensor.F32, n, k)
		for i, v := range randn(rng(uint64(n)), n*k, 0.02) {
			dense.U16s()[i] = tensor.F32ToBF16(v)
			dense32.F32s()[i] = v
		}
		for _, w := range []tensor.Matrix{q, dense, dense32} {
			for _, T := range []int{1, 5, 40} {
				t.Run(shapeName("%T_%dx%d_T%d", w, n, k, T), func(t *testing.T) {
					r := rng(uint64(T * n))
					x, dy, dx0 := randn(r, T*k, 1), randn(r, T*n, 1), randn(r, T*k, 1)
					want, got := make([]float32, T*n), make([]float32, T*n)
					tensor.CPU{}.MatMul(want, x, w, T)
					be.MatMul(got, x, w, T)
					// bf16 operands on the GPU (the CPU keeps f32): x rounds to bf16, and
					// an NF4 weight's dequantised value rounds too. Round-to-nearest with
					// 8 significant bits errs by ≈1.6e-3 relative (RMS), so a product of
					// two rounded operands by ≈2.3e-3, and an output of k terms |w|·|x| ≈
					// 0.02 by σ ≈ 0.02·sqrt(k)·2.3e-3. The tolerance 2e-2·0.02·sqrt(k)
					// is ~9σ: tens of thousands of outputs do not trip it by chance (the
					// first GPU run, H200 2026-11-26, tripped 1e-2 — 4.3σ — once in
					// 40,000 outputs). f32 weights and T = 1 (matvec, x in f32) keep f32:
					// 1e-5·sqrt(k)·0.02 ≥ k·1e-7·0.02.
					tol := 2e-2 * 0.02 * math.Sqrt(float64(k))
					if T == 1 || w == tensor.Matrix(dense32) {
						tol = 1e-5 * 0.02 * math.Sqrt(float64(k))
					}
					near(t, "matmul", got, want, 1e-3, tol)
					wantDx, gotDx := slices.Clone(dx0), slices.Clone(dx0)
					tensor.CPU{}.MatMulTAdd(wantDx, dy, w, T)
					be.MatMulTAdd(gotDx, dy, w, T)
					tol = 2e-2 * 0.02 * math.Sqrt(float64(n)) // dy (and an NF4 W) round to bf16 at every T
					if w == tensor.Matrix(dense32) {
						tol = 1e-5 * 0.02 * math.Sqrt(float64(n))
					}
					near(t, "matmul-T-add", gotDx, wantDx, 1e-3, tol)
				})
			}
		}
	}
}
