//go:build cuda

package cuda_test

import (
	"math"
	"slices"
	"testing"

	"distill/core/tensor"
	"distill/cuda"
)

// TestSwiGLUFwdU: the forward with the down adapter's u = ã·Aᵀ writes
// SwiGLUFwdKeep's (or, from bf16 g and u, SwiGLUFwdFromBF16's) a, ab, gb,
// ub bit for bit, and u within f32's rounding of the f64 sum (1e-6 of the
// products' magnitude, √cols of them) — ã the SwiGLU's a, or under LoRA
// dropout Dropout's a∘mask with the key given or read from the device (a
// and ab unmasked still) — in one chunk of columns (no part) and in many,
// the same bits on a second run; ranks 1 to 32, rows past a warp's four
// and columns past a chunk's.
func TestSwiGLUFwdU(t *testing.T) {
	d := device(t)
	for _, c := range []struct{ rows, cols, r int }{{1, 8, 1}, {59, 320, 8}, {37, 1000, 12}, {70, 512, 16}, {33, 256, 32}, {300, 1536, 16}} {
		for _, b16 := range []bool{false, true} {
			for _, drop := range []string{"none", "base", "key"} {
				t.Run(shapeName("%dx%d_r%d_bf16%v_drop_%s", c.rows, c.cols, c.r, b16, drop), func(t *testing.T) {
					swigluUCase(t, d, c.rows, c.cols, c.r, b16, drop)
				})
			}
		}
	}
	b, f := zeros(t, d, cuda.F32, 64), zeros(t, d, cuda.F32, 64)
	if err := d.SwiGLUFwdU(nil, nil, nil, nil, f, f, b, b, nil, 8, 6, 2, nil); err == nil {
		t.Error("6 columns: no error")
	}
	if err := d.SwiGLUFwdU(nil, nil, nil, nil, f, f, b, b, nil, 2, 8, 33, nil); err == nil {
		t.Error("rank 33: no error")
	}
	g, u, uo := zeros(t, d, cuda.F32, 64), zeros(t, d, cuda.F32, 64), zeros(t, d, cuda.F32, 16)
	if err := d.SwiGLUFwdU(nil, nil, nil, nil, g, u, b, uo, uo, 8, 8, 2, nil); err == nil {
		t.Error("part over u: no error")
	}
	if err := d.SwiGLUFwdU(g, nil, nil, nil, g, u, b, uo, nil, 8, 8, 2, nil); err == nil {
		t.Error("a over g: no error")
	}
	if err := d.SwiGLUFwdU(nil, nil, nil, nil, g, u, b, uo, nil, 8, 8, 2, &cuda.LoRADrop{Bases: []uint64{1, 2}}); err == nil {
		t.Error("two keys: no error")
	}
	if err := d.SwiGLUFwdU(nil, nil, nil, nil, g, u, b, uo, nil, 8, 8, 2, nil); err != nil {
		t.Errorf("apart, aligned: %v", err)
	}
}

func swigluUCase(t *testing.T, d *cuda.Device, rows, cols, rank int, b16 bool, drop string) {
	n := rows * cols
	r := rng(uint64(n + rank))
	g, u, A := randn(r, n, 3), randn(r, n, 1), randn(r, rank*cols, 0.05)
	gd, ud, Ad := up(t, d, cuda.F32, g), up(t, d, cuda.F32, u), up(t, d, cuda.F32, A)
	wantA, wantAB := zeros(t, d, cuda.F32, n), zeros(t, d, cuda.BF16, n)
	gb, ub := zeros(t, d, cuda.BF16, n), zeros(t, d, cuda.BF16, n)
	ok(t, d.SwiGLUFwdKeep(wantA, wantAB, gb, ub, gd, ud, n))
	src, usrc := gd, ud
	if b16 {
		ok(t, d.SwiGLUFwdFromBF16(wantA, wantAB, gb, ub, n))
		src, usrc = gb, ub
	}
	dr, masked := maskCase(t, d, drop, wantA, n, 1)
	av := down(t, masked[0])
	want := make([]float64, rows*rank)
	scale := make([]float64, rows*rank)
	for i := range rows {
		for k := range rank {
			for j := range cols {
				p := float64(av[i*cols+j]) * float64(A[k*cols+j])
				want[i*rank+k] += p
				scale[i*rank+k] += p * p
			}
		}
	}
	var same sameInChunks
	for _, partLen := range []int{0, rows * rank * 64, rows * rank * 64} {
		ad, abd := zeros(t, d, cuda.F32, n), zeros(t, d, cuda.BF16, n)
		var gbd, ubd *cuda.Buffer
		if !b16 {
			gbd, ubd = zeros(t, d, cuda.BF16, n), zeros(t, d, cuda.BF16, n)
		}
		uo := zeros(t, d, cuda.F32, rows*rank)
		var part *cuda.Buffer
		if partLen > 0 {
			part = zeros(t, d, cuda.F32, partLen)
		}
		ok(t, d.SwiGLUFwdU(ad, abd, gbd, ubd, src, usrc, Ad, uo, part, rows, cols, rank, dr))
		near(t, "a", down(t, ad), down(t, wantA), 0, 0)
		for _, p := range [][2]*cuda.Buffer{{abd, wantAB}, {gbd, gb}, {ubd, ub}} {
			if p[0] == nil {
				continue
			}
			h0, err := cuda.Download[uint16](p[0])
			ok(t, err)
			h1, err := cuda.Download[uint16](p[1])
			ok(t, err)
			if !slices.Equal(h0, h1) {
				t.Fatalf("part %d: a bf16 output differs from the SwiGLU's own", partLen)
			}
		}
		got := down(t, uo)
		for i, v := range got {
			if e := math.Abs(float64(v) - want[i]); e > 1e-6*math.Sqrt(scale[i])*math.Sqrt(float64(cols))+1e-30 || v != v {
				t.Fatalf("part %d: u[%d][%d] = %v, want %v (|Δ| %.2e)", partLen, i/rank, i%rank, v, want[i], e)
			}
		}
		same.check(t, partLen, got)
	}
}

// maskCase is LoRA dropout's masks of members modules as a case names
// them — "none", "base" (the keys given) or "key" (read from the device),
// p 0.3, each member its own key — and x (n floats) under member m's mask
// as Dropout makes it (x itself for each without dropout).
func maskCase(t *testing.T, d *cuda.Device, drop string, x *cuda.Buffer, n, members int) (*cuda.LoRADrop, []*cuda.Buffer) {
	const p = 0.3
	thresh, keep := uint64(p*math.Exp2(64)), float32(1/(1-p))
	bases := []uint64{0x1234_5678_9abc_def0, 0x0fed_cba9_8765_4321, 0x5555_aaaa_3333_cccc}[:members]
	var dr *cuda.LoRADrop
	switch drop {
	case "none":
		return nil, slices.Repeat([]*cuda.Buffer{x}, members)
	case "base":
		dr = &cuda.LoRADrop{Bases: bases, Thresh: thresh, Keep: keep}
	case "key":
		dr = &cuda.LoRADrop{Keys: up(t, d, cuda.U64, bases), Thresh: thresh, Keep: keep}
	default:
		t.Fatalf("dropout case %q", drop)
	}
	masked := make([]*cuda.Buffer, members)
	for m := range members {
		masked[m] = zeros(t, d, cuda.F32, n)
		ok(t, d.Dropout(masked[m], x, n, bases[m], thresh, keep))
	}
	return dr, masked
}

// sameInChunks holds a kernel's output to the bits of its first run in
// chunks (partLen > 0): the chunks are summed in a fixed order.
type sameInChunks []float32

func (f *sameInChunks) check(t *testing.T, partLen int, got []float32) {
	t.Helper()
	switch {
	case partLen == 0:
	case *f == nil:
		*f = got
	case !slices.Equal(got, *f):
		t.Fatal("the sums differ between two runs in chunks")
	}
}

// TestSwiGLUBwdRowsDA: the backward into bf16 rows with the down adapter's
// dA += duᵀ·ã writes SwiGLUBwdRows's dg and du (within an ulp of bf16: the
// two kernels' FMA contractions may differ; the columns past cols
// untouched), runs its conversions exactly, and adds to dA within f32's
// rounding of the f64 sum over the rows (1e-6 of the products' magnitude,
// √rows of them) — ã the SwiGLU's a, or under LoRA dropout Dropout's a∘mask
// with the key given or read from the device — in one chunk of rows (no
// part: into dA itself) and in many (the same bits on a second run); f32
// and bf16 g and u; ranks 4 to 32.
func TestSwiGLUBwdRowsDA(t *testing.T) {
	d := device(t)
	for _, c := range []struct{ rows, cols, ld, r int }{{1, 8, 8, 4}, {37, 96, 104, 8}, {300, 1000, 1016, 16}, {130, 520, 528, 32}, {65, 2048, 2048, 12}} {
		for _, b16 := range []bool{false, true} {
			for _, drop := range []string{"none", "base", "key"} {
				t.Run(shapeName("%dx%d_ld%d_r%d_bf16%v_drop_%s", c.rows, c.cols, c.ld, c.r, b16, drop), func(t *testing.T) {
					swigluDACase(t, d, c.rows, c.cols, c.ld, c.r, b16, drop)
				})
			}
		}
	}
}

func swigluDACase(t *testing.T, d *cuda.Device, rows, cols, ld, rank int, b16 bool, drop string) {
	n := rows * cols
	r := rng(uint64(n + ld + rank))
	g, u, da := randn(r, n, 3), randn(r, n, 1), randn(r, n, 1)
	du, gA0 := randn(r, rows*rank, 1), randn(r, rank*cols, 1)
	gd, ud, dad, dud := up(t, d, cuda.F32, g), up(t, d, cuda.F32, u), up(t, d, cuda.F32, da), up(t, d, cuda.F32, du)
	src, usrc := gd, ud
	a := zeros(t, d, cuda.F32, n)
	if b16 {
		gb, ub := zeros(t, d, cuda.BF16, n), zeros(t, d, cuda.BF16, n)
		ok(t, d.SwiGLUFwdKeep(a, nil, gb, ub, gd, ud, n))
		ok(t, d.SwiGLUFwdFromBF16(a, nil, gb, ub, n))
		src, usrc = gb, ub
	} else {
		ok(t, d.SwiGLUFwd(a, gd, ud, n))
	}
	// What the step's rows kernel writes, and the adapter's input as loraU masks it.
	wantG, wantU := zeros(t, d, cuda.BF16, rows*ld), zeros(t, d, cuda.BF16, rows*ld)
	ok(t, d.SwiGLUBwdRows(wantG, wantU, ld, nil, dad, src, usrc, rows, cols))
	dr, at := maskCase(t, d, drop, a, n, 1)
	av := down(t, at[0])
	want, scale := make([]float64, rank*cols), make([]float64, rank*cols)
	for k := range rank {
		for j := range cols {
			want[k*cols+j] = float64(gA0[k*cols+j])
			for i := range rows {
				v := float64(du[i*rank+k]) * float64(av[i*cols+j])
				want[k*cols+j] += v
				scale[k*cols+j] += v * v
			}
		}
	}
	var same sameInChunks
	for _, partLen := range []int{0, rank * cols * rows, rank * cols * rows} {
		sentinel := make([]uint16, rows*ld)
		for i := range sentinel {
			sentinel[i] = 0x7fc1 // a NaN no rounding makes
		}
		dgb, dub := up(t, d, cuda.BF16, sentinel), up(t, d, cuda.BF16, sentinel)
		jb := randn(r, rows*5, 1)
		jbd := zeros(t, d, cuda.BF16, rows*5)
		jobs := []cuda.BF16Rows{{Dst: jbd, LDD: 5, Src: up(t, d, cuda.F32, jb), LDS: 5, Rows: rows, Cols: 5, Scale: 1}}
		gA := up(t, d, cuda.F32, gA0)
		var part *cuda.Buffer
		if partLen > 0 {
			part = zeros(t, d, cuda.F32, partLen)
		}
		ok(t, d.SwiGLUBwdRowsDA(dgb, dub, ld, dad, src, usrc, rows, cols, cuda.SwiGLUDA{GA: gA, DU: dud, Part: part, R: rank, Drop: dr}, jobs...))
		for _, o := range [][2]*cuda.Buffer{{dgb, wantG}, {dub, wantU}} {
			got, err := cuda.Download[uint16](o[0])
			ok(t, err)
			w, err := cuda.Download[uint16](o[1])
			ok(t, err)
			for i := range rows {
				for j := range ld {
					v, x := got[i*ld+j], w[i*ld+j]
					if j >= cols {
						if v != 0x7fc1 {
							t.Fatalf("part %d: row %d column %d (past the %d): %#04x, want it untouched", partLen, i, j, cols, v)
						}
						continue
					}
					if dist := int(v) - int(x); v>>15 != x>>15 || dist > 1 || dist < -1 {
						t.Fatalf("part %d: dg or du [%d][%d] = %#04x, want SwiGLUBwdRows's %#04x", partLen, i, j, v, x)
					}
				}
			}
		}
		h, err := cuda.Download[uint16](jbd)
		ok(t, err)
		for i, v := range jb {
			if h[i] != tensor.F32ToBF16(v) {
				t.Fatalf("job[%d] = %#04x, want bf16(%v)", i, h[i], v)
			}
		}
		got := down(t, gA)
		for i, v := range got {
			if e := math.Abs(float64(v) - want[i]); e > 1e-6*math.Sqrt(scale[i])*math.Sqrt(float64(rows))+1e-6*math.Abs(want[i]) || v != v {
				t.Fatalf("part %d: dA[%d][%d] = %v, want %v (|Δ| %.2e)", partLen, i/cols, i%cols, v, want[i], e)
			}
		}
		same.check(t, partLen, got)
	}
}

// TestSwiGLUBwdRowsDARefuses: bad shapes and overlapping outputs are
// named, not launched.
func TestSwiGLUBwdRowsDARefuses(t *testing.T) {
	d := device(t)
	b, b2 := zeros(t, d, cuda.BF16, 256), zeros(t, d, cuda.BF16, 256)
	f, g, u := zeros(t, d, cuda.F32, 256), zeros(t, d, cuda.F32, 256), zeros(t, d, cuda.F32, 256)
	gA, du, part := zeros(t, d, cuda.F32, 256), zeros(t, d, cuda.F32, 256), zeros(t, d, cuda.F32, 1024)
	da := func(ga cuda.SwiGLUDA, rows, cols, ld int) error {
		return d.SwiGLUBwdRowsDA(b, b2, ld, f, g, u, rows, cols, ga)
	}
	for _, c := range []struct {
		name string
		ga   cuda.SwiGLUDA
		cols int
		ld   int
	}{
		{"rank 6", cuda.SwiGLUDA{GA: gA, DU: du, R: 6}, 8, 8},
		{"rank 36", cuda.SwiGLUDA{GA: gA, DU: du, R: 36}, 4, 4},
		{"6 columns", cuda.SwiGLUDA{GA: gA, DU: du, R: 4}, 6, 6},
		{"stride 10", cuda.SwiGLUDA{GA: gA, DU: du, R: 4}, 8, 10},
		{"part over dA", cuda.SwiGLUDA{GA: gA, DU: du, R: 4, Part: gA}, 8, 8},
		{"dA over du", cuda.SwiGLUDA{GA: du, DU: du, R: 4}, 8, 8},
		{"dA over g", cuda.SwiGLUDA{GA: g, DU: du, R: 4}, 8, 8},
		{"part over da", cuda.SwiGLUDA{GA: gA, DU: du, R: 4, Part: f}, 8, 8},
		{"two keys", cuda.SwiGLUDA{GA: gA, DU: du, R: 4, Drop: &cuda.LoRADrop{Bases: []uint64{1, 2}}}, 8, 8},
	} {
		if err := da(c.ga, 8, c.cols, c.ld); err == nil {
			t.Errorf("%s: no error", c.name)
		} else {
			t.Logf("%s: %v", c.name, err)
		}
	}
	pb, err := part.Carve(cuda.BF16, 0, 16)
	ok(t, err)
	if err := d.SwiGLUBwdRowsDA(b, b2, 8, f, g, u, 8, 8, cuda.SwiGLUDA{GA: gA, DU: du, R: 4, Part: part}, cuda.BF16Rows{Dst: pb, LDD: 4, Src: f, LDS: 4, Rows: 4, Cols: 4, Scale: 1}); err == nil {
		t.Error("a conversion into part: no error")
	}
	if err := da(cuda.SwiGLUDA{GA: gA, DU: du, R: 4, Part: part}, 8, 8, 8); err != nil {
		t.Errorf("apart, aligned: %v", err)
	}
}

// TestToBF16RowsDB: dy rounded into bf16 rows exactly as ToBF16Rows rounds
// it (the columns past cols untouched) while dB += s·dyᵀ·u is added within
// f32's rounding of the f64 sum over the rows (1e-6 of the products'
// magnitude, √rows of them) — in one chunk of rows (no part: into dB
// itself) and in many, the same bits on a second run; ranks 4 to 32, a
// source stride past its columns.
func TestToBF16RowsDB(t *testing.T) {
	d := device(t)
	for _, c := range []struct{ rows, cols, ldd, lds, r int }{{1, 8, 8, 8, 4}, {37, 96, 112, 96, 8}, {300, 1000, 1016, 1004, 16}, {130, 520, 520, 528, 32}, {65, 2048, 2064, 2048, 12}} {
		t.Run(shapeName("%dx%d_ldd%d_lds%d_r%d", c.rows, c.cols, c.ldd, c.lds, c.r), func(t *testing.T) {
			const s = 0.75
			r := rng(uint64(c.rows*c.cols + c.r))
			dy, u, gB0 := randn(r, c.rows*c.lds, 1), randn(r, c.rows*c.r, 1), randn(r, c.cols*c.r, 1)
			dyd, ud := up(t, d, cuda.F32, dy), up(t, d, cuda.F32, u)
			want, scale := make([]float64, c.cols*c.r), make([]float64, c.cols*c.r)
			for j := range c.cols {
				for k := range c.r {
					want[j*c.r+k] = float64(gB0[j*c.r+k])
					for i := range c.rows {
						v := s * float64(dy[i*c.lds+j]) * float64(u[i*c.r+k])
						want[j*c.r+k] += v
						scale[j*c.r+k] += v * v
					}
				}
			}
			var same sameInChunks
			for _, partLen := range []int{0, c.rows * c.cols * c.r, c.rows * c.cols * c.r} {
				sentinel := make([]uint16, c.rows*c.ldd)
				for i := range sentinel {
					sentinel[i] = 0x7fc1
				}
				dst, gB := up(t, d, cuda.BF16, sentinel), up(t, d, cuda.F32, gB0)
				var part *cuda.Buffer
				if partLen > 0 {
					part = zeros(t, d, cuda.F32, partLen)
				}
				ok(t, d.ToBF16RowsDB(dst, c.ldd, dyd, c.lds, c.rows, c.cols, ud, c.r, gB, part, s))
				h, err := cuda.Download[uint16](dst)
				ok(t, err)
				for i := range c.rows {
					for j := range c.ldd {
						v, w := h[i*c.ldd+j], uint16(0x7fc1)
						if j < c.cols {
							w = tensor.F32ToBF16(dy[i*c.lds+j])
						}
						if v != w {
							t.Fatalf("part %d: dst[%d][%d] = %#04x, want %#04x", partLen, i, j, v, w)
						}
					}
				}
				got := down(t, gB)
				for i, v := range got {
					if e := math.Abs(float64(v) - want[i]); e > 1e-6*math.Sqrt(scale[i])*math.Sqrt(float64(c.rows))+1e-6*math.Abs(want[i]) || v != v {
						t.Fatalf("part %d: dB[%d][%d] = %v, want %v (|Δ| %.2e)", partLen, i/c.r, i%c.r, v, want[i], e)
					}
				}
				same.check(t, partLen, got)
			}
		})
	}
	dst, f := zeros(t, d, cuda.BF16, 256), zeros(t, d, cuda.F32, 256)
	u, gB, part := zeros(t, d, cuda.F32, 256), zeros(t, d, cuda.F32, 256), zeros(t, d, cuda.F32, 1024)
	for _, c := range []struct {
		name                    string
		ldd, lds, rows, cols, r int
		src, uu, g, p           *cuda.Buffer
	}{
		{"6 columns", 8, 8, 4, 6, 4, f, u, gB, nil},
		{"stride 10", 10, 8, 4, 8, 4, f, u, gB, nil},
		{"rank 6", 8, 8, 4, 8, 6, f, u, gB, nil},
		{"rank 36", 8, 8, 4, 4, 36, f, u, gB, nil},
		{"dB over u", 8, 8, 4, 8, 4, f, u, u, nil},
		{"dB over dy", 8, 8, 4, 8, 4, f, u, f, nil},
		{"part over dB", 8, 8, 4, 8, 4, f, u, gB, gB},
		{"part over u", 8, 8, 4, 8, 4, f, u, gB, u},
	} {
		if err := d.ToBF16RowsDB(dst, c.ldd, c.src, c.lds, c.rows, c.cols, c.uu, c.r, c.g, c.p, 1); err == nil {
			t.Errorf("%s: no error", c.name)
		}
	}
	if err := d.ToBF16RowsDB(dst, 8, f, 8, 4, 8, u, 4, gB, part, 1); err != nil {
		t.Errorf("apart, aligned: %v", err)
	}
}

// TestLoRAColSums: dA_m += du_mᵀ·x̃_m for one to three adapters sharing x
// within f32's rounding of the f64 sum over the rows — x̃_m = x, or under
// LoRA dropout x under member m's own mask (Dropout's, with m's key given
// or read from the device) — in one chunk of rows (no part: into dA
// itself) and in many, the same bits on a second run; ranks 4 to 32.
func TestLoRAColSums(t *testing.T) {
	d := device(t)
	for _, c := range []struct{ rows, cols, r, members int }{{1, 8, 4, 1}, {37, 96, 8, 3}, {300, 1000, 16, 2}, {130, 520, 32, 1}, {65, 2048, 12, 3}} {
		for _, drop := range []string{"none", "base", "key"} {
			t.Run(shapeName("%dx%d_r%d_m%d_drop_%s", c.rows, c.cols, c.r, c.members, drop), func(t *testing.T) {
				n, nr, rc := c.rows*c.cols, c.rows*c.r, c.r*c.cols
				rg := rng(uint64(n + c.r + c.members))
				x, du, gA0 := randn(rg, n, 1), randn(rg, c.members*nr, 1), randn(rg, c.members*rc, 1)
				xd, dud := up(t, d, cuda.F32, x), up(t, d, cuda.F32, du)
				dr, masked := maskCase(t, d, drop, xd, n, c.members)
				want, scale := make([]float64, c.members*rc), make([]float64, c.members*rc)
				for m := range c.members {
					xm := down(t, masked[m])
					for k := range c.r {
						for j := range c.cols {
							o := m*rc + k*c.cols + j
							want[o] = float64(gA0[o])
							for i := range c.rows {
								v := float64(du[m*nr+i*c.r+k]) * float64(xm[i*c.cols+j])
								want[o] += v
								scale[o] += v * v
							}
						}
					}
				}
				var same sameInChunks
				for _, partLen := range []int{0, c.members * c.rows * rc, c.members * c.rows * rc} {
					gA := up(t, d, cuda.F32, gA0)
					var part *cuda.Buffer
					if partLen > 0 {
						part = zeros(t, d, cuda.F32, partLen)
					}
					ok(t, d.LoRAColSums(gA, xd, dud, c.rows, c.cols, c.r, c.members, part, dr))
					got := down(t, gA)
					for i, v := range got {
						if e := math.Abs(float64(v) - want[i]); e > 1e-6*math.Sqrt(scale[i])*math.Sqrt(float64(c.rows))+1e-6*math.Abs(want[i]) || v != v {
							t.Fatalf("part %d: member %d dA[%d][%d] = %v, want %v (|Δ| %.2e)", partLen, i/rc, i%rc/c.cols, i%c.cols, v, want[i], e)
						}
					}
					same.check(t, partLen, got)
				}
			})
		}
	}
	x, du, gA, part := zeros(t, d, cuda.F32, 256), zeros(t, d, cuda.F32, 256), zeros(t, d, cuda.F32, 256), zeros(t, d, cuda.F32, 1024)
	for _, c := range []struct {
		name             string
		cols, r, members int
		g, p             *cuda.Buffer
		drop             *cuda.LoRADrop
	}{
		{"6 columns", 6, 4, 1, gA, nil, nil},
		{"rank 6", 8, 6, 1, gA, nil, nil},
		{"four members", 8, 4, 4, gA, nil, nil},
		{"dA over x", 8, 4, 1, x, nil, nil},
		{"part over du", 8, 4, 1, gA, du, nil},
		{"two keys for three", 8, 4, 3, gA, nil, &cuda.LoRADrop{Bases: []uint64{1, 2}}},
	} {
		if err := d.LoRAColSums(c.g, x, du, 4, c.cols, c.r, c.members, c.p, c.drop); err == nil {
			t.Errorf("%s: no error", c.name)
		}
	}
	if err := d.LoRAColSums(gA, x, du, 4, 8, 4, 3, part, nil); err != nil {
		t.Errorf("apart, aligned: %v", err)
	}
}

// TestLoRARowSums: u_m = s·x̃_m·A_mᵀ for one to three adapters sharing x,
// and du = s·dy·B (B read transposed), within f32's rounding of the f64
// sums (1e-6 of the products' magnitude, √cols of them) — x̃_m = x, or
// under LoRA dropout x under member m's own mask (Dropout's, with m's key
// given or read from the device) — in one chunk of columns (no part) and
// in many, the same bits on a second run; ranks 1 to 32, rows past a
// warp's and columns past a chunk's.
func TestLoRARowSums(t *testing.T) {
	d := device(t)
	for _, c := range []struct {
		rows, cols, r, members int
		tr                     bool
	}{{1, 8, 1, 1, false}, {59, 320, 8, 3, false}, {37, 1000, 12, 2, false}, {33, 256, 32, 1, false}, {300, 1536, 16, 3, false},
		{1, 8, 4, 1, true}, {59, 320, 8, 1, true}, {70, 512, 16, 1, true}, {33, 256, 32, 1, true}} {
		for _, drop := range []string{"none", "base", "key"} {
			if c.tr && drop != "none" { // du's rows are dy's: no mask
				continue
			}
			t.Run(shapeName("%dx%d_r%d_m%d_T%v_drop_%s", c.rows, c.cols, c.r, c.members, c.tr, drop), func(t *testing.T) {
				const s = 0.75
				n, nr, rc := c.rows*c.cols, c.rows*c.r, c.r*c.cols
				rg := rng(uint64(n + c.r + c.members))
				x, W := randn(rg, n, 1), randn(rg, c.members*rc, 0.1)
				xd, Wd := up(t, d, cuda.F32, x), up(t, d, cuda.F32, W)
				dr, masked := maskCase(t, d, drop, xd, n, c.members)
				want, scale := make([]float64, c.members*nr), make([]float64, c.members*nr)
				for m := range c.members {
					xm := down(t, masked[m])
					for i := range c.rows {
						for k := range c.r {
							o := m*nr + i*c.r + k
							for j := range c.cols {
								w := W[m*rc+k*c.cols+j]
								if c.tr {
									w = W[j*c.r+k]
								}
								v := s * float64(xm[i*c.cols+j]) * float64(w)
								want[o] += v
								scale[o] += v * v
							}
						}
					}
				}
				var same sameInChunks
				for _, partLen := range []int{0, c.members * nr * 64, c.members * nr * 64} {
					nan := make([]float32, c.members*nr)
					for i := range nan {
						nan[i] = float32(math.NaN())
					}
					out := up(t, d, cuda.F32, nan) // set, not added to
					var part *cuda.Buffer
					if partLen > 0 {
						part = zeros(t, d, cuda.F32, partLen)
					}
					ok(t, d.LoRARowSums(out, xd, Wd, c.rows, c.cols, c.r, c.members, c.tr, s, part, dr))
					got := down(t, out)
					for i, v := range got {
						if e := math.Abs(float64(v) - want[i]); e > 1e-6*math.Sqrt(scale[i])*math.Sqrt(float64(c.cols))+1e-30 || v != v {
							t.Fatalf("part %d: member %d out[%d][%d] = %v, want %v (|Δ| %.2e)", partLen, i/nr, i%nr/c.r, i%c.r, v, want[i], e)
						}
					}
					same.check(t, partLen, got)
				}
			})
		}
	}
	x, W, out := zeros(t, d, cuda.F32, 256), zeros(t, d, cuda.F32, 256), zeros(t, d, cuda.F32, 256)
	for _, c := range []struct {
		name             string
		cols, r, members int
		tr               bool
		o, p             *cuda.Buffer
	}{
		{"6 columns", 6, 4, 1, false, out, nil},
		{"rank 33", 8, 33, 1, false, out, nil},
		{"rank 6 transposed", 8, 6, 1, true, out, nil},
		{"two members transposed", 8, 4, 2, true, out, nil},
		{"out over x", 8, 4, 1, false, x, nil},
		{"part over W", 8, 4, 1, false, out, W},
	} {
		if err := d.LoRARowSums(c.o, x, W, 4, c.cols, c.r, c.members, c.tr, 1, c.p, nil); err == nil {
			t.Errorf("%s: no error", c.name)
		}
	}
}
