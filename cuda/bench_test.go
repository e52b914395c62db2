//go:build cuda

package cuda_test

import (
	"math"
	"testing"

	"distill/cuda"
)

// GPU benchmarks at the shapes of the models the workstation targets. Each
// reports its rate (GFLOP/s or GB/s) with b.ReportMetric; `make cuda-check`
// tabulates them. Kernels are asynchronous: every loop ends with a Sync
// inside the timer.

func benchDone(b *testing.B, d *cuda.Device) {
	b.Helper()
	if err := d.Sync(); err != nil {
		b.Fatal(err)
	}
}

func reportRate(b *testing.B, perOp float64, unit string) {
	b.ReportMetric(perOp*float64(b.N)/b.Elapsed().Seconds()/1e9, unit)
}

// BenchmarkGemmBF16: a Qwen2.5-0.5B MLP projection at 512 tokens.
func BenchmarkGemmBF16(b *testing.B) {
	d := device(b)
	const m, n, k = 512, 4864, 896
	x, w, c := zeros(b, d, cuda.BF16, m*k), zeros(b, d, cuda.BF16, n*k), zeros(b, d, cuda.F32, m*n)
	b.ResetTimer()
	for range b.N {
		ok(b, d.GemmBF16(false, true, m, n, k, 1, x, k, w, k, 0, c, n))
	}
	benchDone(b, d)
	reportRate(b, 2*m*n*k, "GFLOP/s")
}

// BenchmarkNF4DequantBF16: the tile dequantisation before each GEMM.
func BenchmarkNF4DequantBF16(b *testing.B) {
	d := device(b)
	q := nf4Weights(b, 4864, 896, true)
	p, _ := q.NF4()
	w, err := d.UploadNF4("w", p)
	ok(b, err)
	b.Cleanup(w.Free)
	dst := zeros(b, d, cuda.BF16, 4864*896)
	b.ResetTimer()
	for range b.N {
		ok(b, d.NF4Dequant(dst, w, 0, 4864))
	}
	benchDone(b, d)
	reportRate(b, 4864*896*2.5, "GB/s") // 0.5 B read + 2 B written per element
}

// BenchmarkNF4MatVec: decode through an NF4 projection (bytes of W read).
func BenchmarkNF4MatVec(b *testing.B) {
	d := device(b)
	q := nf4Weights(b, 4864, 896, true)
	p, _ := q.NF4()
	w, err := d.UploadNF4("w", p)
	ok(b, err)
	b.Cleanup(w.Free)
	x, y := zeros(b, d, cuda.F32, 896), zeros(b, d, cuda.F32, 4864)
	b.ResetTimer()
	for range b.N {
		ok(b, d.NF4MatVec(y, w, x))
	}
	benchDone(b, d)
	reportRate(b, float64(q.Bytes()), "GB/s")
}

// BenchmarkAttention: forward and backward over one 512-token segment, 14
// heads over 2 KV heads of 64 (Qwen2.5-0.5B). FLOPs: 4·L²/2·hd per head
// forward, twice that backward.
func BenchmarkAttention(b *testing.B) {
	d := device(b)
	const L, nH, nKV, hd = 512, 14, 2, 64
	r := rng(1)
	lo, hi := make([]int32, L), make([]int32, L)
	for i := range hi {
		hi[i] = int32(i + 1)
	}
	s := cuda.AttnShape{NQ: L, NK: L, NH: nH, NKV: nKV, HD: hd, MaxLen: L, Lo: up(b, d, cuda.I32, lo), Hi: up(b, d, cuda.I32, hi), Scale: float32(1 / math.Sqrt(hd))}
	q, k, v := up(b, d, cuda.F32, randn(r, L*nH*hd, 1)), up(b, d, cuda.F32, randn(r, L*nKV*hd, 1)), up(b, d, cuda.F32, randn(r, L*nKV*hd, 1))
	out, lse := zeros(b, d, cuda.F32, L*nH*hd), zeros(b, d, cuda.F32, L*nH)
	dq, dk, dv := zeros(b, d, cuda.F32, L*nH*hd), zeros(b, d, cuda.F32, L*nKV*hd), zeros(b, d, cuda.F32, L*nKV*hd)
	b.Run("fwd", func(b *testing.B) {
		for range b.N {
			ok(b, d.AttnFwd(out, lse, q, k, v, s))
		}
		benchDone(b, d)
		reportRate(b, 2*float64(L*L)*hd*nH, "GFLOP/s")
	})
	b.Run("bwd", func(b *testing.B) {
		for range b.N {
			ok(b, d.AttnBwd(dq, dk, dv, out, q, k, v, out, lse, s))
		}
		benchDone(b, d)
		reportRate(b, 4*float64(L*L)*hd*nH, "GFLOP/s")
	})
}

// BenchmarkCrossEntropy: 64 rows of Qwen2.5's vocabulary, loss and gradient
// (read twice, written once).
func BenchmarkCrossEntropy(b *testing.B) {
	d := device(b)
	const rows, V = 64, 151936
	lg := up(b, d, cuda.F32, randn(rng(2), rows*V, 1))
	tg := up(b, d, cuda.I32, make([]int32, rows))
	loss := zeros(b, d, cuda.F32, rows)
	b.ResetTimer()
	for range b.N {
		ok(b, d.CrossEntropy(loss, lg, tg, rows, V, 1e-3, true))
	}
	benchDone(b, d)
	reportRate(b, rows*V*12, "GB/s")
}

// BenchmarkAdamW: a rank-16 LoRA's parameters over Qwen2.5-0.5B's 7
// projections in 24 layers (~4.4M), 20 bytes of traffic each.
func BenchmarkAdamW(b *testing.B) {
	d := device(b)
	const n = 4_399_104
	p, g, m, v := zeros(b, d, cuda.F32, n), zeros(b, d, cuda.F32, n), zeros(b, d, cuda.F32, n), zeros(b, d, cuda.F32, n)
	b.ResetTimer()
	for i := range b.N {
		ok(b, d.AdamWStep(p, g, m, v, n, i+1, 1e-4, 0.9, 0.999, 1e-8, 0))
	}
	benchDone(b, d)
	reportRate(b, n*20, "GB/s")
}

// BenchmarkDeviceCopy is the machine's measured memory limit: a 256 MiB
// device-to-device copy (read plus write). cudatable divides the other GB/s
// figures by it.
func BenchmarkDeviceCopy(b *testing.B) {
	d := device(b)
	const n = 64 << 20 // f32 elements
	src, dst := zeros(b, d, cuda.F32, n), zeros(b, d, cuda.F32, n)
	b.ResetTimer()
	for range b.N {
		ok(b, src.CopyTo(dst))
	}
	benchDone(b, d)
	reportRate(b, 2*4*n, "GB/s")
}
