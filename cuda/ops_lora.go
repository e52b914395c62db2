//go:build cuda

package cuda

/*
#include "distill_cuda.h"
*/
import "C"

import "fmt"

// The adapter's skinny products (kernels/lora.cu): one side of 1–32 (the
// rank), the others of thousands, where cuBLAS reaches a small share of the
// bandwidth. f32 FMAs in a fixed order.

// LoRATakes says whether LoRARows and LoRACols take rank r over k columns
// (r ≤ 32, k a multiple of 4); other shapes go to the GEMMs.
func LoRATakes(r, k int) bool { return C.dc_lora_takes(C.int(r), C.int(k)) != 0 }

// LoRARows: out(n, r) = s·X(n, k)·Wᵀ — the adapter's A (r, k) as it lies
// (transposed false), or its B (k, r) read transposed (transposed true: dy·B).
// X must be 16-byte aligned (a Buffer's start is; a view at a multiple of 4
// floats is).
func (d *Device) LoRARows(out, x, w *Buffer, n, r, k int, transposed bool, s float32) error {
	if err := check(fmt.Sprintf("lora_rows(n=%d, r=%d, k=%d)", n, r, k)).true(LoRATakes(r, k), "rank or width not taken").
		buf("out", out, F32, n*r).buf("x", x, F32, n*k).buf("w", w, F32, r*k).err; err != nil {
		return err
	}
	return call(func() C.int {
		return C.dc_lora_rows((*C.float)(out.ptr), (*C.float)(x.ptr), (*C.float)(w.ptr), cbool(transposed),
			C.int(n), C.int(r), C.int(k), C.float(s))
	})
}

// LoRAColsScratch is the f32 elements LoRACols can use to split the sum
// over n tokens across blocks (0: it would not split).
func LoRAColsScratch(n, k, r int) int {
	return int(C.dc_lora_cols_scratch(C.int(n), C.int(k), C.int(r)))
}

// LoRACols adds s·Xᵀ·U to c: c(j, q) += s·Σ_i X(i, j)·U(i, q) for X (n, k),
// U (n, r); c is (k, r) (the adapter's dB) or, transposed, (r, k) (its dA).
// scratch (optional, f32) lets the token sum split across blocks when the
// columns alone would leave the device idle; the splits are added in order.
func (d *Device) LoRACols(c, x, u *Buffer, n, k, r int, transposed bool, s float32, scratch *Buffer) error {
	cj, ck := int64(r), int64(1)
	if transposed {
		cj, ck = 1, int64(k)
	}
	if err := check(fmt.Sprintf("lora_cols(n=%d, k=%d, r=%d)", n, k, r)).true(r >= 1 && r <= 32, "rank not taken").
		buf("c", c, F32, k*r).buf("x", x, F32, n*k).buf("u", u, F32, n*r).opt("scratch", scratch, F32, 0).err; err != nil {
		return err
	}
	sl := 0
	if scratch != nil {
		sl = scratch.Len
	}
	return call(func() C.int {
		return C.dc_lora_cols((*C.float)(c.ptr), C.int64_t(cj), C.int64_t(ck), (*C.float)(x.ptr), (*C.float)(u.ptr),
			C.int(n), C.int(k), C.int(r), C.float(s), (*C.float)(addr(scratch)), C.int64_t(sl))
	})
}
