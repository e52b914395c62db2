//go:build cuda

package cuda_test

import (
	"math"
	"slices"
	"testing"

	"distill/core/train"
	"distill/cuda"
)

func TestAdamWParity(t *testing.T) {
	d := device(t)
	const n = 100003 // not a multiple of the block
	r := rng(21)
	p0 := randn(r, n, 0.1)
	opt := train.NewAdamW(n, 0.01)
	want := slices.Clone(p0)
	pd, md, vd := up(t, d, cuda.F32, p0), zeros(t, d, cuda.F32, n), zeros(t, d, cuda.F32, n)
	for step := 1; step <= 5; step++ {
		g := randn(r, n, 1e-2)
		ok(t, opt.Update(want, g, 1e-3))
		ok(t, d.AdamWStep(pd, up(t, d, cuda.F32, g), md, vd, n, step, 1e-3, opt.Beta1, opt.Beta2, opt.Eps, opt.WeightDecay))
	}
	// Same constants, same f32 formula; FMA contraction and 5 steps of it:
	// a few ulp of p (~0.1) plus a few ulp of the step (~lr): 1e-6 relative.
	near(t, "params", down(t, pd), want, 1e-6, 1e-9)
	// m = b1·m + (1−b1)·g can cancel to near 0, where an FMA's single rounding
	// differs from two by an ulp of the terms (~1e-3·6e-8): absolute 1e-9.
	near(t, "m", down(t, md), opt.M, 1e-5, 1e-9)
	near(t, "v", down(t, vd), opt.V, 1e-5, 1e-14) // a sum of non-negative terms: no cancellation
}

func TestClipGradNormParity(t *testing.T) {
	d := device(t)
	scratch := zeros(t, d, cuda.F64, 1)
	for _, tc := range []struct {
		n       int
		maxNorm float64
	}{{1, 0}, {5000, 1}, {1<<20 + 3, 1e9}, {1<<20 + 3, 0.5}} {
		t.Run(shapeName("n%d_max%g", tc.n, tc.maxNorm), func(t *testing.T) {
			g := randn(rng(uint64(tc.n)), tc.n, 0.01)
			want := slices.Clone(g)
			wantNorm := train.ClipGradNorm(want, tc.maxNorm)
			gd := up(t, d, cuda.F32, g)
			norm, err := d.ClipGradNorm(gd, scratch, tc.n, tc.maxNorm)
			ok(t, err)
			// f64 sums of up to 2^20 terms in another order: at worst n·2^-53 ≈
			// 1e-10 relative (typically 1e-13).
			if math.Abs(norm-wantNorm) > 1e-10*wantNorm {
				t.Errorf("norm %v, want %v", norm, wantNorm)
			}
			// The clip factor is rounded to f32 on both sides from norms that may
			// differ in the last f64 bits: one f32 ulp of it, one of the product.
			near(t, "clipped", down(t, gd), want, 3e-7, 0)
		})
	}
}

func TestCrossEntropyParity(t *testing.T) {
	d := device(t)
	// Vocabularies of Qwen2.5 (151936) and SmolLM2 (49152), a small odd one,
	// and one smaller than the block.
	for _, sh := range [][2]int{{3, 100}, {5, 1001}, {8, 49152}, {4, 151936}} {
		rows, V := sh[0], sh[1]
		t.Run(shapeName("%dx%d", rows, V), func(t *testing.T) {
			r := rng(uint64(V))
			logits := randn(r, rows*V, 3)
			targets := make([]int, rows)
			idx := make([]int, rows)
			for i := range targets {
				targets[i], idx[i] = r.IntN(V), i
			}
			logits[V-1] = 40 // one dominant logit: the max must be taken
			want := slices.Clone(logits)
			losses := make([]float64, rows)
			train.CrossEntropyRows(want, V, idx, targets, 0.125, losses)
			ld := zeros(t, d, cuda.F32, rows)
			lg := up(t, d, cuda.F32, logits)
			ok(t, d.CrossEntropy(ld, lg, up(t, d, cuda.I32, i32s(targets)), rows, V, 0.125, true))
			wantL := make([]float32, rows)
			for i, l := range losses {
				wantL[i] = float32(l)
			}
			// f32 sums of V exponentials (the CPU's are f64) in a tree: 1e-5
			// relative on a loss of ~log V, plus that much absolute for losses near 0.
			near(t, "loss", down(t, ld), wantL, 1e-5, 1e-5)
			// Gradients are probabilities·scale: ~1e-5 relative of each, and the
			// one-hot entry subtracts: absolute 1e-7·scale.
			near(t, "dlogits", down(t, lg), want, 1e-5, 1e-8)

			// A scale per row, negative ones included (DPO's chosen rows).
			scales := make([]float32, rows)
			want = slices.Clone(logits)
			for i := range scales {
				scales[i] = float32(0.5 - r.Float64())
				train.CrossEntropyRows(want[i*V:(i+1)*V], V, []int{0}, targets[i:i+1], scales[i], losses[i:i+1])
			}
			lg = up(t, d, cuda.F32, logits)
			ok(t, d.CrossEntropyRows(ld, lg, up(t, d, cuda.I32, i32s(targets)), up(t, d, cuda.F32, scales), rows, V))
			near(t, "loss (row scales)", down(t, ld), wantL, 1e-5, 1e-5)
			near(t, "dlogits (row scales)", down(t, lg), want, 1e-5, 1e-8)
		})
	}
}

// Logit distillation per row against core/train's KD.row (f64 on the host):
// every divergence, a temperature above and below 1, a mix of CE.
func TestKDRowsParity(t *testing.T) {
	d := device(t)
	for _, div := range []string{"forward_kl", "reverse_kl", "jsd"} {
		for _, sh := range [][2]int{{3, 1001}, {4, 151936}} {
			rows, V := sh[0], sh[1]
			for _, tau := range []float64{0.7, 2, 0.25} {
				// τ = 0.25 over logits of σ 30: softened probabilities far below
				// f32's smallest normal, where JSD's mixture must stay in log space.
				sigma := 2.0
				if tau < 0.5 {
					sigma = 30
				}
				t.Run(shapeName("%s_%dx%d_tau%g", div, rows, V, tau), func(t *testing.T) {
					r := rng(uint64(V) + uint64(tau*10))
					z, tl := randn(r, rows*V, sigma), randn(r, rows*V, sigma)
					targets := make([]int, rows)
					for i := range targets {
						targets[i] = r.IntN(V)
					}
					kd := &train.KD{Divergence: div, Temperature: tau, Alpha: 0.3, Beta: 0.4}
					want := slices.Clone(z)
					wantL := make([]float32, rows)
					for i := range rows {
						wantL[i] = float32(kd.KDRow(want[i*V:(i+1)*V], tl[i*V:(i+1)*V], targets[i], 0.25))
					}
					ld, zd := zeros(t, d, cuda.F32, rows), up(t, d, cuda.F32, z)
					ok(t, d.KDRows(ld, zd, up(t, d, cuda.F32, tl), up(t, d, cuda.I32, i32s(targets)), rows, V, div, float32(tau), 0.3, 0.4, 0.25))
					// f32 sums over V terms (the host's are f64): ~1e-5 relative on
					// losses of a few nats; gradients are probabilities·scale.
					near(t, "loss", down(t, ld), wantL, 1e-4, 1e-4)
					near(t, "dz", down(t, zd), want, 1e-4, 1e-7)
				})
			}
		}
	}
}
