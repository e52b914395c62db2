package tensor

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"
)

// Benchmarks report GB/s of weights read (decode), GFLOP/s (prefill) and the
// fraction of the machine's measured limit (read bandwidth, sgemm rate),
// from the mean time per op and, as best_*, from the fastest op: on a shared
// VM whose virtual CPUs the host deschedules, the mean can be half the best.
//
//	go test -run '^$' -bench . ./core/tensor/
//	OPENBLAS_CORETYPE= OPENBLAS_L2_SIZE= env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE go test -run '^$' -bench . ./core/tensor/

var (
	limitsOnce sync.Once
	readBW     float64 // bytes/s
	sgemmRate  float64 // GFLOP/s
)

func limits(b *testing.B) (bw, gflops float64) {
	b.StopTimer()
	defer b.StartTimer()
	limitsOnce.Do(func() {
		readBW = MeasureCopyBandwidth()
		sgemmRate = MeasureSgemmGFLOPS()
		runtime.GC()
	})
	return readBW, sgemmRate
}

// timeOps runs f b.N times and returns the mean and the fastest time per op.
func timeOps(b *testing.B, f func()) (mean, best float64) {
	best = math.Inf(1)
	b.ResetTimer()
	for range b.N {
		t := time.Now()
		f()
		best = min(best, time.Since(t).Seconds())
	}
	b.StopTimer()
	return b.Elapsed().Seconds() / float64(b.N), best
}

// SmolLM2-135M's projection shapes (N, K), and its LM head.
var smolShapes = [][2]int{{576, 576}, {1536, 576}, {576, 1536}, {49152, 576}}

func BenchmarkLimits(b *testing.B) {
	bw, gf := limits(b)
	for range b.N {
	}
	b.ReportMetric(bw/1e9, "readGB/s")
	b.ReportMetric(gf, "sgemmGFLOP/s")
	b.Logf("OpenBLAS core %s, kernel level %d, Threads %d", blasCoreName(), kernelLevel(), Threads)
}

// BenchmarkMemcpy is copy() of 128 MiB halves on every worker, in GB/s of
// bytes read plus written.
func BenchmarkMemcpy(b *testing.B) {
	const size = 128 << 20
	src, dst := make([]byte, size), make([]byte, size)
	for i := range src {
		src[i] = byte(i)
	}
	copy(dst, src)
	b.SetBytes(2 * size)
	b.ResetTimer()
	for range b.N {
		parallelChunks(size, 1<<20, 4096, func(lo, hi int) { copy(dst[lo:hi], src[lo:hi]) })
	}
}

// BenchmarkMatVec is decode, T = 1, on one matrix: small ones stay in L2/L3
// between iterations, so their GB/s may exceed the memory's.
func BenchmarkMatVec(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	for _, dt := range []DType{BF16, F16, F32} {
		for _, s := range smolShapes {
			w := randTensor(r, dt, s[0], s[1])
			x := randF32(r, s[1])
			out := make([]float32, s[0])
			b.Run(fmt.Sprintf("%s/%dx%d", dt, s[0], s[1]), func(b *testing.B) {
				bw, _ := limits(b)
				b.SetBytes(int64(len(w.Data)))
				mean, best := timeOps(b, func() { matMul(out, x, w, 1, false) })
				bytes := float64(len(w.Data))
				b.ReportMetric(bytes/mean/1e9, "GB/s")
				b.ReportMetric(bytes/best/1e9, "best_GB/s")
				b.ReportMetric(bytes/best/bw, "best_of_readBW")
			})
		}
	}
}

// BenchmarkMatVecRef is the pure-Go reference on the same shapes, for scale.
func BenchmarkMatVecRef(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	for _, dt := range []DType{BF16, F16, F32} {
		s := smolShapes[1]
		w := randTensor(r, dt, s[0], s[1])
		x := randF32(r, s[1])
		out := make([]float32, s[0])
		b.Run(fmt.Sprintf("%s/%dx%d", dt, s[0], s[1]), func(b *testing.B) {
			b.SetBytes(int64(len(w.Data)))
			for range b.N {
				matMulRef(out, x, w, 1)
			}
		})
	}
}

// BenchmarkDecodeModel runs the matvecs of one SmolLM2-135M token (30 layers
// of q, k, v, o, gate, up, down, then the tied LM head): 134.5M weights,
// 269 MB in 16 bits, streamed from memory as in real decode. tok/s counts
// matmuls only.
func BenchmarkDecodeModel(b *testing.B) {
	r := rand.New(rand.NewPCG(2, 2))
	type mat struct{ n, k int }
	layer := []mat{{576, 576}, {192, 576}, {192, 576}, {576, 576}, {1536, 576}, {1536, 576}, {576, 1536}}
	for _, dt := range []DType{BF16, F16, F32} {
		var ws []*Tensor
		var bytes int64
		for range 30 {
			for _, m := range layer {
				ws = append(ws, randTensor(r, dt, m.n, m.k))
			}
		}
		ws = append(ws, randTensor(r, dt, 49152, 576))
		for _, w := range ws {
			bytes += int64(len(w.Data))
		}
		x := randF32(r, 1536)
		out := make([]float32, 49152)
		b.Run(dt.String(), func(b *testing.B) {
			bw, _ := limits(b)
			b.SetBytes(bytes)
			mean, best := timeOps(b, func() {
				for _, w := range ws {
					matMul(out, x, w, 1, false)
				}
			})
			b.ReportMetric(float64(bytes)/mean/1e9, "GB/s")
			b.ReportMetric(float64(bytes)/best/1e9, "best_GB/s")
			b.ReportMetric(float64(bytes)/best/bw, "best_of_readBW")
			b.ReportMetric(1/best, "best_tok/s")
		})
		ws = nil
		runtime.GC()
	}
}

// BenchmarkPrefill is MatMul at T = 128 (and T = 4, the tiled matvec path).
func BenchmarkPrefill(b *testing.B) {
	r := rand.New(rand.NewPCG(3, 3))
	for _, dt := range []DType{BF16, F16, F32} {
		for _, s := range smolShapes {
			w := randTensor(r, dt, s[0], s[1])
			for _, T := range []int{4, 128} {
				x := randF32(r, T*s[1])
				out := make([]float32, T*s[0])
				b.Run(fmt.Sprintf("%s/%dx%d/T=%d", dt, s[0], s[1], T), func(b *testing.B) {
					_, gf := limits(b)
					mean, best := timeOps(b, func() { matMul(out, x, w, T, false) })
					flops := 2 * float64(T) * float64(s[0]) * float64(s[1])
					b.ReportMetric(flops/mean/1e9, "GFLOP/s")
					b.ReportMetric(flops/best/1e9, "best_GFLOP/s")
					b.ReportMetric(flops/best/1e9/gf, "best_of_sgemm")
				})
			}
		}
	}
}

func BenchmarkOps(b *testing.B) {
	r := rand.New(rand.NewPCG(4, 4))
	c := CPU{}
	for _, T := range []int{1, 128} {
		x := randF32(r, T*576)
		wt := randF32(r, 576)
		b.Run(fmt.Sprintf("RMSNorm/T=%d", T), func(b *testing.B) {
			b.SetBytes(int64(8 * len(x)))
			for range b.N {
				c.RMSNorm(x, x, wt, 1e-5)
			}
		})
		g, u := randF32(r, T*1536), randF32(r, T*1536)
		b.Run(fmt.Sprintf("SwiGLU/T=%d", T), func(b *testing.B) {
			b.SetBytes(int64(12 * len(g)))
			for range b.N {
				copy(g, u)
				c.SwiGLU(g, u)
			}
		})
	}
	// Attention as SmolLM2-135M: 9 heads, 3 KV heads, head dim 64.
	// At 8K positions a layer's f32 keys and values (12 MB) leave the cache:
	// decode reads them from DRAM, and the bf16 cache reads half.
	for _, s := range [][2]int{{1, 8191}, {1, 2047}, {1, 255}, {128, 0}, {512, 0}, {2048, 0}} {
		T, pos0 := s[0], s[1]
		q := randF32(r, T*9*64)
		k, v := randF32(r, (pos0+T)*3*64), randF32(r, (pos0+T)*3*64)
		k16, v16 := make([]uint16, len(k)), make([]uint16, len(v))
		RoundRowsBF16(k16, 3*64, k, 3*64, pos0+T, 3*64)
		RoundRowsBF16(v16, 3*64, v, 3*64, pos0+T, 3*64)
		out := make([]float32, T*9*64)
		b.Run(fmt.Sprintf("Attention/T=%d/pos0=%d", T, pos0), func(b *testing.B) {
			for range b.N {
				c.Attention(out, q, k, v, T, pos0, 9, 3, 64, 0.125)
			}
		})
		bf16Pair := func(level string) { // bf16 attention over an f32 cache, then over a bf16 one
			b.Run(fmt.Sprintf("AttentionBF16%s/T=%d/pos0=%d", level, T, pos0), func(b *testing.B) {
				for range b.N {
					CPU{BF16Attention: true}.Attention(out, q, k, v, T, pos0, 9, 3, 64, 0.125)
				}
			})
			b.Run(fmt.Sprintf("AttentionBF16Cache%s/T=%d/pos0=%d", level, T, pos0), func(b *testing.B) {
				for range b.N {
					AttentionBF16Cache(out, q, k16, v16, T, pos0, 9, 3, 64, 0.125)
				}
			})
		}
		bf16Pair("")
		if T == 1 && kernelLevel() > levelAVX2 {
			// Decode on the AVX2 kernels, as on CPUs without AVX-512
			// (most desktops): the bf16 cache's rows widened a row at a
			// time for the group's heads.
			best := kernelLevel()
			setKernelLevel(levelAVX2)
			bf16Pair("/AVX2")
			setKernelLevel(best)
		}
		if T > 128 {
			continue // the reference takes seconds
		}
		b.Run(fmt.Sprintf("AttentionRef/T=%d/pos0=%d", T, pos0), func(b *testing.B) {
			for range b.N {
				attentionRef(out, q, k, v, T, pos0, 9, 3, 64, 0.125, false)
			}
		})
	}
}

// BenchmarkPrefillBF16 times the bf16 products at small T on SmolLM2's
// projections, through the matvec on rounded x ("vec") and the AVX-512
// BF16 GEMM ("gemm"): where the second wins sets gemmMinTBF16.
func BenchmarkPrefillBF16(b *testing.B) {
	if !BF16ProductsFast() {
		b.Skip("no AVX-512 BF16 on this CPU")
	}
	r := rand.New(rand.NewPCG(5, 5))
	for _, s := range smolShapes {
		w := randTensor(r, BF16, s[0], s[1])
		for _, T := range []int{4, 8, 12, 16, 24, 32} {
			x := randF32(r, T*s[1])
			out := make([]float32, T*s[0])
			for _, path := range []string{"vec", "gemm"} {
				b.Run(fmt.Sprintf("%dx%d/T=%d/%s", s[0], s[1], T, path), func(b *testing.B) {
					f := func() { matMulVec(out, x, w, T) } // x stands for its rounding: same cost
					if path == "gemm" {
						f = func() { matMulBF16(out, x, w, T) }
					}
					mean, best := timeOps(b, f)
					flops := 2 * float64(T) * float64(s[0]) * float64(s[1])
					b.ReportMetric(flops/mean/1e9, "GFLOP/s")
					b.ReportMetric(flops/best/1e9, "best_GFLOP/s")
				})
			}
		}
	}
}
