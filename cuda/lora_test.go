//go:build cuda

package cuda_test

import (
	"testing"

	"distill/cuda"
)

// TestLoRAParity: the adapter's skinny products (LoRARows: x·Aᵀ and dy·B;
// LoRACols: dB += dyᵀ·u and dA += duᵀ·x) against cuBLAS in f32 (TF32 off)
// on the same buffers, at the shapes of a 1.5B step's projections (k 1536
// and 8960, 2048 tokens) and off the kernels' blocks (rows, widths, ranks
// 1–32), LoRACols with and without scratch (the token sum split across
// blocks, or not). Outputs start as NaN (LoRARows) or random (LoRACols
// accumulates).
// Tolerance: both f32 with sums in other orders: a sum of m terms of
// spread σ carries rounding of about 2⁻²⁴·√m·(σ√m); 4× that absolute
// (2.4e-7·m·σ: dA over 2,048 tokens of unit terms differed by 1.6e-4 on
// the H200, where 1e-6·√m allowed 4.5e-5) plus 1e-5 relative.
func TestLoRAParity(t *testing.T) {
	d := device(t)
	for _, c := range []struct{ n, k, r int }{{2048, 1536, 16}, {2048, 8960, 16}, {1000, 256, 32}, {37, 96, 8}, {300, 68, 1}, {5, 1028, 24}} {
		t.Run(shapeName("n%d_k%d_r%d", c.n, c.k, c.r), func(t *testing.T) {
			rg := rng(uint64(c.n + c.k + c.r))
			n, k, r := c.n, c.k, c.r
			x, dy, u := up(t, d, cuda.F32, randn(rg, n*k, 1)), up(t, d, cuda.F32, randn(rg, n*k, 1)), up(t, d, cuda.F32, randn(rg, n*r, 1))
			A, B := up(t, d, cuda.F32, randn(rg, r*k, 0.1)), up(t, d, cuda.F32, randn(rg, k*r, 0.1))
			got, want := up(t, d, cuda.F32, nans(n*r)), zeros(t, d, cuda.F32, n*r)
			ok(t, d.LoRARows(got, x, A, n, r, k, false, 1.5))
			ok(t, d.GemmF32(false, true, n, r, k, 1.5, x, k, A, k, 0, want, r))
			near(t, "x·Aᵀ", down(t, got), down(t, want), 1e-5, sumTol(k, 0.1))
			ok(t, d.LoRARows(got, dy, B, n, r, k, true, 0.5))
			ok(t, d.GemmF32(false, false, n, r, k, 0.5, dy, k, B, r, 0, want, r))
			near(t, "dy·B", down(t, got), down(t, want), 1e-5, sumTol(k, 0.1))
			start := randn(rg, k*r, 1)
			var scratch *cuda.Buffer
			if sl := cuda.LoRAColsScratch(n, k, r); sl > 0 {
				scratch = up(t, d, cuda.F32, nans(sl))
			}
			for _, sc := range []*cuda.Buffer{nil, scratch} {
				gB, wB := up(t, d, cuda.F32, start), up(t, d, cuda.F32, start)
				ok(t, d.LoRACols(gB, dy, u, n, k, r, false, 0.5, sc))
				ok(t, d.GemmF32(true, false, k, r, n, 0.5, dy, k, u, r, 1, wB, r))
				near(t, shapeName("dB += dyᵀ·u (split %v)", sc != nil), down(t, gB), down(t, wB), 1e-5, sumTol(n, 1))
				gA, wA := up(t, d, cuda.F32, start), up(t, d, cuda.F32, start)
				ok(t, d.LoRACols(gA, x, u, n, k, r, true, 1, sc))
				ok(t, d.GemmF32(true, false, r, k, n, 1, u, r, x, k, 1, wA, k))
				near(t, shapeName("dA += uᵀ·x (split %v)", sc != nil), down(t, gA), down(t, wA), 1e-5, sumTol(n, 1))
			}
		})
	}
}

// sumTol: 4× the f32 rounding of a sum of m terms of spread σ.
func sumTol(m int, sigma float64) float64 { return 2.4e-7 * float64(m) * sigma }
