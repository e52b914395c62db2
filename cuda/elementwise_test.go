//go:build cuda

package cuda_test

import (
	"math"
	"slices"
	"testing"

	"distill/core/tensor"
	"distill/core/train"
	"distill/cuda"
)

// f32 element-wise tolerance: the kernels compute what the CPU computes
// in f32, except that the CPU takes row sums in f64 (RMSNorm), σ in f64
// (SwiGLU), and Go does not contract a·b+c into an FMA where nvcc does.
// Each of those moves a result by a few ulp, 1e-5 relative is ~80 ulp:
// generous for rounding, far below any indexing or formula mistake.
const f32Tol = 1e-5

func TestRMSNormParity(t *testing.T) {
	d := device(t)
	for _, sh := range [][2]int{{1, 64}, {3, 576}, {17, 896}, {5, 1000}, {64, 2048}} {
		rows, dim := sh[0], sh[1]
		t.Run(shapeName("%dx%d", rows, dim), func(t *testing.T) {
			r := rng(uint64(rows*dim + 1))
			x, w, dy := randn(r, rows*dim, 1), randn(r, dim, 1), randn(r, rows*dim, 1)
			out, rstd := make([]float32, rows*dim), make([]float32, rows)
			train.RMSNormForward(out, rstd, x, w, 1e-6)
			dx0 := randn(r, rows*dim, 1) // backward accumulates into what dx holds
			dx, dw := slices.Clone(dx0), make([]float32, dim)
			train.RMSNormBackward(dx, dw, dy, x, w, rstd)

			xd, wd := up(t, d, cuda.F32, x), up(t, d, cuda.F32, w)
			od, sd := zeros(t, d, cuda.F32, rows*dim), zeros(t, d, cuda.F32, rows)
			ok(t, d.RMSNormFwd(od, sd, xd, wd, rows, dim, 1e-6))
			near(t, "out", down(t, od), out, f32Tol, 1e-6)
			near(t, "rstd", down(t, sd), rstd, f32Tol, 0)
			// With the bf16 operand beside: the same f32 out, and the bf16
			// rows ToBF16Rows makes of it, bit for bit, the rest of each
			// row (a stride past dim: the adapter's columns) untouched.
			ldb := dim + 8
			pad := make([]uint16, rows*ldb)
			for i := range pad {
				pad[i] = 0x7fc1 // a NaN: what is not written stays it
			}
			ob, want := up(t, d, cuda.BF16, pad), up(t, d, cuda.BF16, pad)
			od2 := zeros(t, d, cuda.F32, rows*dim)
			ok(t, d.RMSNormFwdBF16(od2, nil, xd, wd, rows, dim, 1e-6, ob, ldb))
			near(t, "out beside bf16", down(t, od2), down(t, od), 0, 0)
			ok(t, d.ToBF16Rows(want, ldb, od, dim, rows, dim, 1))
			got, err := cuda.Download[uint16](ob)
			ok(t, err)
			wantB, err := cuda.Download[uint16](want)
			ok(t, err)
			if !slices.Equal(got, wantB) {
				t.Errorf("bf16 rows differ from ToBF16Rows' of out")
			}
			if err := d.RMSNormFwdBF16(od2, nil, xd, wd, rows, dim, 1e-6, ob, dim-1); err == nil {
				t.Error("a bf16 stride below the columns was taken")
			}
			dxd, dwd := up(t, d, cuda.F32, dx0), zeros(t, d, cuda.F32, dim)
			ok(t, d.RMSNormBwd(dxd, dwd, up(t, d, cuda.F32, dy), xd, wd, sd, rows, dim))
			// dx subtracts two terms of similar size: absolute 1e-5 on O(1) values.
			near(t, "dx", down(t, dxd), dx, f32Tol, 1e-5)
			// dw sums rows products in a different order: 1e-5·sqrt(rows) absolute.
			near(t, "dw", down(t, dwd), dw, f32Tol, 1e-5*math.Sqrt(float64(rows)))
		})
	}
}

// ropeTables: the HF cos/sin tables (maxPos, hd/2) at base theta.
func ropeTables(maxPos, hd int, theta float64) (cos, sin []float32) {
	half := hd / 2
	cos, sin = make([]float32, maxPos*half), make([]float32, maxPos*half)
	for p := 0; p < maxPos; p++ {
		for j := 0; j < half; j++ {
			a := float64(p) / math.Pow(theta, float64(2*j)/float64(hd))
			cos[p*half+j], sin[p*half+j] = float32(math.Cos(a)), float32(math.Sin(a))
		}
	}
	return
}

func TestRoPEParity(t *testing.T) {
	d := device(t)
	// (rows, heads, hd): packed positions restart; hd 64 and 128, and 80 (not a power of two).
	for _, sh := range [][3]int{{5, 2, 64}, {33, 14, 64}, {9, 3, 80}, {40, 8, 128}} {
		n, nH, hd := sh[0], sh[1], sh[2]
		t.Run(shapeName("n%d_h%d_hd%d", n, nH, hd), func(t *testing.T) {
			r := rng(uint64(n*nH + hd))
			pos := make([]int, n)
			for i := range pos {
				pos[i] = i % 13 // segments of 13: positions restart
			}
			cos, sin := ropeTables(13, hd, 1e6)
			x := randn(r, n*nH*hd, 1)
			xd := up(t, d, cuda.F32, x)
			pd, cd, sd := up(t, d, cuda.I32, i32s(pos)), up(t, d, cuda.F32, cos), up(t, d, cuda.F32, sin)
			for _, inverse := range []bool{false, true} {
				want := slices.Clone(x)
				train.RoPEAt(want, n, nH, hd, pos, cos, sin, inverse)
				ok(t, cuda.Write(xd, 0, x))
				ok(t, d.RoPE(xd, pd, cd, sd, n, nH, hd, 13, inverse))
				// Two products and a sum per element, as the CPU: FMA contraction only.
				near(t, "rope", down(t, xd), want, f32Tol, 1e-6)
			}
		})
	}
}

func TestSwiGLUParity(t *testing.T) {
	d := device(t)
	for _, n := range []int{1, 1000, 4864 * 3, 1<<16 + 7} {
		t.Run(shapeName("n%d", n), func(t *testing.T) {
			r := rng(uint64(n))
			g, u, da := randn(r, n, 3), randn(r, n, 1), randn(r, n, 1)
			a, dg, du := make([]float32, n), make([]float32, n), make([]float32, n)
			train.SwiGLUForward(a, g, u)
			train.SwiGLUBackward(dg, du, da, g, u)
			gd, ud := up(t, d, cuda.F32, g), up(t, d, cuda.F32, u)
			ad, dgd, dud := zeros(t, d, cuda.F32, n), zeros(t, d, cuda.F32, n), zeros(t, d, cuda.F32, n)
			ok(t, d.SwiGLUFwd(ad, gd, ud, n))
			ok(t, d.SwiGLUBwd(dgd, dud, up(t, d, cuda.F32, da), gd, ud, n))
			// expf is within 2 ulp of the f64 exp the CPU rounds.
			near(t, "a", down(t, ad), a, f32Tol, 1e-7)
			// dg's factor 1 + g(1−σ) crosses 0 near g = −1.28, where an ulp of σ
			// becomes all of dg: absolute 1e-6 on |da·u| up to ~10.
			near(t, "dg", down(t, dgd), dg, f32Tol, 1e-6)
			near(t, "du", down(t, dud), du, f32Tol, 1e-7)

			// With the bf16 copy: the same a, and ab its rounding exactly.
			ab := zeros(t, d, cuda.BF16, n)
			ok(t, d.SwiGLUFwdBF16(ad, ab, gd, ud, n))
			got := down(t, ad)
			near(t, "a (with bf16)", got, a, f32Tol, 1e-7)
			hb, err := cuda.Download[uint16](ab)
			ok(t, err)
			for i, v := range got {
				if hb[i] != tensor.F32ToBF16(v) {
					t.Fatalf("ab[%d] = %#04x, want bf16(%v) = %#04x", i, hb[i], v, tensor.F32ToBF16(v))
				}
			}

			// Keeping g and u in bf16 (a layer's kept copies): gb and ub
			// their roundings exactly, and a, dg, du from them those of
			// the rounded inputs (the CPU's over the same values).
			gb, ub := zeros(t, d, cuda.BF16, n), zeros(t, d, cuda.BF16, n)
			ok(t, d.SwiGLUFwdKeep(ad, ab, gb, ub, gd, ud, n))
			near(t, "a (keeping g, u)", down(t, ad), a, f32Tol, 1e-7)
			g16, u16 := make([]float32, n), make([]float32, n)
			for _, c := range []struct {
				name     string
				b        *cuda.Buffer
				from, to []float32
			}{{"gb", gb, g, g16}, {"ub", ub, u, u16}} {
				h, err := cuda.Download[uint16](c.b)
				ok(t, err)
				for i, v := range c.from {
					if h[i] != tensor.F32ToBF16(v) {
						t.Fatalf("%s[%d] = %#04x, want bf16(%v) = %#04x", c.name, i, h[i], v, tensor.F32ToBF16(v))
					}
					c.to[i] = tensor.BF16ToF32(h[i])
				}
			}
			train.SwiGLUForward(a, g16, u16)
			train.SwiGLUBackward(dg, du, da, g16, u16)
			// The forward from them (the GEMMs' bf16 output): a, and ab its
			// rounding exactly; either alone; off 16-byte alignment.
			ok(t, ad.Zero())
			ok(t, d.SwiGLUFwdFromBF16(ad, ab, gb, ub, n))
			got = down(t, ad)
			near(t, "a (forward from bf16)", got, a, f32Tol, 1e-7)
			hb, err = cuda.Download[uint16](ab)
			ok(t, err)
			for i, v := range got {
				if hb[i] != tensor.F32ToBF16(v) {
					t.Fatalf("ab (from bf16)[%d] = %#04x, want bf16(%v) = %#04x", i, hb[i], v, tensor.F32ToBF16(v))
				}
			}
			ok(t, ab.Zero())
			ok(t, d.SwiGLUFwdFromBF16(nil, ab, gb, ub, n))
			if h2, err := cuda.Download[uint16](ab); err != nil || !slices.Equal(h2, hb) {
				t.Fatalf("ab without a: %v, or not the same bits", err)
			}
			if n >= 5 {
				m := n - 1
				ok(t, ad.Zero())
				ok(t, d.SwiGLUFwdFromBF16(ad.View(1, m), nil, gb.View(1, m), ub.View(1, m), m))
				near(t, "a (forward from bf16, unaligned)", down(t, ad)[1:], a[1:], f32Tol, 1e-7)
			}
			ok(t, d.SwiGLUBwdFromBF16(dgd, dud, nil, up(t, d, cuda.F32, da), gb, ub, n))
			near(t, "dg (from bf16)", down(t, dgd), dg, f32Tol, 1e-6)
			near(t, "du (from bf16)", down(t, dud), du, f32Tol, 1e-7)
			ok(t, ad.Zero())
			ok(t, d.SwiGLUBwdFromBF16(dgd, dud, ad, up(t, d, cuda.F32, da), gb, ub, n))
			near(t, "dg (from bf16, with a)", down(t, dgd), dg, f32Tol, 1e-6)
			near(t, "a (from bf16, by the backward)", down(t, ad), a, f32Tol, 1e-7)
			if n >= 5 { // off 16-byte alignment: element by element
				m := n - 1
				ok(t, ad.Zero())
				ok(t, d.SwiGLUBwdFromBF16(dgd.View(1, m), dud.View(1, m), ad.View(1, m), up(t, d, cuda.F32, da[1:]), gb.View(1, m), ub.View(1, m), m))
				near(t, "dg (from bf16, unaligned)", down(t, dgd)[1:], dg[1:], f32Tol, 1e-6)
				near(t, "a (from bf16 by the backward, unaligned)", down(t, ad)[1:], a[1:], f32Tol, 1e-7)
			}
		})
	}
}

// TestSwiGLUBwdRows: the backward straight into bf16 rows (the gate and up
// projections' operands) gives SwiGLUBwd's — or, from bf16 g and u,
// SwiGLUBwdFromBF16's — dg and du rounded to bf16 (within an ulp: the two
// kernels' FMA contractions may differ), each row's columns past cols
// untouched, a as the f32 kernel's, and the conversions run in the same
// launch exactly as ToBF16Rows makes them: by 4 and element by element
// (cols or ld not multiples of 4), rows of one to a few thousand.
func TestSwiGLUBwdRows(t *testing.T) {
	d := device(t)
	for _, c := range []struct{ rows, cols, ld int }{{1, 8, 8}, {37, 96, 104}, {300, 1000, 1016}, {5, 30, 33}, {64, 7, 9}} {
		for _, b16 := range []bool{false, true} {
			t.Run(shapeName("%dx%d_ld%d_bf16%v", c.rows, c.cols, c.ld, b16), func(t *testing.T) {
				n := c.rows * c.cols
				r := rng(uint64(n + c.ld))
				g, u, da := randn(r, n, 3), randn(r, n, 1), randn(r, n, 1)
				gd, ud, dad := up(t, d, cuda.F32, g), up(t, d, cuda.F32, u), up(t, d, cuda.F32, da)
				dgd, dud, ad := zeros(t, d, cuda.F32, n), zeros(t, d, cuda.F32, n), zeros(t, d, cuda.F32, n)
				src, usrc := gd, ud
				var aOut *cuda.Buffer
				if b16 {
					gb, ub := zeros(t, d, cuda.BF16, n), zeros(t, d, cuda.BF16, n)
					ok(t, d.SwiGLUFwdKeep(ad, nil, gb, ub, gd, ud, n))
					ok(t, d.SwiGLUBwdFromBF16(dgd, dud, ad, dad, gb, ub, n))
					src, usrc, aOut = gb, ub, zeros(t, d, cuda.F32, n)
				} else {
					ok(t, d.SwiGLUBwd(dgd, dud, dad, gd, ud, n))
				}
				sentinel := make([]uint16, c.rows*c.ld)
				for i := range sentinel {
					sentinel[i] = 0x7fc1 // a NaN no rounding makes
				}
				dgb, dub := up(t, d, cuda.BF16, sentinel), up(t, d, cuda.BF16, sentinel)
				// Conversions beside it: B-like (cols, 16) and u-like (rows, 5) blocks.
				jb, ju := randn(r, c.cols*16, 1), randn(r, c.rows*5, 1)
				jbd, jud := zeros(t, d, cuda.BF16, c.cols*16), zeros(t, d, cuda.BF16, c.rows*5)
				jobs := []cuda.BF16Rows{
					{Dst: jbd, LDD: 16, Src: up(t, d, cuda.F32, jb), LDS: 16, Rows: c.cols, Cols: 16, Scale: 1},
					{Dst: jud, LDD: 5, Src: up(t, d, cuda.F32, ju), LDS: 5, Rows: c.rows, Cols: 5, Scale: 1},
				}
				ok(t, d.SwiGLUBwdRows(dgb, dub, c.ld, aOut, dad, src, usrc, c.rows, c.cols, jobs...))
				for _, o := range []struct {
					name string
					got  *cuda.Buffer
					want []float32
				}{{"dg", dgb, down(t, dgd)}, {"du", dub, down(t, dud)}} {
					h, err := cuda.Download[uint16](o.got)
					ok(t, err)
					for i := range c.rows {
						for j := range c.ld {
							v := h[i*c.ld+j]
							if j >= c.cols {
								if v != 0x7fc1 {
									t.Fatalf("%s row %d column %d (past the %d): %#04x, want it untouched", o.name, i, j, c.cols, v)
								}
								continue
							}
							w := tensor.F32ToBF16(o.want[i*c.cols+j])
							if dist := int(v) - int(w); v>>15 != w>>15 || dist > 1 || dist < -1 {
								t.Fatalf("%s[%d][%d] = %#04x, want bf16(%v) = %#04x", o.name, i, j, v, o.want[i*c.cols+j], w)
							}
						}
					}
				}
				if b16 {
					near(t, "a", down(t, aOut), down(t, ad), 0, 0)
				}
				for _, j := range []struct {
					name string
					got  *cuda.Buffer
					from []float32
				}{{"B job", jbd, jb}, {"u job", jud, ju}} {
					h, err := cuda.Download[uint16](j.got)
					ok(t, err)
					for i, v := range j.from {
						if h[i] != tensor.F32ToBF16(v) {
							t.Fatalf("%s[%d] = %#04x, want bf16(%v) = %#04x", j.name, i, h[i], v, tensor.F32ToBF16(v))
						}
					}
				}
			})
		}
	}
	// Bad input is named, not launched.
	b := zeros(t, d, cuda.BF16, 64)
	f := zeros(t, d, cuda.F32, 64)
	if err := d.SwiGLUBwdRows(b, b, 4, nil, f, f, f, 8, 8); err == nil {
		t.Error("a stride below the columns: no error")
	}
	if err := d.SwiGLUBwdRows(b, b, 8, f, f, f, f, 8, 8); err == nil {
		t.Error("a from f32 g and u: no error")
	}
	if err := d.SwiGLUBwdRows(b, b, 8, nil, f, f, f, 8, 8); err == nil {
		t.Error("dg and du in one buffer: no error")
	}
	b2 := zeros(t, d, cuda.BF16, 64)
	if err := d.SwiGLUBwdRows(b, b2, 8, nil, f, f, f, 8, 8, cuda.BF16Rows{Dst: b2.View(8, 8), LDD: 8, Src: f, LDS: 8, Rows: 1, Cols: 8, Scale: 1}); err == nil {
		t.Error("a conversion into du's rows: no error")
	}
}

func TestEmbedParity(t *testing.T) {
	d := device(t)
	const vocab, dim = 1001, 72
	r := rng(11)
	vals := randn(r, vocab*dim, 0.5)
	ids := []int{0, 5, 1000, 5, 17, 999, 5, 3}
	for _, dt := range []tensor.DType{tensor.F32, tensor.BF16, tensor.F16} {
		t.Run(dt.String(), func(t *testing.T) {
			table := tensor.New("embed", dt, vocab, dim)
			var td *cuda.Buffer
			switch dt {
			case tensor.F32:
				copy(table.F32s(), vals)
				td = up(t, d, cuda.F32, table.F32s())
			case tensor.BF16:
				for i, v := range vals {
					table.U16s()[i] = tensor.F32ToBF16(v)
				}
				td = up(t, d, cuda.BF16, table.U16s())
			case tensor.F16:
				for i, v := range vals {
					table.U16s()[i] = tensor.F32ToF16(v)
				}
				td = up(t, d, cuda.F16, table.U16s())
			}
			want := make([]float32, len(ids)*dim)
			tensor.CPU{}.Embed(want, table, ids)
			od := zeros(t, d, cuda.F32, len(ids)*dim)
			idd := up(t, d, cuda.I32, i32s(ids))
			ok(t, d.EmbedFwd(od, td, idd, len(ids), dim, vocab))
			// Widening is exact: bit for bit.
			near(t, "embed", down(t, od), want, 0, 0)
		})
	}
	t.Run("backward", func(t *testing.T) {
		dout := randn(r, len(ids)*dim, 1)
		want := make([]float32, vocab*dim)
		for i, id := range ids {
			for j := 0; j < dim; j++ {
				want[id*dim+j] += dout[i*dim+j]
			}
		}
		dt := zeros(t, d, cuda.F32, vocab*dim)
		ok(t, d.EmbedBwd(dt, up(t, d, cuda.F32, dout), up(t, d, cuda.I32, i32s(ids)), len(ids), dim, vocab))
		// id 5 repeats three times: atomics add in any order, an ulp of the
		// terms (~1e-7) even where the sum cancels to near 0.
		near(t, "dtable", down(t, dt), want, f32Tol, 1e-6)
	})
}

func TestConversionsAndAdds(t *testing.T) {
	d := device(t)
	r := rng(5)
	n := 3000
	x := randn(r, n, 10)
	x[0], x[1], x[2] = float32(math.Inf(1)), 0, float32(math.Copysign(0, -1))
	xd := up(t, d, cuda.F32, x)
	bd := zeros(t, d, cuda.BF16, n)
	// By 4s (aligned, n % 4 = 0), by 4s with a tail of 3, and one by one
	// (src one element past alignment).
	for _, c := range []struct{ off, n int }{{0, n}, {0, n - 1}, {1, n - 1}} {
		ok(t, bd.Zero())
		ok(t, d.ToBF16(bd, xd.View(c.off, c.n), c.n))
		got, err := cuda.Download[uint16](bd)
		ok(t, err)
		for i, v := range x[c.off : c.off+c.n] {
			if w := tensor.F32ToBF16(v); got[i] != w {
				t.Fatalf("offset %d, n %d: bf16 of %v = %#04x, want %#04x (round to nearest even)", c.off, c.n, v, got[i], w)
			}
		}
		if c.n < n && got[c.n] != 0 {
			t.Fatalf("offset %d, n %d: element %d past the end was written", c.off, c.n, c.n)
		}
	}
	ok(t, d.ToBF16(bd, xd, n))
	got, err := cuda.Download[uint16](bd)
	ok(t, err)
	back := zeros(t, d, cuda.F32, n)
	ok(t, d.ToF32(back, bd, n))
	want := make([]float32, n)
	for i, h := range got {
		want[i] = tensor.BF16ToF32(h)
	}
	near(t, "bf16→f32", down(t, back), want, 0, 0)

	// Rows apart: scale·x rounded into cols columns of rows ldd apart (by 4s,
	// and one by one when a stride or cols is not a multiple of 4), the
	// rest untouched.
	for _, c := range []struct {
		rows, cols, ldd, lds, off int
		scale                     float32
	}{{5, 16, 1552, 16, 1536, 1}, {7, 96, 104, 100, 0, 0.5}, {4, 6, 9, 7, 3, 2}, {3, 12, 16, 12, 1, 1}} {
		src := up(t, d, cuda.F32, x[:c.rows*c.lds])
		dst := up(t, d, cuda.BF16, slices.Repeat([]uint16{0x1234}, c.off+c.rows*c.ldd))
		ok(t, d.ToBF16Rows(dst.View(c.off, c.rows*c.ldd), c.ldd, src, c.lds, c.rows, c.cols, c.scale))
		got, err := cuda.Download[uint16](dst)
		ok(t, err)
		for i, h := range got {
			want := uint16(0x1234)
			if row, col := (i-c.off)/c.ldd, (i-c.off)%c.ldd; i >= c.off && col < c.cols {
				want = tensor.F32ToBF16(x[row*c.lds+col] * c.scale)
			}
			if h != want {
				t.Fatalf("rows %+v: element %d = %#04x, want %#04x", c, i, h, want)
			}
		}
	}

	rows, cols := 7, 129
	y, bias := randn(r, rows*cols, 1), randn(r, cols, 1)
	yd := up(t, d, cuda.F32, y)
	ok(t, d.AddBias(yd, up(t, d, cuda.F32, bias), rows, cols))
	ok(t, d.Add(yd, yd, rows*cols))
	wantY := slices.Clone(y)
	tensor.CPU{}.AddBias(wantY, bias)
	tensor.CPU{}.Add(wantY, slices.Clone(wantY))
	near(t, "add bias, add", down(t, yd), wantY, 0, 0) // one rounding each, same order: exact
}
