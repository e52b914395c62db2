package tensor

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// TestLoRAProducts checks the adapter's products at every kernel level
// against float64 sums, for ranks the vector kernels take (8–64) and one
// they leave to Gemm (12), over shapes with tokens and columns past whole
// blocks and vectors, large enough for the work to be split among workers.
// Outputs that are set, not added to, start as NaN.
func TestLoRAProducts(t *testing.T) {
	r := rand.New(rand.NewPCG(31, 32))
	shapes := [][3]int{{1, 16, 16}, {7, 70, 33}, {40, 200, 130}, {100, 64, 1000}, {512, 600, 600}}
	forEachLevel(t, func(t *testing.T) {
		for _, rank := range []int{8, 16, 24, 32, 48, 64, 12} {
			for _, sh := range shapes {
				n, in, out := sh[0], sh[1], sh[2]
				name := fmt.Sprintf("r=%d n=%d in=%d out=%d (width %d)", rank, n, in, out, loraWidth(rank))
				testLoRAProducts(t, r, name, n, in, out, rank)
			}
		}
	})
}

// TestLoRAProductsManyWorkers runs the products split over more workers
// than this machine has, the scratch pool full of huge values first: a
// worker left without rows of dB must add nothing to du.
func TestLoRAProductsManyWorkers(t *testing.T) {
	defer func(n int) { Threads = n }(Threads)
	r := rand.New(rand.NewPCG(33, 34))
	for _, threads := range []int{3, 7, 18, 48} {
		Threads = threads
		var pool []*[]float32
		for i := 0; i < 2*threads+4; i++ {
			p := getScratch(1 << 20)
			for j := range *p {
				(*p)[j] = 1e30
			}
			pool = append(pool, p)
		}
		for _, p := range pool {
			putScratch(p)
		}
		for _, sh := range [][3]int{{300, 100, 289}, {240, 64, 832}, {64, 600, 100}} {
			name := fmt.Sprintf("%d workers, n=%d in=%d out=%d", threads, sh[0], sh[1], sh[2])
			testLoRAProducts(t, r, name, sh[0], sh[1], sh[2], 16)
		}
	}
}

func testLoRAProducts(t *testing.T, r *rand.Rand, name string, n, in, out, rank int) {
	x, A := randF32(r, n*in), randF32(r, rank*in)
	dy, B := randF32(r, n*out), randF32(r, out*rank)
	const s = 0.75
	check := func(what string, got []float32, want, mag []float64) {
		t.Helper()
		for i := range want {
			if g := float64(got[i]); !(math.Abs(g-want[i]) <= 2e-6*mag[i]+1e-30) {
				t.Fatalf("%s: %s[%d] = %g, want %g (magnitude %g)", name, what, i, g, want[i], mag[i])
			}
		}
	}

	u := nanF32(n * rank)
	LoRAIn(u, x, A, n, in, rank)
	want, mag := make([]float64, n*rank), make([]float64, n*rank)
	for i := 0; i < n; i++ {
		for j := 0; j < rank; j++ {
			for k := 0; k < in; k++ {
				p := float64(x[i*in+k]) * float64(A[j*in+k])
				want[i*rank+j], mag[i*rank+j] = want[i*rank+j]+p, mag[i*rank+j]+math.Abs(p)
			}
		}
	}
	check("u", u, want, mag)

	du, dB0 := nanF32(n*rank), randF32(r, out*rank)
	dB := append([]float32(nil), dB0...)
	LoRAOutGrad(du, dB, dy, B, u, s, n, out, rank)
	wdu, mdu := make([]float64, n*rank), make([]float64, n*rank)
	wdB, mdB := make([]float64, out*rank), make([]float64, out*rank)
	for i := range wdB {
		wdB[i], mdB[i] = float64(dB0[i]), math.Abs(float64(dB0[i]))
	}
	for i := 0; i < n; i++ {
		for o := 0; o < out; o++ {
			for j := 0; j < rank; j++ {
				p := s * float64(dy[i*out+o]) * float64(B[o*rank+j])
				wdu[i*rank+j], mdu[i*rank+j] = wdu[i*rank+j]+p, mdu[i*rank+j]+math.Abs(p)
				q := s * float64(dy[i*out+o]) * float64(u[i*rank+j])
				wdB[o*rank+j], mdB[o*rank+j] = wdB[o*rank+j]+q, mdB[o*rank+j]+math.Abs(q)
			}
		}
	}
	check("du", du, wdu, mdu)
	check("dB", dB, wdB, mdB)

	for _, add := range []bool{false, true} {
		dA0, out0 := randF32(r, rank*in), randF32(r, n*in)
		dA := append([]float32(nil), dA0...)
		dx := nanF32(n * in)
		if add {
			copy(dx, out0)
		}
		LoRAInGrad(dA, dx, du, x, A, n, in, rank, add)
		wdA, mdA := make([]float64, rank*in), make([]float64, rank*in)
		wdx, mdx := make([]float64, n*in), make([]float64, n*in)
		for i := range wdA {
			wdA[i], mdA[i] = float64(dA0[i]), math.Abs(float64(dA0[i]))
		}
		if add {
			for i := range wdx {
				wdx[i], mdx[i] = float64(out0[i]), math.Abs(float64(out0[i]))
			}
		}
		for i := 0; i < n; i++ {
			for j := 0; j < rank; j++ {
				g := float64(du[i*rank+j])
				for k := 0; k < in; k++ {
					p := g * float64(x[i*in+k])
					wdA[j*in+k], mdA[j*in+k] = wdA[j*in+k]+p, mdA[j*in+k]+math.Abs(p)
					q := g * float64(A[j*in+k])
					wdx[i*in+k], mdx[i*in+k] = wdx[i*in+k]+q, mdx[i*in+k]+math.Abs(q)
				}
			}
		}
		check(fmt.Sprintf("dA (add %v)", add), dA, wdA, mdA)
		check(fmt.Sprintf("dx (add %v)", add), dx, wdx, mdx)
		if add {
			continue
		}
		// Under LoRA dropout one buffer holds the dropped x and then du·A.
		copy(dA, dA0)
		buf := append([]float32(nil), x...)
		LoRAInGrad(dA, buf, du, buf, A, n, in, rank, false)
		check("dA (out over x)", dA, wdA, mdA)
		check("dx (out over x)", buf, wdx, mdx)
	}
}

func nanF32(n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(math.NaN())
	}
	return v
}

// BenchmarkLoRAProducts times the adapter's products at Qwen2.5-0.5B's MLP
// shapes (512 tokens, r = 16) on the kernels and, at the scalar level, on
// Gemm: `go test -bench LoRAProducts ./core/tensor/`.
func BenchmarkLoRAProducts(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	const n, rank = 512, 16
	for _, sh := range [][2]int{{896, 4864}, {4864, 896}} {
		in, out := sh[0], sh[1]
		x, A, dy, B := randF32(r, n*in), randF32(r, rank*in), randF32(r, n*out), randF32(r, out*rank)
		u, du, dA, dB, dx := make([]float32, n*rank), make([]float32, n*rank), make([]float32, rank*in),
			make([]float32, out*rank), make([]float32, n*in)
		for _, kern := range []bool{true, false} {
			best := kernelLevel()
			if !kern {
				setKernelLevel(levelScalar)
			}
			name := fmt.Sprintf("in=%d,out=%d,%s", in, out, map[bool]string{true: "kernels", false: "gemm"}[kern])
			b.Run(name+"/u", func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					LoRAIn(u, x, A, n, in, rank)
				}
			})
			b.Run(name+"/du,dB", func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					LoRAOutGrad(du, dB, dy, B, u, 0.5, n, out, rank)
				}
			})
			b.Run(name+"/dA,dx", func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					LoRAInGrad(dA, dx, du, x, A, n, in, rank, true)
				}
			})
			setKernelLevel(best)
		}
	}
}
