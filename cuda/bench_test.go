//go:build cuda

package cuda_test

import (
	"fmt"
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
	// Random operands: a matrix unit runs faster on zeros than on real data.
	_, xh := bf16Round(randn(rng(3), m*k, 1))
	_, wh := bf16Round(randn(rng(4), n*k, 0.05))
	x, w, c := up(b, d, cuda.BF16, xh), up(b, d, cuda.BF16, wh), zeros(b, d, cuda.F32, m*n)
	b.ResetTimer()
	for range b.N {
		ok(b, d.GemmBF16(false, true, m, n, k, 1, x, k, w, k, 0, c, n))
	}
	benchDone(b, d)
	reportRate(b, 2*m*n*k, "GFLOP/s")
}

// The decode and dequantisation benchmarks stream weights of
// Qwen2.5-1.5B's MLP shape (8960×1536, 7.1 MB of NF4, 27.5 MB of bf16) from
// device memory, rotating over distinct device copies so that one sweep of
// them (≈ 227 MB of NF4, 880 MB of bf16) is several times the L2 (50–60 MB
// on an H100/H200): every launch reads its weight from HBM, as decode does
// across a model's layers. The copies hold the same random data (never
// zeros; quantising or generating 32 distinct 14M-element weights would take
// most of a minute on the host, and HBM does not care what the bytes are).
//
// One op is a sweep: one launch per copy (a launch is 2–10 µs; at
// -benchtime 20x a single launch per op would time the final Sync more than
// the kernel), after one untimed sweep (module loading, first touch). Rates
// count the bytes each launch moves: the NF4 codes and absmax statistics
// (qabsmax, absmax2, the 256-entry map) and x read, and for the
// dequantisation the bf16 tile written.
//
// Each runs at two heights: "mlp" (8960 rows, 32 copies) and "tall" (35840
// rows = 4 MLP weights in one launch, 8 copies: the same bytes a sweep). At
// a few µs a launch, the host's launch rate (cudaLaunchKernel through cgo,
// ~2–4 µs) can bound "mlp"; "tall" moves 4× the bytes a launch, so where it
// runs much faster than "mlp" the gap is launch overhead, not the kernel.
var benchShapes = []struct {
	name         string
	rows, copies int
}{{"mlp", 8960, 32}, {"tall", 4 * 8960, 8}}

const benchCols = 1536

// benchNF4 uploads copies of one random double-quantised NF4 weight of rows
// × benchCols and returns them with the bytes one launch reads of one.
func benchNF4(b *testing.B, d *cuda.Device, rows, copies int) ([]*cuda.NF4Weight, float64) {
	q := nf4Weights(b, rows, benchCols, true)
	p, _ := q.NF4()
	ws := make([]*cuda.NF4Weight, copies)
	for i := range ws {
		w, err := d.UploadNF4(fmt.Sprintf("w%d", i), p)
		ok(b, err)
		b.Cleanup(w.Free)
		ws[i] = w
	}
	return ws, float64(q.Bytes() + 4*256)
}

// benchSweeps times b.N sweeps of launch(i) for i < n after one untimed one,
// and reports perSweep bytes a sweep as GB/s.
func benchSweeps(b *testing.B, d *cuda.Device, n int, perSweep float64, launch func(i int) error) {
	sweep := func() {
		for i := range n {
			ok(b, launch(i))
		}
	}
	sweep()
	benchDone(b, d)
	b.ResetTimer()
	for range b.N {
		sweep()
	}
	benchDone(b, d)
	reportRate(b, perSweep, "GB/s")
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N*n)*1e6, "µs/launch")
}

// BenchmarkNF4DequantBF16: the tile dequantisation before each GEMM, a
// whole weight a launch into one of 4 bf16 tiles (the writes leave L2 too).
func BenchmarkNF4DequantBF16(b *testing.B) {
	for _, sh := range benchShapes {
		b.Run(sh.name, func(b *testing.B) {
			d := device(b)
			ws, read := benchNF4(b, d, sh.rows, sh.copies)
			dst := make([]*cuda.Buffer, 4)
			for i := range dst {
				dst[i] = zeros(b, d, cuda.BF16, sh.rows*benchCols)
			}
			benchSweeps(b, d, len(ws), float64(len(ws))*(read+2*float64(sh.rows*benchCols)), func(i int) error {
				return d.NF4Dequant(dst[i%len(dst)], ws[i], 0, sh.rows)
			})
		})
	}
}

// BenchmarkNF4MatVec: decode through an NF4 projection.
func BenchmarkNF4MatVec(b *testing.B) {
	for _, sh := range benchShapes {
		b.Run(sh.name, func(b *testing.B) {
			d := device(b)
			ws, read := benchNF4(b, d, sh.rows, sh.copies)
			x, y := up(b, d, cuda.F32, randn(rng(5), benchCols, 1)), zeros(b, d, cuda.F32, sh.rows)
			benchSweeps(b, d, len(ws), float64(len(ws))*(read+4*benchCols), func(i int) error {
				return d.NF4MatVec(y, ws[i], x)
			})
		})
	}
}

// BenchmarkBF16MatVec: decode through a dense bf16 projection.
func BenchmarkBF16MatVec(b *testing.B) {
	for _, sh := range benchShapes {
		b.Run(sh.name, func(b *testing.B) {
			d := device(b)
			_, wh := bf16Round(randn(rng(6), sh.rows*benchCols, 0.02))
			ws := make([]*cuda.Buffer, sh.copies)
			for i := range ws {
				ws[i] = up(b, d, cuda.BF16, wh)
			}
			x, y := up(b, d, cuda.F32, randn(rng(7), benchCols, 1)), zeros(b, d, cuda.F32, sh.rows)
			benchSweeps(b, d, len(ws), float64(len(ws))*(2*float64(sh.rows*benchCols)+4*benchCols), func(i int) error {
				return d.BF16MatVec(y, ws[i], x, sh.rows, benchCols)
			})
		})
	}
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

// BenchmarkDecodeAttention: one decoded row's attention over a bf16 cache
// of n positions (a decoder's mirror), 14 heads over 2 KV heads of 64
// (Qwen2.5-0.5B), by the flash forward (one block a head), the row kernel
// (likewise) and the row kernel split into DecodeSplits' chunks
// (flash-decoding). Rate: the cache's bytes read (GB/s), against the card's
// bandwidth.
func BenchmarkDecodeAttention(b *testing.B) {
	const nH, nKV, hd = 14, 2, 64
	for _, n := range []int{1024, 8192, 32768} {
		d := device(b)
		r := rng(uint64(n))
		kvO := nKV * hd
		k16, v16 := zeros(b, d, cuda.BF16, n*kvO), zeros(b, d, cuda.BF16, n*kvO)
		ok(b, d.ToBF16(k16, up(b, d, cuda.F32, randn(r, n*kvO, 1)), n*kvO))
		ok(b, d.ToBF16(v16, up(b, d, cuda.F32, randn(r, n*kvO, 1)), n*kvO))
		q, out, lse := up(b, d, cuda.F32, randn(r, nH*hd, 1)), zeros(b, d, cuda.F32, nH*hd), zeros(b, d, cuda.F32, nH)
		lo, hi := up(b, d, cuda.I32, []int32{0}), up(b, d, cuda.I32, []int32{int32(n)})
		scale := float32(1 / math.Sqrt(hd))
		rc := cuda.RowCaches{K: up(b, d, cuda.Addr, cuda.CacheTable([]*cuda.Buffer{k16})), V: up(b, d, cuda.Addr, cuda.CacheTable([]*cuda.Buffer{v16})),
			Cap: up(b, d, cuda.I32, []int32{int32(n)}), Rows: 1, BF16: true}
		splits, chunk := cuda.DecodeSplits(n, 1, nH, nKV)
		part := zeros(b, d, cuda.F32, nH*splits*(hd+2))
		bytes := float64(2 * n * kvO * 2)
		for _, c := range []struct {
			name string
			run  func() error
		}{
			{"flash", func() error {
				return d.AttnFwdFlash(out, lse, q, k16, v16, cuda.AttnShape{NQ: 1, NK: n, NH: nH, NKV: nKV, HD: hd, MaxLen: n, Lo: lo, Hi: hi, Scale: scale})
			}},
			{"rows", func() error { return d.AttnRows(out, lse, q, rc, hi, nH, nKV, hd, scale) }},
			{"split", func() error { return d.AttnRowsSplit(out, lse, q, rc, hi, nH, nKV, hd, scale, part, splits, chunk) }},
		} {
			b.Run(fmt.Sprintf("%s/n=%d", c.name, n), func(b *testing.B) {
				for range b.N {
					ok(b, c.run())
				}
				benchDone(b, d)
				reportRate(b, bytes, "GB/s")
			})
		}
	}
}

// timeOp times run as one benchmark: a call to warm up, then b.N calls
// between synchronisations, reported as GB/s of bytes a call and µs a call.
func timeOp(b *testing.B, d *cuda.Device, bytes float64, run func() error) {
	ok(b, run())
	benchDone(b, d)
	b.ResetTimer()
	for range b.N {
		ok(b, run())
	}
	benchDone(b, d)
	reportRate(b, bytes, "GB/s")
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N)*1e6, "µs/op")
}

// BenchmarkSwiGLUU: Qwen2.5-1.5B's MLP at 2,048 tokens (F 8,960, r 16) —
// the SwiGLU forward and the down adapter's u = a·Aᵀ as a TF32 GEMM over a
// (the default) against the SwiGLU summing u itself (SwiGLUFwdU,
// DISTILL_CUDA_SWIGLU_U): kept compact (a in bf16 and g, up's kept copies;
// fused, no f32 a) and recomputing (a in f32). GB/s: the fused pass's own
// bytes (reads g, up; its writes), so the two rows of a pair compare by
// time.
func BenchmarkSwiGLUU(b *testing.B) {
	const n, F, r = 2048, 8960, 16
	d := device(b)
	rg := rng(9)
	g, u := up(b, d, cuda.F32, randn(rg, n*F, 2)), up(b, d, cuda.F32, randn(rg, n*F, 1))
	A := up(b, d, cuda.F32, randn(rg, r*F, 0.02))
	a, ab := zeros(b, d, cuda.F32, n*F), zeros(b, d, cuda.BF16, n*F)
	gb, ub := zeros(b, d, cuda.BF16, n*F), zeros(b, d, cuda.BF16, n*F)
	uo, part := zeros(b, d, cuda.F32, n*r), zeros(b, d, cuda.F32, 64*n*r)
	for _, c := range []struct {
		name  string
		bytes float64
		run   func() error
	}{
		{"compact/swiglu+tf32", 4 * n * F * (2 + 1 + 1.5), func() error {
			if err := d.SwiGLUFwdKeep(a, ab, gb, ub, g, u, n*F); err != nil {
				return err
			}
			return d.GemmTF32(false, true, n, r, F, 1, a, F, A, F, 0, uo, r)
		}},
		{"compact/fused", 4 * n * F * (2 + 1.5), func() error {
			return d.SwiGLUFwdU(nil, ab, gb, ub, g, u, A, uo, part, n, F, r, nil)
		}},
		{"recompute/swiglu+tf32", 4 * n * F * (2 + 1), func() error {
			if err := d.SwiGLUFwd(a, g, u, n*F); err != nil {
				return err
			}
			return d.GemmTF32(false, true, n, r, F, 1, a, F, A, F, 0, uo, r)
		}},
		{"recompute/fused", 4 * n * F * (2 + 1), func() error {
			return d.SwiGLUFwdU(a, nil, nil, nil, g, u, A, uo, part, n, F, r, nil)
		}},
	} {
		b.Run(c.name, func(b *testing.B) { timeOp(b, d, c.bytes, c.run) })
	}
}

// BenchmarkSwiGLUDA: the same MLP's backward — the SwiGLU backward into
// gate's and up's bf16 rows and the down adapter's dA += duᵀ·a as a TF32
// GEMM over a (the default) against the backward summing dA itself
// (SwiGLUBwdRowsDA, DISTILL_CUDA_SWIGLU_DA): recomputing (a in f32 from the
// recomputation, g and up f32), kept compact (g and up the kept bf16
// copies; apart, the backward writes a in f32 for the GEMM) and under LoRA
// dropout (apart, a masked copy first; fused, the mask in the kernel).
// GB/s: the fused pass's own bytes, so the rows of a pair compare by time.
func BenchmarkSwiGLUDA(b *testing.B) {
	const n, F, r = 2048, 8960, 16
	const ld = F + 16
	d := device(b)
	rg := rng(10)
	g, u, da := up(b, d, cuda.F32, randn(rg, n*F, 2)), up(b, d, cuda.F32, randn(rg, n*F, 1)), up(b, d, cuda.F32, randn(rg, n*F, 1))
	gb, ub := zeros(b, d, cuda.BF16, n*F), zeros(b, d, cuda.BF16, n*F)
	ok(b, d.SwiGLUFwdKeep(zeros(b, d, cuda.F32, n*F), nil, gb, ub, g, u, n*F))
	a, masked := zeros(b, d, cuda.F32, n*F), zeros(b, d, cuda.F32, n*F)
	ok(b, d.SwiGLUFwd(a, g, u, n*F))
	dgb, dub := zeros(b, d, cuda.BF16, n*ld), zeros(b, d, cuda.BF16, n*ld)
	du, gA, part := up(b, d, cuda.F32, randn(rg, n*r, 1)), zeros(b, d, cuda.F32, r*F), zeros(b, d, cuda.F32, 32*r*F)
	const thresh, keep = uint64((1 << 64) / 20), float32(1 / 0.95) // p 0.05
	drop := &cuda.LoRADrop{Bases: []uint64{7}, Thresh: thresh, Keep: keep}
	tf32 := func(x *cuda.Buffer) error { return d.GemmTF32(true, false, r, F, n, 1, du, r, x, F, 1, gA, F) }
	rows := 4 * n * F * (1 + 1 + 1 + 0.5 + 0.5) // da, g, u read; dg, du written in bf16
	for _, c := range []struct {
		name  string
		bytes float64
		run   func() error
	}{
		{"recompute/rows+tf32", rows, func() error {
			if err := d.SwiGLUBwdRows(dgb, dub, ld, nil, da, g, u, n, F); err != nil {
				return err
			}
			return tf32(a)
		}},
		{"recompute/fused", rows, func() error {
			return d.SwiGLUBwdRowsDA(dgb, dub, ld, da, g, u, n, F, cuda.SwiGLUDA{GA: gA, DU: du, Part: part, R: r})
		}},
		{"compact/rows+tf32", rows - 4*n*F, func() error {
			if err := d.SwiGLUBwdRows(dgb, dub, ld, a, da, gb, ub, n, F); err != nil {
				return err
			}
			return tf32(a)
		}},
		{"compact/fused", rows - 4*n*F, func() error {
			return d.SwiGLUBwdRowsDA(dgb, dub, ld, da, gb, ub, n, F, cuda.SwiGLUDA{GA: gA, DU: du, Part: part, R: r})
		}},
		{"dropout/rows+mask+tf32", rows, func() error {
			if err := d.SwiGLUBwdRows(dgb, dub, ld, nil, da, g, u, n, F); err != nil {
				return err
			}
			if err := d.Dropout(masked, a, n*F, 7, thresh, keep); err != nil {
				return err
			}
			return tf32(masked)
		}},
		{"dropout/fused", rows, func() error {
			return d.SwiGLUBwdRowsDA(dgb, dub, ld, da, g, u, n, F, cuda.SwiGLUDA{GA: gA, DU: du, Part: part, R: r, Drop: drop})
		}},
	} {
		b.Run(c.name, func(b *testing.B) { timeOp(b, d, c.bytes, c.run) })
	}
}

// BenchmarkRowsDB: a projection's backward at Qwen2.5-1.5B's shapes, 2,048
// tokens, r 16 — dy (n × out) rounded to bf16 rows and the adapter's dB +=
// s·dyᵀ·u as a TF32 GEMM (the default) against the rounding pass summing dB
// itself (ToBF16RowsDB, DISTILL_CUDA_ROWS_DB): out 1,536 (q, o, down) and
// 256 (k, v). GB/s: the pass's own bytes (dy read, its bf16 written), so
// the two rows of a pair compare by time.
func BenchmarkRowsDB(b *testing.B) {
	const n, r = 2048, 16
	d := device(b)
	rg := rng(11)
	for _, out := range []int{1536, 256} {
		ld := out + 16
		dy, u := up(b, d, cuda.F32, randn(rg, n*out, 1)), up(b, d, cuda.F32, randn(rg, n*r, 1))
		dst, gB, part := zeros(b, d, cuda.BF16, n*ld), zeros(b, d, cuda.F32, out*r), zeros(b, d, cuda.F32, 32*out*r)
		bytes := float64(n * out * (4 + 2))
		for _, c := range []struct {
			name string
			run  func() error
		}{
			{"rows+tf32", func() error {
				if err := d.ToBF16Rows(dst, ld, dy, out, n, out, 1); err != nil {
					return err
				}
				return d.GemmTF32(true, false, out, r, n, 0.5, dy, out, u, r, 1, gB, r)
			}},
			{"fused", func() error { return d.ToBF16RowsDB(dst, ld, dy, out, n, out, u, r, gB, part, 0.5) }},
		} {
			b.Run(fmt.Sprintf("out%d/%s", out, c.name), func(b *testing.B) { timeOp(b, d, bytes, c.run) })
		}
	}
}

// BenchmarkColSums: the adapter's dA += duᵀ·x at Qwen2.5-1.5B's shapes,
// 2,048 tokens, r 16 — q, k and v's (x 1,536 wide, three members) and o's
// (one) — as a batch of TF32 GEMMs (the default) against one pass over x
// (LoRAColSums, DISTILL_CUDA_COL_DA); and under LoRA dropout, where the
// default writes each member's masked copy first. GB/s: x's bytes once.
func BenchmarkColSums(b *testing.B) {
	const n, in, r = 2048, 1536, 16
	d := device(b)
	rg := rng(12)
	x, du := up(b, d, cuda.F32, randn(rg, n*in, 1)), up(b, d, cuda.F32, randn(rg, 3*n*r, 1))
	gA, part, masked := zeros(b, d, cuda.F32, 3*r*in), zeros(b, d, cuda.F32, 3*32*r*in), zeros(b, d, cuda.F32, 3*n*in)
	const thresh, keep = uint64((1 << 64) / 20), float32(1 / 0.95) // p 0.05
	bases := []uint64{1, 2, 3}
	for _, members := range []int{3, 1} {
		batch := cuda.Batch{Count: members, SA: n * r, SB: 0, SC: r * in}
		for _, c := range []struct {
			name string
			run  func() error
		}{
			{"tf32", func() error {
				return d.GemmTF32Batched(true, false, r, in, n, 1, du, r, x, in, 1, gA, in, batch)
			}},
			{"fused", func() error { return d.LoRAColSums(gA, x, du, n, in, r, members, part, nil) }},
			{"dropout/masks+tf32", func() error {
				for m := range members {
					if err := d.Dropout(masked.View(m*n*in, n*in), x, n*in, bases[m], thresh, keep); err != nil {
						return err
					}
				}
				bd := batch
				bd.SB = n * in
				return d.GemmTF32Batched(true, false, r, in, n, 1, du, r, masked, in, 1, gA, in, bd)
			}},
			{"dropout/fused", func() error {
				return d.LoRAColSums(gA, x, du, n, in, r, members, part, &cuda.LoRADrop{Bases: bases[:members], Thresh: thresh, Keep: keep})
			}},
		} {
			b.Run(fmt.Sprintf("members%d/%s", members, c.name), func(b *testing.B) { timeOp(b, d, float64(4*n*in), c.run) })
		}
	}
}

// BenchmarkRowSums: the adapter's u = x·Aᵀ and du = s·dy·B at Qwen2.5-1.5B's
// shapes, 2,048 tokens, r 16 — q, k and v's u (x 1,536 wide, three
// members), down's u (a 8,960 wide) and o's du (dy 1,536 wide) — as (a
// batch of) TF32 GEMMs (the default) against one pass over x (LoRARowSums,
// DISTILL_CUDA_ROW_SUMS). GB/s: x's bytes once.
func BenchmarkRowSums(b *testing.B) {
	const n, r = 2048, 16
	d := device(b)
	rg := rng(13)
	for _, c := range []struct {
		name       string
		k, members int
		tr         bool
	}{{"qkv_u", 1536, 3, false}, {"down_u", 8960, 1, false}, {"o_du", 1536, 1, true}} {
		x, W := up(b, d, cuda.F32, randn(rg, n*c.k, 1)), up(b, d, cuda.F32, randn(rg, c.members*r*c.k, 0.02))
		out, part := zeros(b, d, cuda.F32, c.members*n*r), zeros(b, d, cuda.F32, c.members*64*n*r)
		for _, v := range []struct {
			name string
			run  func() error
		}{
			{"tf32", func() error {
				if c.tr {
					return d.GemmTF32(false, false, n, r, c.k, 2, x, c.k, W, r, 0, out, r)
				}
				return d.GemmTF32Batched(false, true, n, r, c.k, 1, x, c.k, W, c.k, 0, out, r,
					cuda.Batch{Count: c.members, SA: 0, SB: r * c.k, SC: n * r})
			}},
			{"fused", func() error { return d.LoRARowSums(out, x, W, n, c.k, r, c.members, c.tr, 2, part, nil) }},
		} {
			b.Run(c.name+"/"+v.name, func(b *testing.B) { timeOp(b, d, float64(4*n*c.k), v.run) })
		}
	}
}
