//go:build cuda

package cuda

/*
#include "distill_cuda.h"
*/
import "C"

import (
	"fmt"

	"distill/core/tensor"
)

// extent is the elements a row-major operand of logical shape (rows, cols),
// stored transposed when trans, with row stride ld, spans.
func extent(trans bool, rows, cols, ld int) int {
	if trans {
		rows, cols = cols, rows
	}
	if rows == 0 || cols == 0 {
		return 0
	}
	return (rows-1)*ld + cols
}

func gemmCheck(op string, k Kind, transA, transB bool, m, n, kk int, a *Buffer, lda int, b *Buffer, ldb int, c *Buffer, ldc int) error {
	return gemmCheckC(op, k, F32, transA, transB, m, n, kk, a, lda, b, ldb, c, ldc)
}

// gemmCheckC is gemmCheck with C of kind ck.
func gemmCheckC(op string, k, ck Kind, transA, transB bool, m, n, kk int, a *Buffer, lda int, b *Buffer, ldb int, c *Buffer, ldc int) error {
	ca, ra := kk, m
	if transA {
		ca, ra = m, kk
	}
	cb, rb := n, kk
	if transB {
		cb, rb = kk, n
	}
	ea, eb, ec := extent(transA, m, kk, lda), extent(transB, kk, n, ldb), extent(false, m, n, ldc)
	// C apart from A and B: cuBLAS reads them while it writes C, so an
	// overlap races on the GPU, silently.
	return check(op).true(lda >= ca && ldb >= cb && ldc >= n, "strides lda=%d ldb=%d ldc=%d below the rows %d, %d, %d (A %d×%d, B %d×%d)", lda, ldb, ldc, ca, cb, n, ra, ca, rb, cb).
		buf("A", a, k, ea).buf("B", b, k, eb).buf("C", c, ck, ec).
		written([]span{{"C", c, ec}}, span{"A", a, ea}, span{"B", b, eb}).err
}

// GemmF32 is tensor.Gemm on the device: row-major C(m, n) = alpha·op(A)·op(B)
// + beta·C, all f32 (cuBLAS SGEMM, TF32 off).
func (d *Device) GemmF32(transA, transB bool, m, n, k int, alpha float32, a *Buffer, lda int, b *Buffer, ldb int, beta float32, c *Buffer, ldc int) error {
	if err := gemmCheck("gemm_f32", F32, transA, transB, m, n, k, a, lda, b, ldb, c, ldc); err != nil {
		return err
	}
	return call(func() C.int {
		return C.dc_gemm_f32(cbool(transA), cbool(transB), C.int(m), C.int(n), C.int(k), C.float(alpha),
			(*C.float)(a.ptr), C.int(lda), (*C.float)(b.ptr), C.int(ldb), C.float(beta), (*C.float)(c.ptr), C.int(ldc))
	})
}

// GemmTF32 is GemmF32 on the tensor cores with its inputs rounded to TF32
// (~1e-3 relative), f32 accumulation: the adapter's rank-r products in
// training, where f32 SGEMM would cost a third of the step.
func (d *Device) GemmTF32(transA, transB bool, m, n, k int, alpha float32, a *Buffer, lda int, b *Buffer, ldb int, beta float32, c *Buffer, ldc int) error {
	if err := gemmCheck("gemm_tf32", F32, transA, transB, m, n, k, a, lda, b, ldb, c, ldc); err != nil {
		return err
	}
	return call(func() C.int {
		return C.dc_gemm_tf32(cbool(transA), cbool(transB), C.int(m), C.int(n), C.int(k), C.float(alpha),
			(*C.float)(a.ptr), C.int(lda), (*C.float)(b.ptr), C.int(ldb), C.float(beta), (*C.float)(c.ptr), C.int(ldc))
	})
}

// Batch is a strided batch of GEMM operands: Count products, the b-th's
// A, B and C at element offsets b·SA, b·SB, b·SC of the buffers given (a
// stride 0 shares that operand).
type Batch struct {
	Count      int
	SA, SB, SC int
}

// GemmTF32Batched is GemmTF32 over a strided batch in one launch
// (cublasGemmStridedBatchedEx): the adapter's products for modules that
// share their input. Each product's C must not overlap another's.
func (d *Device) GemmTF32Batched(transA, transB bool, m, n, k int, alpha float32, a *Buffer, lda int, b *Buffer, ldb int, beta float32, c *Buffer, ldc int, bt Batch) error {
	if bt.Count == 0 {
		return nil
	}
	ea, eb, ec := extent(transA, m, k, lda), extent(transB, k, n, ldb), extent(false, m, n, ldc)
	last := func(e, s int) int { // the batch's extent: the last product's end
		if e == 0 {
			return 0
		}
		return e + (bt.Count-1)*s
	}
	if err := gemmCheck("gemm_tf32_batched", F32, transA, transB, m, n, k, a, lda, b, ldb, c, ldc); err != nil {
		return err
	}
	if err := check("gemm_tf32_batched").true(bt.Count > 0 && bt.SA >= 0 && bt.SB >= 0 && bt.SC >= 0,
		"batch %d with strides %d, %d, %d: want a positive count and strides ≥ 0", bt.Count, bt.SA, bt.SB, bt.SC).
		true(bt.Count == 1 || ec == 0 || bt.SC >= ec, "C's stride %d below one product's %d elements: the batch's outputs overlap", bt.SC, ec).
		buf("A", a, F32, last(ea, bt.SA)).buf("B", b, F32, last(eb, bt.SB)).buf("C", c, F32, last(ec, bt.SC)).
		written([]span{{"C", c, last(ec, bt.SC)}}, span{"A", a, last(ea, bt.SA)}, span{"B", b, last(eb, bt.SB)}).err; err != nil {
		return err
	}
	return call(func() C.int {
		return C.dc_gemm_tf32_batched(cbool(transA), cbool(transB), C.int(m), C.int(n), C.int(k), C.float(alpha),
			(*C.float)(a.ptr), C.int(lda), C.int64_t(bt.SA), (*C.float)(b.ptr), C.int(ldb), C.int64_t(bt.SB),
			C.float(beta), (*C.float)(c.ptr), C.int(ldc), C.int64_t(bt.SC), C.int(bt.Count))
	})
}

// GemmBF16 is GemmF32 with bf16 A and B: tensor cores, f32 accumulation,
// C f32 (cublasGemmEx, CUBLAS_COMPUTE_32F) — or, c in bf16, the sum rounded
// as it is stored (beta reads C widened): an output whose next reader
// takes bf16 anyway, at half the bytes.
func (d *Device) GemmBF16(transA, transB bool, m, n, k int, alpha float32, a *Buffer, lda int, b *Buffer, ldb int, beta float32, c *Buffer, ldc int) error {
	if c != nil && c.Kind == BF16 {
		if err := gemmCheckC("gemm_bf16_out", BF16, BF16, transA, transB, m, n, k, a, lda, b, ldb, c, ldc); err != nil {
			return err
		}
		return call(func() C.int {
			return C.dc_gemm_bf16_out(cbool(transA), cbool(transB), C.int(m), C.int(n), C.int(k), C.float(alpha),
				(*C.uint16_t)(a.ptr), C.int(lda), (*C.uint16_t)(b.ptr), C.int(ldb), C.float(beta), (*C.uint16_t)(c.ptr), C.int(ldc))
		})
	}
	if err := gemmCheck("gemm_bf16", BF16, transA, transB, m, n, k, a, lda, b, ldb, c, ldc); err != nil {
		return err
	}
	return call(func() C.int {
		return C.dc_gemm_bf16(cbool(transA), cbool(transB), C.int(m), C.int(n), C.int(k), C.float(alpha),
			(*C.uint16_t)(a.ptr), C.int(lda), (*C.uint16_t)(b.ptr), C.int(ldb), C.float(beta), (*C.float)(c.ptr), C.int(ldc))
	})
}

// NF4Weight is an NF4 matrix (core/quant's layout) resident on the device.
type NF4Weight struct {
	Name                                  string
	Rows, Cols                            int
	codes, absmax, qabsmax, absmax2, map2 *Buffer
	offset                                float32
}

// UploadNF4 copies an NF4 matrix's storage to the device.
func (d *Device) UploadNF4(name string, p tensor.NF4Parts) (*NF4Weight, error) {
	n := p.Rows * p.Cols
	blocks := (n + 63) / 64
	w := &NF4Weight{Name: name, Rows: p.Rows, Cols: p.Cols, offset: p.Offset}
	fail := func(err error) (*NF4Weight, error) {
		w.Free()
		return nil, fmt.Errorf("cuda: upload NF4 %s (%d×%d): %w", name, p.Rows, p.Cols, err)
	}
	if len(p.Codes) < (n+1)/2 {
		return fail(fmt.Errorf("%d code bytes, need %d", len(p.Codes), (n+1)/2))
	}
	var err error
	if w.codes, err = Upload(d, U8, p.Codes[:(n+1)/2]); err != nil {
		return fail(err)
	}
	if p.Absmax != nil {
		if len(p.Absmax) < blocks {
			return fail(fmt.Errorf("%d absmaxes, need %d", len(p.Absmax), blocks))
		}
		if w.absmax, err = Upload(d, F32, p.Absmax[:blocks]); err != nil {
			return fail(err)
		}
		return w, nil
	}
	if len(p.QAbsmax) < blocks || len(p.Absmax2) < (blocks+255)/256 || p.Map2 == nil {
		return fail(fmt.Errorf("double quant with %d codes, %d second-level absmaxes (need %d, %d) and map %v",
			len(p.QAbsmax), len(p.Absmax2), blocks, (blocks+255)/256, p.Map2 != nil))
	}
	if w.qabsmax, err = Upload(d, U8, p.QAbsmax[:blocks]); err != nil {
		return fail(err)
	}
	if w.absmax2, err = Upload(d, F32, p.Absmax2[:(blocks+255)/256]); err != nil {
		return fail(err)
	}
	if w.map2, err = Upload(d, F32, p.Map2[:]); err != nil {
		return fail(err)
	}
	return w, nil
}

// Free releases the weight's device memory.
func (w *NF4Weight) Free() {
	for _, b := range []*Buffer{w.codes, w.absmax, w.qabsmax, w.absmax2, w.map2} {
		b.Free()
	}
}

func (w *NF4Weight) c() C.dc_nf4 {
	return C.dc_nf4{
		codes: (*C.uint8_t)(addr(w.codes)), absmax: (*C.float)(addr(w.absmax)), qabsmax: (*C.uint8_t)(addr(w.qabsmax)),
		absmax2: (*C.float)(addr(w.absmax2)), map2: (*C.float)(addr(w.map2)), offset: C.float(w.offset),
		rows: C.int(w.Rows), cols: C.int(w.Cols),
	}
}

// NF4Dequant writes rows [r0, r1) of w into dst ((r1−r0)·Cols elements of
// bf16 — the tile a GEMM reads next — or f32, bit-identical to core/quant).
func (d *Device) NF4Dequant(dst *Buffer, w *NF4Weight, r0, r1 int) error {
	op := fmt.Sprintf("nf4_dequant %s rows [%d, %d) of %d×%d", w.Name, r0, r1, w.Rows, w.Cols)
	if err := check(op).true(0 <= r0 && r0 <= r1 && r1 <= w.Rows, "rows out of range").
		true(dst != nil && (dst.Kind == BF16 || dst.Kind == F32), "dst %v is not bf16 or f32", dst).err; err != nil {
		return err
	}
	if err := check(op).buf("dst", dst, dst.Kind, (r1-r0)*w.Cols).err; err != nil {
		return err
	}
	cw := w.c()
	if dst.Kind == BF16 {
		return call(func() C.int {
			return C.dc_nf4_dequant_bf16((*C.uint16_t)(dst.ptr), &cw, C.int(r0), C.int(r1), C.int64_t(w.Cols))
		})
	}
	return call(func() C.int { return C.dc_nf4_dequant_f32((*C.float)(dst.ptr), &cw, C.int(r0), C.int(r1)) })
}

// BF16Rows is a conversion NF4Stage runs beside a tile: dst's rows (ldd
// apart) get scale·src's (lds apart), cols columns each.
type BF16Rows struct {
	Dst        *Buffer
	LDD        int
	Src        *Buffer
	LDS        int
	Rows, Cols int
	Scale      float32
}

// NF4Stage dequantises all of w into tile, its rows ld ≥ Cols apart (the
// columns past Cols left to the jobs), and runs ToBF16Rows of each job (up to
// 3), in one launch where the vector dequantisation can take the tile
// (else one launch each): the adapter's fused GEMM's tile (W with s·B, or
// W then A) and operands (u beside x, or dy and du) at once.
func (d *Device) NF4Stage(tile *Buffer, w *NF4Weight, ld int, jobs ...BF16Rows) error {
	// Named on failure only: a step stages each projection twice.
	named := func(err error) error {
		return fmt.Errorf("%w (nf4_stage %s, %d×%d, ld %d, %d conversions)", err, w.Name, w.Rows, w.Cols, ld, len(jobs))
	}
	c := check("nf4_stage").true(ld >= w.Cols, "row stride %d below the %d columns", ld, w.Cols).
		true(len(jobs) <= 3, "%d conversions, at most 3", len(jobs)).buf("tile", tile, BF16, extent(false, w.Rows, w.Cols, ld))
	if c.err != nil {
		return named(c.err)
	}
	cj, c := bf16Jobs(c, jobs)
	if c.err != nil {
		return named(c.err)
	}
	cw := w.c()
	if err := call(func() C.int {
		return C.dc_nf4_stage((*C.uint16_t)(tile.ptr), &cw, C.int64_t(ld), &cj[0], C.int(len(jobs)))
	}); err != nil {
		return named(err)
	}
	return nil
}

// bf16Jobs checks up to 4 conversions (the caller bounds the count) and
// gives them as the kernels take them: c with the first fault, if any.
func bf16Jobs(c *need, jobs []BF16Rows) ([4]C.dc_bf16_rows, *need) {
	var cj [4]C.dc_bf16_rows
	for i, j := range jobs {
		if c.err != nil || i >= len(cj) {
			break
		}
		c = c.true(j.LDD >= j.Cols && j.LDS >= j.Cols, "job %d: strides %d, %d below the %d columns", i, j.LDD, j.LDS, j.Cols).
			buf("a job's dst", j.Dst, BF16, extent(false, j.Rows, j.Cols, j.LDD)).
			buf("a job's src", j.Src, F32, extent(false, j.Rows, j.Cols, j.LDS))
		if c.err == nil {
			cj[i] = C.dc_bf16_rows{dst: (*C.uint16_t)(j.Dst.ptr), ldd: C.int64_t(j.LDD), src: (*C.float)(j.Src.ptr),
				lds: C.int64_t(j.LDS), rows: C.int64_t(j.Rows), cols: C.int64_t(j.Cols), scale: C.float(j.Scale)}
		}
	}
	return cj, c
}

// NF4MatVec: y(Rows) = W·x(Cols), dequantising in registers (decode).
func (d *Device) NF4MatVec(y *Buffer, w *NF4Weight, x *Buffer) error {
	if err := check("nf4_matvec "+w.Name).buf("y", y, F32, w.Rows).buf("x", x, F32, w.Cols).err; err != nil {
		return err
	}
	cw := w.c()
	return call(func() C.int { return C.dc_nf4_matvec((*C.float)(y.ptr), &cw, (*C.float)(x.ptr)) })
}

// BF16MatVec: y(rows) = W(rows, cols)·x for a bf16 W.
func (d *Device) BF16MatVec(y, w, x *Buffer, rows, cols int) error {
	if err := check("bf16_matvec").buf("y", y, F32, rows).buf("W", w, BF16, rows*cols).buf("x", x, F32, cols).err; err != nil {
		return err
	}
	return call(func() C.int {
		return C.dc_bf16_matvec((*C.float)(y.ptr), (*C.uint16_t)(w.ptr), (*C.float)(x.ptr), C.int(rows), C.int(cols))
	})
}
