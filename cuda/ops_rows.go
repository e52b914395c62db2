//go:build cuda

package cuda

/*
#include "distill_cuda.h"
*/
import "C"

// GatherRows sets dst(k, d) to rows idx (i32, k) of src; an index outside
// src's rows gathers a NaN row.
func (d *Device) GatherRows(dst, src, idx *Buffer, k, dim int) error {
	if err := check("gather_rows").true(dim > 0, "row width %d", dim).buf("dst", dst, F32, k*dim).buf("src", src, F32, dim).buf("idx", idx, I32, k).err; err != nil {
		return err
	}
	return call(func() C.int {
		return C.dc_gather_rows((*C.float)(dst.ptr), (*C.float)(src.ptr), (*C.int32_t)(idx.ptr), C.int(k), C.int(dim), C.int(src.Len/dim))
	})
}

// ScatterRows sets rows idx (i32, k) of dst to src(k, d); an index outside
// dst's rows writes nothing.
func (d *Device) ScatterRows(dst, src, idx *Buffer, k, dim int) error {
	if err := check("scatter_rows").true(dim > 0, "row width %d", dim).buf("dst", dst, F32, dim).buf("src", src, F32, k*dim).buf("idx", idx, I32, k).err; err != nil {
		return err
	}
	return call(func() C.int {
		return C.dc_scatter_rows((*C.float)(dst.ptr), (*C.float)(src.ptr), (*C.int32_t)(idx.ptr), C.int(k), C.int(dim), C.int(dst.Len/dim))
	})
}

// ScaleRows multiplies rows idx (i32, k) of x by scale (f32, k); an index
// outside x's rows scales nothing.
func (d *Device) ScaleRows(x, idx, scale *Buffer, k, dim int) error {
	if err := check("scale_rows").true(dim > 0, "row width %d", dim).buf("x", x, F32, dim).buf("idx", idx, I32, k).buf("scale", scale, F32, k).err; err != nil {
		return err
	}
	return call(func() C.int {
		return C.dc_scale_rows((*C.float)(x.ptr), (*C.int32_t)(idx.ptr), (*C.float)(scale.ptr), C.int(k), C.int(dim), C.int(x.Len/dim))
	})
}

// Dropout sets dst = x·mask/(1−p) over n elements, element i dropped when
// SplitMix64(base+i) < thresh: core/train's LoRA dropout, bit for bit.
func (d *Device) Dropout(dst, x *Buffer, n int, base, thresh uint64, keep float32) error {
	if err := check("dropout").buf("dst", dst, F32, n).buf("x", x, F32, n).err; err != nil {
		return err
	}
	return call(func() C.int {
		return C.dc_dropout((*C.float)(dst.ptr), (*C.float)(x.ptr), C.int64_t(n), C.uint64_t(base), nil, C.uint64_t(thresh), C.float(keep))
	})
}

// DropoutAdd adds g·mask/(1−p) to dx: the gradient through Dropout's mask.
func (d *Device) DropoutAdd(dx, g *Buffer, n int, base, thresh uint64, keep float32) error {
	if err := check("dropout_add").buf("dx", dx, F32, n).buf("g", g, F32, n).err; err != nil {
		return err
	}
	return call(func() C.int {
		return C.dc_dropout_add((*C.float)(dx.ptr), (*C.float)(g.ptr), C.int64_t(n), C.uint64_t(base), nil, C.uint64_t(thresh), C.float(keep))
	})
}

// DropoutKeyed is Dropout with its key read by the kernel from key (U64, one
// element) on the device: a recorded step (Capture) replays the same launch
// with each step's key written there.
func (d *Device) DropoutKeyed(dst, x *Buffer, n int, key *Buffer, thresh uint64, keep float32) error {
	if err := check("dropout").buf("dst", dst, F32, n).buf("x", x, F32, n).buf("key", key, U64, 1).err; err != nil {
		return err
	}
	return call(func() C.int {
		return C.dc_dropout((*C.float)(dst.ptr), (*C.float)(x.ptr), C.int64_t(n), 0, (*C.uint64_t)(key.ptr), C.uint64_t(thresh), C.float(keep))
	})
}

// DropoutAddKeyed is DropoutAdd with its key read from key, as DropoutKeyed.
func (d *Device) DropoutAddKeyed(dx, g *Buffer, n int, key *Buffer, thresh uint64, keep float32) error {
	if err := check("dropout_add").buf("dx", dx, F32, n).buf("g", g, F32, n).buf("key", key, U64, 1).err; err != nil {
		return err
	}
	return call(func() C.int {
		return C.dc_dropout_add((*C.float)(dx.ptr), (*C.float)(g.ptr), C.int64_t(n), 0, (*C.uint64_t)(key.ptr), C.uint64_t(thresh), C.float(keep))
	})
}

// LoRADrop is the masks of a group's LoRADropoutDX: member m's key
// Bases[m], or, in a recorded step, Keys (U64, one a member) read by the
// kernel; Thresh and Keep as Dropout takes them.
type LoRADrop struct {
	Bases  []uint64
	Keys   *Buffer
	Thresh uint64
	Keep   float32
}

// LoRADropoutDX adds to dx(n, in) the adapter's term of the input gradient
// under LoRA dropout for members (1 to 3) modules that share x: Σ_m
// (du_m·A_m)∘mask_m·keep, du_m (n, r) at du's element m·n·r, A_m (r, in) at
// A's m·r·in, mask_m DropoutAdd's with member m's key — in one pass over dx,
// each member's product summed over k in order and added as DropoutAdd adds
// it, the members in order (one launch a member gives the same dx). Ranks
// up to 512: a block stages 16 rows of du in shared memory.
func (d *Device) LoRADropoutDX(dx, du, A *Buffer, n, in, r, members int, drop LoRADrop) error {
	c := check("lora_dropout_dx").true(members >= 1 && members <= 3, "%d members (1 to 3)", members).
		true(r > 0 && r <= 512 && in > 0 && n >= 0 && n <= 65535*16, "n %d, in %d, r %d (r 1 to 512, n to 65,535 blocks of 16 rows)", n, in, r).
		buf("dx", dx, F32, n*in).buf("du", du, F32, members*n*r).buf("A", A, F32, members*r*in).
		written([]span{{"dx", dx, n * in}}, span{"du", du, members * n * r}, span{"A", A, members * r * in})
	mk, c := c.masks(&drop, members)
	if c.err != nil {
		return c.err
	}
	return call(func() C.int {
		return C.dc_lora_dropout_dx((*C.float)(dx.ptr), (*C.float)(du.ptr), C.int64_t(n*r), (*C.float)(A.ptr), C.int64_t(r*in),
			C.int(n), C.int(in), C.int(r), C.int(members), &mk.bases[0], mk.keys, mk.thresh, mk.keep)
	})
}
