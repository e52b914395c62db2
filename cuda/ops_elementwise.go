//go:build cuda

package cuda

/*
#include "distill_cuda.h"
*/
import "C"

// The element-wise ops on device buffers. Each checks kinds and lengths
// before launching and returns errors naming the op and the shapes; the
// kernels run asynchronously on the device's stream.

// RMSNormFwd: out(rows, d) = x·rstd·w, rstd(rows) saved when non-nil.
func (d *Device) RMSNormFwd(out, rstd, x, w *Buffer, rows, dim int, eps float32) error {
	n := rows * dim
	if err := check("rmsnorm_fwd").buf("out", out, F32, n).opt("rstd", rstd, F32, rows).buf("x", x, F32, n).buf("w", w, F32, dim).err; err != nil {
		return err
	}
	return call(func() C.int {
		return C.dc_rmsnorm_fwd((*C.float)(out.ptr), (*C.float)(addr(rstd)), (*C.float)(x.ptr), (*C.float)(w.ptr), C.int(rows), C.int(dim), C.float(eps))
	})
}

// RMSNormFwdBF16 is RMSNormFwd that also rounds out into ob's rows (ldb ≥
// dim apart, the rest of each row untouched) as bf16, in the same pass:
// the next GEMM's operand, as ToBF16Rows would make it from out, bit for
// bit, without reading out again.
func (d *Device) RMSNormFwdBF16(out, rstd, x, w *Buffer, rows, dim int, eps float32, ob *Buffer, ldb int) error {
	n := rows * dim
	if err := check("rmsnorm_fwd").buf("out", out, F32, n).opt("rstd", rstd, F32, rows).buf("x", x, F32, n).buf("w", w, F32, dim).
		true(ldb >= dim, "bf16 row stride %d below the %d columns", ldb, dim).buf("ob", ob, BF16, extent(false, rows, dim, ldb)).err; err != nil {
		return err
	}
	return call(func() C.int {
		return C.dc_rmsnorm_fwd_bf16((*C.float)(out.ptr), (*C.float)(addr(rstd)), (*C.float)(x.ptr), (*C.float)(w.ptr), C.int(rows), C.int(dim), C.float(eps),
			(*C.uint16_t)(ob.ptr), C.int64_t(ldb))
	})
}

// RMSNormBwd adds the gradient through the norm to dx(rows, d) and, when dw
// is non-nil, the weight gradient to dw(d).
func (d *Device) RMSNormBwd(dx, dw, dy, x, w, rstd *Buffer, rows, dim int) error {
	n := rows * dim
	if err := check("rmsnorm_bwd").buf("dx", dx, F32, n).opt("dw", dw, F32, dim).buf("dy", dy, F32, n).buf("x", x, F32, n).buf("w", w, F32, dim).buf("rstd", rstd, F32, rows).err; err != nil {
		return err
	}
	return call(func() C.int {
		return C.dc_rmsnorm_bwd((*C.float)(dx.ptr), (*C.float)(addr(dw)), (*C.float)(dy.ptr), (*C.float)(x.ptr), (*C.float)(w.ptr), (*C.float)(rstd.ptr), C.int(rows), C.int(dim))
	})
}

// RoPE rotates n rows of x (each nHeads × hd) at positions pos (i32, n) by
// the (maxPos, hd/2) tables; inverse is the backward.
func (d *Device) RoPE(x, pos, cos, sin *Buffer, n, nHeads, hd, maxPos int, inverse bool) error {
	half := hd / 2
	if err := check("rope").true(hd%2 == 0, "head dim %d is odd", hd).buf("x", x, F32, n*nHeads*hd).buf("pos", pos, I32, n).buf("cos", cos, F32, maxPos*half).buf("sin", sin, F32, maxPos*half).err; err != nil {
		return err
	}
	return call(func() C.int {
		return C.dc_rope((*C.float)(x.ptr), (*C.int32_t)(pos.ptr), (*C.float)(cos.ptr), (*C.float)(sin.ptr), C.int(n), C.int(nHeads), C.int(hd), C.int(maxPos), cbool(inverse))
	})
}

// SwiGLUFwd: a = silu(g)·u over n elements (a may be g).
func (d *Device) SwiGLUFwd(a, g, u *Buffer, n int) error { return d.SwiGLUFwdBF16(a, nil, g, u, n) }

// SwiGLUFwdBF16 is SwiGLUFwd that also writes a rounded to bf16 into ab
// (when not nil): the next GEMM's operand without a pass of its own.
func (d *Device) SwiGLUFwdBF16(a, ab, g, u *Buffer, n int) error {
	return d.SwiGLUFwdKeep(a, ab, nil, nil, g, u, n)
}

// SwiGLUFwdKeep is SwiGLUFwdBF16 that also rounds g and u into gb and ub
// (both, or neither): the bf16 copies a layer keeps for its backward
// (SwiGLUBwdFromBF16) where the f32 ones are scratch.
func (d *Device) SwiGLUFwdKeep(a, ab, gb, ub, g, u *Buffer, n int) error {
	if err := check("swiglu_fwd").buf("a", a, F32, n).opt("ab", ab, BF16, n).opt("gb", gb, BF16, n).opt("ub", ub, BF16, n).
		true((gb == nil) == (ub == nil), "gb and ub go together").buf("g", g, F32, n).buf("u", u, F32, n).err; err != nil {
		return err
	}
	return call(func() C.int {
		return C.dc_swiglu_fwd((*C.float)(a.ptr), (*C.uint16_t)(addr(ab)), (*C.uint16_t)(addr(gb)), (*C.uint16_t)(addr(ub)),
			(*C.float)(g.ptr), (*C.float)(u.ptr), C.int64_t(n))
	})
}

// SwiGLUFwdFromBF16 is SwiGLUFwdBF16 from g and u in bf16 (the gate and up
// GEMMs' output, kept as it is): a in f32 and ab in bf16, each optional.
func (d *Device) SwiGLUFwdFromBF16(a, ab, gb, ub *Buffer, n int) error {
	if err := check("swiglu_fwd_b16").opt("a", a, F32, n).opt("ab", ab, BF16, n).buf("gb", gb, BF16, n).buf("ub", ub, BF16, n).err; err != nil {
		return err
	}
	return call(func() C.int {
		return C.dc_swiglu_fwd_b16((*C.float)(addr(a)), (*C.uint16_t)(addr(ab)), (*C.uint16_t)(gb.ptr), (*C.uint16_t)(ub.ptr), C.int64_t(n))
	})
}

// SwiGLUBwd sets dg, du from da.
func (d *Device) SwiGLUBwd(dg, du, da, g, u *Buffer, n int) error {
	if err := check("swiglu_bwd").buf("dg", dg, F32, n).buf("du", du, F32, n).buf("da", da, F32, n).buf("g", g, F32, n).buf("u", u, F32, n).err; err != nil {
		return err
	}
	return call(func() C.int {
		return C.dc_swiglu_bwd((*C.float)(dg.ptr), (*C.float)(du.ptr), (*C.float)(da.ptr), (*C.float)(g.ptr), (*C.float)(u.ptr), C.int64_t(n))
	})
}

// SwiGLUBwdFromBF16 is SwiGLUBwd from g and u kept in bf16; a (when not
// nil) gets silu(g)·u from them as well.
func (d *Device) SwiGLUBwdFromBF16(dg, du, a, da, gb, ub *Buffer, n int) error {
	if err := check("swiglu_bwd_b16").buf("dg", dg, F32, n).buf("du", du, F32, n).opt("a", a, F32, n).buf("da", da, F32, n).buf("gb", gb, BF16, n).buf("ub", ub, BF16, n).err; err != nil {
		return err
	}
	return call(func() C.int {
		return C.dc_swiglu_bwd_b16((*C.float)(dg.ptr), (*C.float)(du.ptr), (*C.float)(addr(a)), (*C.float)(da.ptr), (*C.uint16_t)(gb.ptr), (*C.uint16_t)(ub.ptr), C.int64_t(n))
	})
}

// SwiGLUBwdRows is SwiGLUBwd with dg and du rounded to bf16 into dgb's and
// dub's rows (ld ≥ cols apart, the rest of each row untouched) — the gate
// and up projections' GEMM operands, made where the f32 gradients would be
// written and read again by a conversion. g and u are f32, or both bf16
// (the kept copies: SwiGLUBwdFromBF16, whose a — optional — it writes too).
// Up to 4 conversions run in the same launch (the adapter's B and u in bf16).
func (d *Device) SwiGLUBwdRows(dgb, dub *Buffer, ld int, a, da, g, u *Buffer, rows, cols int, jobs ...BF16Rows) error {
	c, b16, _, _ := swigluRowsCheck("swiglu_bwd_rows", dgb, dub, ld, a, da, g, u, rows, cols, jobs)
	cj, c := bf16Jobs(c, jobs)
	if c.err != nil {
		return c.err
	}
	return call(func() C.int {
		return C.dc_swiglu_bwd_rows((*C.uint16_t)(dgb.ptr), (*C.uint16_t)(dub.ptr), C.int64_t(ld), (*C.float)(addr(a)),
			(*C.float)(da.ptr), g.ptr, u.ptr, cbool(b16), C.int64_t(rows), C.int64_t(cols), &cj[0], C.int(len(jobs)))
	})
}

// swigluRowsCheck checks SwiGLUBwdRows's arguments (and SwiGLUBwdRowsDA's
// shared ones), says whether g and u are bf16, and returns what the launch
// writes (dgb, dub, a, the jobs' rows) and reads (da, g, u, the jobs'
// sources), each held apart from the other writes and every read — the
// jobs' rows aside from one another: a job may fill columns beside
// another's.
func swigluRowsCheck(op string, dgb, dub *Buffer, ld int, a, da, g, u *Buffer, rows, cols int, jobs []BF16Rows) (c *need, b16 bool, outs, ins []span) {
	n := rows * cols
	c = check(op).true(ld >= cols, "row stride %d below the %d columns", ld, cols).
		true(len(jobs) <= 4, "%d conversions, at most 4", len(jobs)).
		buf("dgb", dgb, BF16, extent(false, rows, cols, ld)).buf("dub", dub, BF16, extent(false, rows, cols, ld)).
		buf("da", da, F32, n)
	b16 = g != nil && g.Kind == BF16
	if b16 {
		c = c.buf("g", g, BF16, n).buf("u", u, BF16, n).opt("a", a, F32, n)
	} else {
		c = c.buf("g", g, F32, n).buf("u", u, F32, n).true(a == nil, "a only from bf16 g and u")
	}
	e := extent(false, rows, cols, ld)
	outs = []span{{"dgb", dgb, e}, {"dub", dub, e}, {"a", a, n}}
	ins = []span{{"da", da, n}, {"g", g, n}, {"u", u, n}}
	var dsts []span
	for _, j := range jobs {
		dsts = append(dsts, span{"a job's dst", j.Dst, extent(false, j.Rows, j.Cols, j.LDD)})
		ins = append(ins, span{"a job's src", j.Src, extent(false, j.Rows, j.Cols, j.LDS)})
	}
	c = c.written(outs, append(dsts, ins...)...)
	for _, d := range dsts {
		c = c.written([]span{d}, ins...)
	}
	return c, b16, append(outs, dsts...), ins
}

// EmbedFwd widens rows ids (i32, n) of table (vocab, dim; f32, f16 or bf16)
// into out(n, dim). Ids must be in [0, vocab): check them on the host.
func (d *Device) EmbedFwd(out, table, ids *Buffer, n, dim, vocab int) error {
	c := check("embed_fwd").buf("out", out, F32, n*dim).buf("ids", ids, I32, n)
	if table != nil && table.Kind != F32 && table.Kind != F16 && table.Kind != BF16 {
		c.true(false, "table is %s, need f32, f16 or bf16", table)
	} else if table != nil {
		c.buf("table", table, table.Kind, vocab*dim)
	} else {
		c.buf("table", table, F32, vocab*dim)
	}
	if c.err != nil {
		return c.err
	}
	return call(func() C.int {
		return C.dc_embed_fwd((*C.float)(out.ptr), table.ptr, C.int(table.Kind), (*C.int32_t)(ids.ptr), C.int(n), C.int(dim), C.int(vocab))
	})
}

// EmbedBwd adds dout(n, dim) into rows ids of dtable(vocab, dim).
func (d *Device) EmbedBwd(dtable, dout, ids *Buffer, n, dim, vocab int) error {
	if err := check("embed_bwd").buf("dtable", dtable, F32, vocab*dim).buf("dout", dout, F32, n*dim).buf("ids", ids, I32, n).err; err != nil {
		return err
	}
	return call(func() C.int {
		return C.dc_embed_bwd((*C.float)(dtable.ptr), (*C.float)(dout.ptr), (*C.int32_t)(ids.ptr), C.int(n), C.int(dim), C.int(vocab))
	})
}

// Add: dst[i] += src[i] over n elements.
func (d *Device) Add(dst, src *Buffer, n int) error {
	if err := check("add").buf("dst", dst, F32, n).buf("src", src, F32, n).err; err != nil {
		return err
	}
	return call(func() C.int { return C.dc_add((*C.float)(dst.ptr), (*C.float)(src.ptr), C.int64_t(n)) })
}

// AddBias adds bias (n) to each of rows rows of x.
func (d *Device) AddBias(x, bias *Buffer, rows, n int) error {
	if err := check("add_bias").buf("x", x, F32, rows*n).buf("bias", bias, F32, n).err; err != nil {
		return err
	}
	return call(func() C.int { return C.dc_add_bias((*C.float)(x.ptr), (*C.float)(bias.ptr), C.int64_t(rows), C.int(n)) })
}

// ToBF16 rounds n f32 elements of src into dst (nearest even).
func (d *Device) ToBF16(dst, src *Buffer, n int) error {
	if err := check("f32_to_bf16").buf("dst", dst, BF16, n).buf("src", src, F32, n).err; err != nil {
		return err
	}
	return call(func() C.int { return C.dc_f32_to_bf16((*C.uint16_t)(dst.ptr), (*C.float)(src.ptr), C.int64_t(n)) })
}

// ToBF16Rows rounds scale·src(rows, lds) into dst(rows, ldd), cols columns
// a row (the rest of dst's rows untouched): an operand written beside other
// columns, as the adapter's fused GEMM reads x and u as one matrix.
func (d *Device) ToBF16Rows(dst *Buffer, ldd int, src *Buffer, lds, rows, cols int, scale float32) error {
	if err := check("f32_to_bf16_rows").true(ldd >= cols && lds >= cols, "strides %d, %d below the %d columns", ldd, lds, cols).
		buf("dst", dst, BF16, extent(false, rows, cols, ldd)).buf("src", src, F32, extent(false, rows, cols, lds)).err; err != nil {
		return err
	}
	return call(func() C.int {
		return C.dc_f32_to_bf16_2d((*C.uint16_t)(dst.ptr), C.int64_t(ldd), (*C.float)(src.ptr), C.int64_t(lds),
			C.int64_t(rows), C.int64_t(cols), C.float(scale))
	})
}

// ToF32 widens n bf16 or f16 elements of src into dst.
func (d *Device) ToF32(dst, src *Buffer, n int) error {
	c := check("to_f32").buf("dst", dst, F32, n)
	if src != nil && src.Kind == F16 {
		if err := c.buf("src", src, F16, n).err; err != nil {
			return err
		}
		return call(func() C.int { return C.dc_f16_to_f32((*C.float)(dst.ptr), (*C.uint16_t)(src.ptr), C.int64_t(n)) })
	}
	if err := c.buf("src", src, BF16, n).err; err != nil {
		return err
	}
	return call(func() C.int { return C.dc_bf16_to_f32((*C.float)(dst.ptr), (*C.uint16_t)(src.ptr), C.int64_t(n)) })
}
