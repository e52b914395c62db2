//go:build cuda

package cuda

/*
#include "distill_cuda.h"
*/
import "C"

// SwiGLUFwdU is the SwiGLU forward (SwiGLUFwdKeep's outputs a, ab, gb, ub
// from f32 g and u — each optional; or, g and u bf16, SwiGLUFwdFromBF16's
// a and ab) that also sets u(rows, r) = ã·Aᵀ for A (r, cols), r ≤ 32: the
// down projection's adapter input, summed in f32 while a is in registers,
// where a GEMM would read all of a again. ã = a, or under LoRA dropout
// (drop, one member: Bases[0] or Keys' one key) a∘mask/(1−p) as Dropout
// makes it; a and ab stay unmasked (the base's input). part (f32) holds
// the column chunks' sums (more chunks, more of the device busy:
// ~rows·r·8 floats is ample; 0 runs one chunk); cols a multiple of 4.
func (d *Device) SwiGLUFwdU(a, ab, gb, ub, g, u, A, uOut, part *Buffer, rows, cols, r int, drop *LoRADrop) error {
	n := rows * cols
	c := check("swiglu_u").true(cols%4 == 0 && cols > 0 && r >= 1 && r <= 32, "%d columns, rank %d: want a positive multiple of 4 and 1 ≤ r ≤ 32", cols, r).
		opt("a", a, F32, n).opt("ab", ab, BF16, n).buf("A", A, F32, r*cols).buf("uOut", uOut, F32, rows*r).opt("part", part, F32, 0)
	b16 := g != nil && g.Kind == BF16
	if b16 {
		c = c.buf("g", g, BF16, n).buf("u", u, BF16, n).true(gb == nil && ub == nil, "gb, ub from f32 g and u only")
	} else {
		c = c.buf("g", g, F32, n).buf("u", u, F32, n).opt("gb", gb, BF16, n).opt("ub", ub, BF16, n).true((gb == nil) == (ub == nil), "gb and ub go together")
	}
	c = c.written([]span{{"a", a, n}, {"ab", ab, n}, {"gb", gb, n}, {"ub", ub, n}, {"uOut", uOut, rows * r}, {"part", part, lenOf(part)}},
		span{"g", g, n}, span{"u", u, n}, span{"A", A, r * cols})
	m, c := c.masks(drop, 1)
	if c.err != nil {
		return c.err
	}
	return call(func() C.int {
		return C.dc_swiglu_u((*C.float)(addr(a)), (*C.uint16_t)(addr(ab)), (*C.uint16_t)(addr(gb)), (*C.uint16_t)(addr(ub)),
			g.ptr, u.ptr, cbool(b16), (*C.float)(A.ptr), C.int(r), (*C.float)(uOut.ptr), (*C.float)(addr(part)), C.int64_t(lenOf(part)),
			C.int64_t(rows), C.int64_t(cols), m.on, m.bases[0], m.keys, m.thresh, m.keep)
	})
}

// The adapter's skinny products taken inside passes that read their
// operand anyway (lora_sums.cu, swiglu.cu): the down projection's u and dA
// while a = silu(g)·up is in registers (devnet's mlp_down_u.go,
// mlp_down_da.go), a projection's dB while its dy is rounded to bf16
// (lora_db.go), and dA, u and du in one pass over the input (lora_da.go,
// lora_u.go).

// SwiGLUDA is the down projection's adapter gradient that SwiGLUBwdRowsDA
// takes as it makes a = silu(g)·u again: GA (R, cols) += DUᵀ·ã, DU (rows,
// R) the adapter's s·dy·B, ã = a — or, under LoRA dropout (Drop, one
// member: Bases[0], or Keys' one key), a∘mask/(1−p) as Dropout makes it
// over the rows × cols elements. R a multiple of 4 up to 32. Part (f32,
// optional) holds the row chunks' sums, ~rows/64·R·cols floats for the
// device's fill; nil (or too small for two) adds one chunk into GA itself.
type SwiGLUDA struct {
	GA, DU, Part *Buffer
	R            int
	Drop         *LoRADrop
}

// SwiGLUBwdRowsDA is SwiGLUBwdRows (no a; cols and ld multiples of 4, every
// row 16-byte aligned, bf16 ones 8-byte) that also adds the down adapter's
// dA (SwiGLUDA), where a GEMM read all of a — f32, the layer's widest
// activation — and, kept compact, a was written for it. The sums are f32
// over rows in order, the chunks added in order: the same bits every run.
func (d *Device) SwiGLUBwdRowsDA(dgb, dub *Buffer, ld int, da, g, u *Buffer, rows, cols int, ga SwiGLUDA, jobs ...BF16Rows) error {
	c, b16, outs, ins := swigluRowsCheck("swiglu_bwd_da", dgb, dub, ld, nil, da, g, u, rows, cols, jobs)
	r := ga.R
	c = c.true(r >= 4 && r <= 32 && r%4 == 0, "rank %d: want a multiple of 4 up to 32", r).
		true(cols%4 == 0 && ld%4 == 0, "%d columns, stride %d: want multiples of 4", cols, ld).
		buf("GA", ga.GA, F32, r*cols).buf("DU", ga.DU, F32, rows*r).opt("Part", ga.Part, F32, 0)
	du := span{"DU", ga.DU, rows * r}
	for _, o := range outs {
		c = c.written([]span{o}, du)
	}
	c = c.written([]span{{"GA", ga.GA, r * cols}, {"Part", ga.Part, lenOf(ga.Part)}}, append(append(outs, ins...), du)...)
	m, c := c.masks(ga.Drop, 1)
	cj, c := bf16Jobs(c, jobs)
	if c.err != nil {
		return c.err
	}
	return call(func() C.int {
		return C.dc_swiglu_bwd_da((*C.uint16_t)(dgb.ptr), (*C.uint16_t)(dub.ptr), C.int64_t(ld), (*C.float)(da.ptr),
			g.ptr, u.ptr, cbool(b16), C.int64_t(rows), C.int64_t(cols), (*C.float)(ga.GA.ptr), (*C.float)(ga.DU.ptr), C.int(r),
			(*C.float)(addr(ga.Part)), C.int64_t(lenOf(ga.Part)), m.on, m.bases[0], m.keys, m.thresh, m.keep, &cj[0], C.int(len(jobs)))
	})
}

// ToBF16RowsDB is ToBF16Rows (scale 1) of a projection's dy that also adds
// its adapter's dB (cols × r) += s·dyᵀ·u, u (rows, r) the adapter's forward
// input — the sums taken as dy passes on its way to bf16, where a TF32
// GEMM read dy again. cols, both strides and r multiples of 4 (r ≤ 32),
// every row 16-byte aligned (dst's 8-byte). part (f32, optional) holds the
// row chunks' sums, ~rows/64·r·cols floats for the device's fill; nil adds
// one chunk into gB itself. f32 sums over rows in order, the chunks in
// order: the same bits every run.
func (d *Device) ToBF16RowsDB(dst *Buffer, ldd int, src *Buffer, lds, rows, cols int, u *Buffer, r int, gB, part *Buffer, s float32) error {
	e, es := extent(false, rows, cols, ldd), extent(false, rows, cols, lds)
	c := check("bf16_rows_db").true(ldd >= cols && lds >= cols, "strides %d, %d below the %d columns", ldd, lds, cols).
		true(cols%4 == 0 && ldd%4 == 0 && lds%4 == 0, "%d columns, strides %d, %d: want multiples of 4", cols, ldd, lds).
		true(r >= 4 && r <= 32 && r%4 == 0, "rank %d: want a multiple of 4 up to 32", r).
		buf("dst", dst, BF16, e).buf("src", src, F32, es).buf("u", u, F32, rows*r).buf("gB", gB, F32, cols*r).opt("part", part, F32, 0).
		written([]span{{"dst", dst, e}, {"gB", gB, cols * r}, {"part", part, lenOf(part)}}, span{"src", src, es}, span{"u", u, rows * r})
	if c.err != nil {
		return c.err
	}
	return call(func() C.int {
		return C.dc_bf16_rows_db((*C.uint16_t)(dst.ptr), C.int64_t(ldd), (*C.float)(src.ptr), C.int64_t(lds), C.int64_t(rows),
			C.int64_t(cols), (*C.float)(u.ptr), C.int(r), (*C.float)(gB.ptr), (*C.float)(addr(part)), C.int64_t(lenOf(part)), C.float(s))
	})
}

// LoRAColSums adds dA_m (r × cols) += du_mᵀ·x̃_m for members m (1 to 3)
// adapters that share their input x (rows × cols): du_m (rows × r) at du's
// element m·rows·r, dA_m at gA's m·r·cols (a group's A's lie back to back);
// x̃_m = x, or under LoRA dropout (drop: one key a member, Bases or Keys) x
// under member m's mask as Dropout makes it — in one pass over x (each
// member's blocks read it), where a TF32 GEMM (a batch of them) read it, or
// its masked copies, again. cols and r multiples of 4 (r ≤ 32), rows
// 16-byte aligned. part (f32, optional) holds the row chunks' sums,
// ~members·rows/64·r·cols floats for the device's fill; nil adds one chunk
// into dA itself. f32 sums over rows in order, the chunks in order.
func (d *Device) LoRAColSums(gA, x, du *Buffer, rows, cols, r, members int, part *Buffer, drop *LoRADrop) error {
	c := check("lora_col_sums").true(cols%4 == 0, "%d columns: want a multiple of 4", cols).
		true(r >= 4 && r <= 32 && r%4 == 0, "rank %d: want a multiple of 4 up to 32", r).
		true(members >= 1 && members <= 3, "%d members (1 to 3)", members).
		buf("gA", gA, F32, members*r*cols).buf("x", x, F32, rows*cols).buf("du", du, F32, members*rows*r).opt("part", part, F32, 0).
		written([]span{{"gA", gA, members * r * cols}, {"part", part, lenOf(part)}}, span{"x", x, rows * cols}, span{"du", du, members * rows * r})
	mk, c := c.masks(drop, members)
	if c.err != nil {
		return c.err
	}
	return call(func() C.int {
		return C.dc_lora_col_sums((*C.float)(gA.ptr), (*C.float)(x.ptr), (*C.float)(du.ptr), C.int64_t(rows), C.int64_t(cols),
			C.int(r), C.int(members), (*C.float)(addr(part)), C.int64_t(lenOf(part)), mk.on, &mk.bases[0], mk.keys, mk.thresh, mk.keep)
	})
}

// LoRARowSums sets out_m (rows × r) = s·x̃_m·W_mᵀ for members m (1 to 3)
// adapters that share their input x (rows × cols): W_m (r × cols) at W's
// element m·r·cols — their A's back to back: u — and out_m at out's
// m·rows·r; or, transposed (one member), W (cols × r) — a B: du = s·dy·B.
// x̃_m = x, or under LoRA dropout (drop: one key a member) x under member
// m's mask as Dropout makes it — in one pass over x (each member's blocks
// read it), where a TF32 GEMM (a batch of them) read it, or its masked
// copies, again. cols a multiple of 4, r ≤ 32 (a multiple of 4
// transposed), x and W 16-byte aligned. part (f32, optional) holds the
// column chunks' sums (~members·rows·r·8 floats is ample); nil runs one
// chunk. Each row's sums in f32 in a fixed order: the same bits every run.
func (d *Device) LoRARowSums(out, x, W *Buffer, rows, cols, r, members int, transposed bool, s float32, part *Buffer, drop *LoRADrop) error {
	c := check("lora_row_sums").true(cols%4 == 0 && cols > 0, "%d columns: want a positive multiple of 4", cols).
		true(r >= 1 && r <= 32 && (!transposed || r%4 == 0), "rank %d: want 1 to 32 (a multiple of 4 transposed)", r).
		true(members >= 1 && members <= 3 && (!transposed || members == 1), "%d members (1 to 3; 1 transposed)", members).
		buf("out", out, F32, members*rows*r).buf("x", x, F32, rows*cols).buf("W", W, F32, members*r*cols).opt("part", part, F32, 0).
		written([]span{{"out", out, members * rows * r}, {"part", part, lenOf(part)}}, span{"x", x, rows * cols}, span{"W", W, members * r * cols})
	mk, c := c.masks(drop, members)
	if c.err != nil {
		return c.err
	}
	return call(func() C.int {
		return C.dc_lora_row_sums((*C.float)(out.ptr), (*C.float)(x.ptr), (*C.float)(W.ptr), C.int64_t(rows), C.int64_t(cols),
			C.int(r), C.int(members), cbool(transposed), C.float(s), (*C.float)(addr(part)), C.int64_t(lenOf(part)),
			mk.on, &mk.bases[0], mk.keys, mk.thresh, mk.keep)
	})
}

// cMasks is LoRA dropout's masks of up to 3 modules as the sums kernels take them.
type cMasks struct {
	on     C.int
	bases  [3]C.uint64_t
	keys   *C.uint64_t
	thresh C.uint64_t
	keep   C.float
}

// masks checks a LoRADrop of members modules (nil: no masks) and returns it for C.
func (c *need) masks(drop *LoRADrop, members int) (cMasks, *need) {
	mk := cMasks{keep: 1}
	if drop == nil {
		return mk, c
	}
	if drop.Keys != nil {
		c = c.buf("drop's keys", drop.Keys, U64, members)
	} else {
		c = c.true(len(drop.Bases) == members, "%d keys for %d members", len(drop.Bases), members)
	}
	if c.err != nil {
		return mk, c
	}
	mk.on, mk.thresh, mk.keep = 1, C.uint64_t(drop.Thresh), C.float(drop.Keep)
	if drop.Keys != nil {
		mk.keys = (*C.uint64_t)(drop.Keys.ptr)
		return mk, c
	}
	for m, b := range drop.Bases { // as many as members, at most 3 (checked)
		mk.bases[m] = C.uint64_t(b)
	}
	return mk, c
}

// lenOf is a buffer's length, 0 for nil.
func lenOf(b *Buffer) int {
	if b == nil {
		return 0
	}
	return b.Len
}
