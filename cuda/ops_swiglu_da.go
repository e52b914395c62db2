//go:build cuda

package cuda

/*
#include "distill_cuda.h"
*/
import "C"

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
	c, b16 := swigluRowsCheck("swiglu_bwd_da", dgb, dub, ld, nil, da, g, u, rows, cols, jobs)
	r, e, n := ga.R, extent(false, rows, cols, ld), rows*cols
	c = c.true(r >= 4 && r <= 32 && r%4 == 0, "rank %d: want a multiple of 4 up to 32", r).
		true(cols%4 == 0 && ld%4 == 0, "%d columns, stride %d: want multiples of 4", cols, ld).
		buf("GA", ga.GA, F32, r*cols).buf("DU", ga.DU, F32, rows*r).opt("Part", ga.Part, F32, 0)
	for _, out := range []struct {
		name string
		b    *Buffer
		n    int
	}{{"GA", ga.GA, r * cols}, {"Part", ga.Part, lenOf(ga.Part)}} {
		c = c.apart(out.name, out.b, out.n, "dgb", dgb, e).apart(out.name, out.b, out.n, "dub", dub, e).
			apart(out.name, out.b, out.n, "da", da, n).apart(out.name, out.b, out.n, "g", g, n).
			apart(out.name, out.b, out.n, "u", u, n).apart(out.name, out.b, out.n, "DU", ga.DU, rows*r)
		for _, j := range jobs {
			c = c.apart(out.name, out.b, out.n, "a job's dst", j.Dst, extent(false, j.Rows, j.Cols, j.LDD))
		}
	}
	c = c.apart("GA", ga.GA, r*cols, "Part", ga.Part, lenOf(ga.Part)).
		apart("dgb", dgb, e, "DU", ga.DU, rows*r).apart("dub", dub, e, "DU", ga.DU, rows*r)
	var drop C.int
	var base, thresh C.uint64_t
	var key *C.uint64_t
	keep := C.float(1)
	if dr := ga.Drop; dr != nil {
		if dr.Keys != nil {
			c = c.buf("Drop.Keys", dr.Keys, U64, 1)
		} else {
			c = c.true(len(dr.Bases) == 1, "%d keys for the one module", len(dr.Bases))
		}
		if c.err == nil {
			drop, thresh, keep = 1, C.uint64_t(dr.Thresh), C.float(dr.Keep)
			if dr.Keys != nil {
				key = (*C.uint64_t)(dr.Keys.ptr)
			} else {
				base = C.uint64_t(dr.Bases[0])
			}
		}
	}
	cj, c := bf16Jobs(c, jobs)
	if c.err != nil {
		return c.err
	}
	return call(func() C.int {
		return C.dc_swiglu_bwd_da((*C.uint16_t)(dgb.ptr), (*C.uint16_t)(dub.ptr), C.int64_t(ld), (*C.float)(da.ptr),
			g.ptr, u.ptr, cbool(b16), C.int64_t(rows), C.int64_t(cols), (*C.float)(ga.GA.ptr), (*C.float)(ga.DU.ptr), C.int(r),
			(*C.float)(addr(ga.Part)), C.int64_t(lenOf(ga.Part)), drop, base, key, thresh, keep, &cj[0], C.int(len(jobs)))
	})
}

// lenOf is a buffer's length, 0 for nil.
func lenOf(b *Buffer) int {
	if b == nil {
		return 0
	}
	return b.Len
}
