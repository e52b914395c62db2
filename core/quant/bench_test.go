package quant

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"

	"distill/core/tensor"
)

// Benchmarks report GB/s of packed bytes read (decode), parameters/s
// (quantisation) and GFLOP/s (prefill, backward), each beside the machine's
// measured limit (read bandwidth, sgemm rate):
//
//	go test -run '^$' -bench . ./core/quant/

var (
	limitsOnce sync.Once
	readBW     float64 // bytes/s
	sgemmRate  float64 // GFLOP/s
)

func limits(b *testing.B) (bw, gflops float64) {
	b.StopTimer()
	defer b.StartTimer()
	limitsOnce.Do(func() {
		readBW = tensor.MeasureCopyBandwidth()
		sgemmRate = tensor.MeasureSgemmGFLOPS()
		runtime.GC()
	})
	return readBW, sgemmRate
}

// SmolLM2-135M's projection shapes (N, K).
var smolShapes = [][2]int{{576, 576}, {1536, 576}, {576, 1536}}

type benchWeight struct {
	name  string
	lin   Linear
	bytes int
}

func benchWeights(b *testing.B, r *rand.Rand, n, k int) []benchWeight {
	w := randWeights(r, tensor.BF16, n, k)
	q, err := QuantizeNF4(w, false)
	if err != nil {
		b.Fatal(err)
	}
	dq, _ := QuantizeNF4(w, true)
	q8, _ := QuantizeQ8(w)
	return []benchWeight{{"NF4", q, q.Bytes()}, {"NF4-DQ", dq, dq.Bytes()}, {"Q8", q8, q8.Bytes()}, {"BF16", Dense{w}, len(w.Data)}}
}

// BenchmarkMatVec is decode, T = 1, on one matrix: it stays in L2 between
// iterations, so its GB/s may exceed the memory's.
func BenchmarkMatVec(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	for _, s := range smolShapes {
		for _, bw := range benchWeights(b, r, s[0], s[1]) {
			x := randF32(r, s[1])
			out := make([]float32, s[0])
			b.Run(fmt.Sprintf("%s/%dx%d", bw.name, s[0], s[1]), func(b *testing.B) {
				lim, _ := limits(b)
				b.SetBytes(int64(bw.bytes))
				for range b.N {
					bw.lin.MatMul(out, x, 1)
				}
				gbs := float64(bw.bytes) * float64(b.N) / b.Elapsed().Seconds()
				b.ReportMetric(gbs/1e9, "GB/s")
				b.ReportMetric(gbs/lim, "of_readBW")
				b.ReportMetric(float64(s[0]*s[1])*float64(b.N)/b.Elapsed().Seconds()/1e9, "Gweights/s")
			})
		}
	}
}

// BenchmarkMatVecSingle is the fused kernel alone on one core (no
// goroutines), from L2: the kernel's own speed.
func BenchmarkMatVecSingle(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, s := range smolShapes {
		w := randWeights(r, tensor.BF16, s[0], s[1])
		q, _ := QuantizeNF4(w, false)
		x := randF32(r, s[1])
		xp := make([]float32, nf4XPLen(s[1]))
		nf4Prep(xp, x)
		out := make([]float32, s[0])
		b.Run(fmt.Sprintf("NF4/%dx%d", s[0], s[1]), func(b *testing.B) {
			b.SetBytes(int64(q.Bytes()))
			for range b.N {
				nf4Matvec(out, q, xp, 0, s[0], false)
			}
		})
	}
}

// BenchmarkDecodeModel runs the matvecs of one SmolLM2-135M token (30 layers
// of q, k, v, o, gate, up, down; the LM head stays BF16 as QLoRA keeps it)
// streamed from memory as in real decode. tok/s counts matmuls only.
func BenchmarkDecodeModel(b *testing.B) {
	r := rand.New(rand.NewPCG(2, 2))
	layer := [][2]int{{576, 576}, {192, 576}, {192, 576}, {576, 576}, {1536, 576}, {1536, 576}, {576, 1536}}
	for _, format := range []string{"NF4", "NF4-DQ", "Q8", "BF16"} {
		var ws []Linear
		var bytes int64
		for range 30 {
			for _, m := range layer {
				w := randWeights(r, tensor.BF16, m[0], m[1])
				var lin Linear
				switch format {
				case "NF4":
					q, _ := QuantizeNF4(w, false)
					lin, bytes = q, bytes+int64(q.Bytes())
				case "NF4-DQ":
					q, _ := QuantizeNF4(w, true)
					lin, bytes = q, bytes+int64(q.Bytes())
				case "Q8":
					q, _ := QuantizeQ8(w)
					lin, bytes = q, bytes+int64(q.Bytes())
				default:
					lin, bytes = Dense{w}, bytes+int64(len(w.Data))
				}
				ws = append(ws, lin)
			}
		}
		x := randF32(r, 1536)
		out := make([]float32, 1536)
		b.Run(format, func(b *testing.B) {
			lim, _ := limits(b)
			b.SetBytes(bytes)
			for range b.N {
				for _, w := range ws {
					w.MatMul(out, x, 1)
				}
			}
			sec := b.Elapsed().Seconds() / float64(b.N)
			b.ReportMetric(float64(bytes)/sec/1e9, "GB/s")
			b.ReportMetric(float64(bytes)/sec/lim, "of_readBW")
			b.ReportMetric(1/sec, "tok/s")
		})
		ws = nil
		runtime.GC()
	}
}

// BenchmarkQuantize quantises a BF16 matrix of Qwen2.5-0.5B's MLP shape
// (4864×896) on all cores; s/0.5B extrapolates to 494M parameters.
func BenchmarkQuantize(b *testing.B) {
	r := rand.New(rand.NewPCG(3, 3))
	w := randWeights(r, tensor.BF16, 4864, 896)
	n := float64(w.Elems())
	for _, f := range []string{"NF4", "NF4-DQ", "Q8"} {
		b.Run(f, func(b *testing.B) {
			b.SetBytes(int64(len(w.Data)))
			for range b.N {
				var err error
				switch f {
				case "NF4":
					_, err = QuantizeNF4(w, false)
				case "NF4-DQ":
					_, err = QuantizeNF4(w, true)
				default:
					_, err = QuantizeQ8(w)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			rate := n * float64(b.N) / b.Elapsed().Seconds()
			b.ReportMetric(rate/1e6, "Mparams/s")
			b.ReportMetric(494e6/rate, "s/0.5B")
		})
	}
}

// BenchmarkPrefill is MatMul at T = 4 (fused kernel over tiles) and 128
// (sgemm on dequantised tiles); BenchmarkBackward is MatMulT at T = 128.
func BenchmarkPrefill(b *testing.B) {
	r := rand.New(rand.NewPCG(4, 4))
	for _, s := range smolShapes {
		for _, bw := range benchWeights(b, r, s[0], s[1]) {
			for _, T := range []int{4, 128} {
				x := randF32(r, T*s[1])
				out := make([]float32, T*s[0])
				b.Run(fmt.Sprintf("%s/%dx%d/T=%d", bw.name, s[0], s[1], T), func(b *testing.B) {
					_, gf := limits(b)
					for range b.N {
						bw.lin.MatMul(out, x, T)
					}
					rate := 2 * float64(T) * float64(s[0]*s[1]) * float64(b.N) / b.Elapsed().Seconds() / 1e9
					b.ReportMetric(rate, "GFLOP/s")
					b.ReportMetric(rate/gf, "of_sgemm")
				})
			}
		}
	}
}

func BenchmarkBackward(b *testing.B) {
	r := rand.New(rand.NewPCG(5, 5))
	for _, s := range smolShapes {
		for _, bw := range benchWeights(b, r, s[0], s[1]) {
			T := 128
			dy := randF32(r, T*s[0])
			dx := make([]float32, T*s[1])
			b.Run(fmt.Sprintf("%s/%dx%d/T=%d", bw.name, s[0], s[1], T), func(b *testing.B) {
				_, gf := limits(b)
				for range b.N {
					bw.lin.MatMulT(dx, dy, T)
				}
				rate := 2 * float64(T) * float64(s[0]*s[1]) * float64(b.N) / b.Elapsed().Seconds() / 1e9
				b.ReportMetric(rate, "GFLOP/s")
				b.ReportMetric(rate/gf, "of_sgemm")
			})
		}
	}
}
