//go:build cuda

package cuda_test

import (
	"fmt"
	"math"
	"slices"
	"testing"

	"distill/core/quant"
	"distill/core/tensor"
	"distill/cuda"
)

// The decode matvecs and the NF4 dequantisation at shapes that take every
// path of matvec.cu's and nf4.cu's kernels. Each output buffer is filled with NaN before the
// launch, so a row or element a kernel never writes fails the comparison.
//
// Paths (matvec.cu, nf4.cu): the fast NF4 matvec takes cols a multiple of 32 up to
// 16384 with 16-byte aligned codes and x; its group width TPR (threads per
// row) is the largest power of two ≤ cols/32 in [32, 256], a block computes
// 4·256/TPR rows. The fast bf16 matvec the same with cols/8 chunks. Every
// other shape (odd cols: rows start mid-byte; even cols not a multiple of
// 32; cols > 16384; a misaligned x) takes the generic warp-per-row kernel.
// The vector dequantisation takes e0 = r0·cols a multiple of 8 and a 16-byte
// aligned dst, writing element by element only the 32-element groups cut by
// the range's ends; the rest takes the generic kernel.

// mvPath names the kernel path a shape takes (for the logs: a failure says
// which kernel to read). chunk is 32 for NF4, 8 for bf16.
func mvPath(cols, chunk int, aligned bool) string {
	if cols <= 0 || cols%chunk != 0 || cols > 16384 || !aligned {
		return "generic warp-per-row"
	}
	c, tpr := cols/chunk, 32
	for tpr < 256 && 2*tpr <= c {
		tpr *= 2
	}
	return fmt.Sprintf("fast TPR=%d, %d rows a block, %d chunk(s) a thread", tpr, 4*256/tpr, (c+tpr-1)/tpr)
}

func nans(n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(math.NaN())
	}
	return v
}

// mvShapes: {rows, cols}. Columns: 32 (one chunk), 96 (32·3: chunks in
// half blocks), 192, 320, 576 (multiples of 64, not 128), 384, 640 (of 128,
// not 256), 768 (of 256, not 512), 896, 1536 (TPR 32, 1–2 chunks a thread),
// 2048 and 3200 (TPR 64, the second chunk for some threads), 4352 (TPR 128),
// 8960 (TPR 256, 35 KB of x in shared memory), 16384 (the largest fast: 64
// KB, the raised shared-memory limit); fallbacks: 77 and 1001 (odd), 48 and
// 130 (even, not multiples of 32), 16416 (past 16384). Rows: 1, 3, 33, 1000
// and 8960 are not multiples of any block's rows (4–32) except where noted.
var mvShapes = [][2]int{
	{1, 32}, {33, 32}, {3, 96}, {33, 96}, {33, 192}, {1000, 320}, {7, 576}, {33, 384}, {35, 640}, {1000, 768},
	{130, 896}, {4864, 896}, {1000, 1536}, {8960, 1536}, {33, 2048}, {37, 3200}, {9, 4352}, {1536, 8960},
	{5, 16384}, {3, 16416}, {33, 77}, {5, 1001}, {33, 48}, {7, 130},
}

func TestNF4MatVecPaths(t *testing.T) {
	d := device(t)
	for _, sh := range mvShapes {
		for _, dq := range []bool{false, true} {
			n, k := sh[0], sh[1]
			t.Run(shapeName("%dx%d_dq%v", n, k, dq), func(t *testing.T) {
				q := nf4Weights(t, n, k, dq)
				w := upNF4(t, d, q)
				x := randn(rng(uint64(n+k)), k, 1)
				want := make([]float32, n)
				tensor.CPU{}.MatMul(want, x, q, 1)
				// f32 dots of k terms |w·x| ≈ 0.02 summed in another order, and
				// each 32-code chunk's scale factored out of its sum (one more
				// rounding of relative size 6e-8 per chunk): the same tolerance
				// as TestNF4DequantParity's matvec.
				atol := 1e-6 * math.Sqrt(float64(k))
				xb := up(t, d, cuda.F32, x)
				y := up(t, d, cuda.F32, nans(n))
				ok(t, d.NF4MatVec(y, w, xb))
				t.Logf("path: %s", mvPath(k, 32, true))
				near(t, "matvec", down(t, y), want, 1e-4, atol)
				// x one float past a 16-byte boundary: the generic kernel.
				xo := up(t, d, cuda.F32, append([]float32{0}, x...)).View(1, k)
				y2 := up(t, d, cuda.F32, nans(n))
				ok(t, d.NF4MatVec(y2, w, xo))
				near(t, "matvec (x misaligned: generic)", down(t, y2), want, 1e-4, atol)
			})
		}
	}
}

func TestBF16MatVecParity(t *testing.T) {
	d := device(t)
	shapes := append(mvShapes[:len(mvShapes):len(mvShapes)], [2]int{33, 8}, [2]int{5, 24}, [2]int{9, 16392}, [2]int{3, 12}, [2]int{1000, 4096})
	for _, sh := range shapes {
		n, k := sh[0], sh[1]
		t.Run(shapeName("%dx%d", n, k), func(t *testing.T) {
			r := rng(uint64(n*k) + 11)
			dense := tensor.New("dense", tensor.BF16, n, k)
			_, hb := bf16Round(randn(r, n*k, 0.02))
			copy(dense.U16s(), hb)
			x := randn(r, k, 1)
			want := make([]float32, n)
			tensor.CPU{}.MatMul(want, x, dense, 1)
			// The same f32 products (bf16 widens exactly) summed in another order.
			atol := 1e-6 * math.Sqrt(float64(k))
			W := up(t, d, cuda.BF16, hb)
			y := up(t, d, cuda.F32, nans(n))
			ok(t, d.BF16MatVec(y, W, up(t, d, cuda.F32, x), n, k))
			t.Logf("path: %s", mvPath(k, 8, true))
			near(t, "bf16 matvec", down(t, y), want, 1e-4, atol)
			// W one element past a 16-byte boundary: the generic kernel.
			Wo := up(t, d, cuda.BF16, append([]uint16{0}, hb...)).View(1, n*k)
			y2 := up(t, d, cuda.F32, nans(n))
			ok(t, d.BF16MatVec(y2, Wo, up(t, d, cuda.F32, x), n, k))
			near(t, "bf16 matvec (W misaligned: generic)", down(t, y2), want, 1e-4, atol)
		})
	}
}

// TestNF4DequantPaths: bit-exact dequantisation (f32 and bf16) of row ranges
// whose first element e0 = r0·cols is a multiple of 32 (whole groups), of 8
// but not 32 (the first and last groups cut: element by element), or not of
// 8 (the generic kernel), and into a misaligned dst (the generic kernel).
func TestNF4DequantPaths(t *testing.T) {
	d := device(t)
	cases := []struct{ n, k, r0, r1 int }{
		{64, 64, 0, 64},          // whole groups, e0 = 0
		{40, 40, 1, 39},          // e0 = 40: cut first group (8 of 32), cut last
		{33, 1000, 1, 33},        // e0 = 1000 ≡ 8 mod 32
		{33, 77, 3, 30},          // e0 = 231: generic
		{130, 896, 43, 130},      // whole groups
		{50, 8960, 7, 49},        // ≥ 256 blocks: absmax2 index varies
		{8960, 1536, 0, 8960},    // the benchmark's shape, in full
		{8960, 1536, 4000, 4001}, // one row
		{1, 24, 0, 1},            // fewer than 32 elements: one cut group
	}
	for _, c := range cases {
		for _, dq := range []bool{false, true} {
			t.Run(shapeName("%dx%d_rows%d-%d_dq%v", c.n, c.k, c.r0, c.r1, dq), func(t *testing.T) {
				q := nf4Weights(t, c.n, c.k, dq)
				w := upNF4(t, d, q)
				want := make([]float32, (c.r1-c.r0)*c.k)
				q.Q.(*quant.NF4).DequantizeRows(c.r0, c.r1, want)
				e0 := c.r0 * c.k
				t.Logf("e0 = %d: %s", e0, map[bool]string{true: "vector kernel", false: "generic kernel"}[e0%8 == 0])
				m := len(want)
				f := up(t, d, cuda.F32, nans(m))
				ok(t, d.NF4Dequant(f, w, c.r0, c.r1))
				near(t, "f32", down(t, f), want, 0, 0)
				hn := make([]uint16, m+1)
				for i := range hn {
					hn[i] = 0x7fc1 // a bf16 NaN
				}
				checkBF16 := func(name string, got []uint16) {
					t.Helper()
					for i, h := range got {
						if wb := tensor.F32ToBF16(want[i]); h != wb {
							row, col := c.r0+i/c.k, i%c.k
							t.Fatalf("%s: element %d (row %d, col %d) = %#04x, want %#04x (f32 %v)", name, i, row, col, h, wb, want[i])
						}
					}
				}
				b := up(t, d, cuda.BF16, hn[:m])
				ok(t, d.NF4Dequant(b, w, c.r0, c.r1))
				got, err := cuda.Download[uint16](b)
				ok(t, err)
				checkBF16("bf16", got)
				// dst one element past a 16-byte boundary: the generic kernel.
				bo := up(t, d, cuda.BF16, hn).View(1, m)
				ok(t, d.NF4Dequant(bo, w, c.r0, c.r1))
				got, err = cuda.Download[uint16](bo)
				ok(t, err)
				checkBF16("bf16 (dst misaligned: generic)", got)
				if c.r0 > 0 || c.r1 < c.n {
					return
				}
				// The whole weight into rows ld apart with the adapter's
				// columns beside each (the fused tile, NF4Stage: one launch
				// when cols and ld are multiples of 8), and without them:
				// the columns past cols stay NaN.
				for _, extra := range []int{16, 5} {
					ld := c.k + extra
					side := randn(rng(3), c.n*extra, 1)
					for _, withJob := range []bool{true, false} {
						bl := up(t, d, cuda.BF16, slices.Repeat([]uint16{0x7fc1}, c.n*ld))
						var jobs []cuda.BF16Rows
						if withJob {
							jobs = append(jobs, cuda.BF16Rows{Dst: bl.View(c.k, c.n*ld-c.k), LDD: ld,
								Src: up(t, d, cuda.F32, side), LDS: extra, Rows: c.n, Cols: extra, Scale: 0.5})
						}
						ok(t, d.NF4Stage(bl, w, ld, jobs...))
						got, err := cuda.Download[uint16](bl)
						ok(t, err)
						packed := make([]uint16, 0, m)
						for row := range c.n {
							packed = append(packed, got[row*ld:row*ld+c.k]...)
							for j, h := range got[row*ld+c.k : (row+1)*ld] {
								want := uint16(0x7fc1)
								if withJob {
									want = tensor.F32ToBF16(side[row*extra+j] * 0.5)
								}
								if h != want {
									t.Fatalf("ld %d (job %v): row %d column %d = %#04x, want %#04x", ld, withJob, row, c.k+j, h, want)
								}
							}
						}
						checkBF16(fmt.Sprintf("bf16 rows %d apart (job %v)", ld, withJob), packed)
					}
				}
			})
		}
	}
}
