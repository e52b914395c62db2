//go:build cuda

package cuda

/*
#include "distill_cuda.h"
*/
import "C"

import "fmt"

// FlashHeadDim says whether AttnFwdFlash and AttnBwdFlash take head size hd.
func FlashHeadDim(hd int) bool { return C.dc_attn_flash_supports(C.int(hd)) != 0 }

// FlashBuild is how s's options build the async flash kernels on this
// device (FlashBuild).
type FlashBuild struct {
	// DKVMinBlocks: the blocks an SM the dk/dv kernel's registers are
	// capped for — 3 with DKVOccupancy at head size 128 where an SM then
	// holds three, else 1.
	DKVMinBlocks int
	// DKVStages, FwdStages, DQStages: each kernel's buffers of tiles — 3
	// with Stages3 at head size 64 or 128 where an SM holds as many blocks
	// of it as with 2, else 2 (dq's 2 with FusedDQ: no dq kernel runs).
	DKVStages, FwdStages, DQStages int
}

// FlashBuild is the async flash kernels as s's options build them on this
// device for s.NQ query rows.
func (d *Device) FlashBuild(s AttnShape) (FlashBuild, error) {
	var b [4]C.int
	err := call(func() C.int {
		return C.dc_attn_flash_build(C.int(s.HD), C.int(s.NQ), s.flags(), cbool(s.FusedDQ), &b[0])
	})
	return FlashBuild{DKVMinBlocks: int(b[0]), DKVStages: int(b[1]), FwdStages: int(b[2]), DQStages: int(b[3])}, err
}

// aligned16 is true when every buffer starts on 16 bytes (the flash
// kernels move float4s); a nil one is left to the buffer checks.
func aligned16(bs ...*Buffer) bool {
	for _, b := range bs {
		if b != nil && uintptr(b.ptr)%16 != 0 {
			return false
		}
	}
	return true
}

// AttnFwdFlash is AttnFwdGemm tiled in the flash-attention way: each tile's
// scores stay in registers (memory linear in NQ and NK, no scratch but
// AsyncTiles' bf16 copies of k and v), the
// products in bf16 on the tensor cores with f32 accumulation. Same
// arguments and results, bad ranges included; FlashHeadDim(HD) must hold
// and every buffer start on 16 bytes (a view at a multiple of 4 floats of
// an allocation). k and v may be BF16 (both: a decoder's cache mirror held
// in bf16), read as they are by the async kernel whatever AsyncTiles says —
// the results bit for bit those over their f32 originals, which every
// flash kernel rounds to bf16 before its products.
func (d *Device) AttnFwdFlash(out, lse, q, k, v *Buffer, s AttnShape) error {
	qn, kn := s.NQ*s.NH*s.HD, s.NK*s.NKV*s.HD
	kv := cacheKind(k)
	if err := s.check("attn_fwd_flash").true(FlashHeadDim(s.HD), "head size %d (flash takes 16, 32, 64, 80, 96, 128)", s.HD).
		buf("out", out, F32, qn).buf("lse", lse, F32, s.NQ*s.NH).buf("q", q, F32, qn).
		buf("k", k, kv, kn).buf("v", v, kv, kn).true(aligned16(out, q, k, v), "a buffer not on 16 bytes").err; err != nil {
		return err
	}
	if kv == BF16 {
		return call(func() C.int {
			return C.dc_attn_fwd_flash_kv16((*C.float)(out.ptr), (*C.float)(lse.ptr), (*C.float)(q.ptr), (*C.uint16_t)(k.ptr), (*C.uint16_t)(v.ptr),
				(*C.int32_t)(s.Lo.ptr), (*C.int32_t)(s.Hi.ptr), C.int(s.NQ), C.int(s.NK), C.int(s.NH), C.int(s.NKV), C.int(s.HD),
				C.int(s.MaxLen), C.float(s.Scale), s.flags())
		})
	}
	var b16 *Buffer // bf16 copies of k and v
	if s.AsyncTiles && s.NK > 0 && s.NQ > 0 {
		var err error
		if b16, err = s.Scratch.take(d, "b16", BF16, 2*kn); err != nil {
			return err
		}
		defer b16.Free() // to the pool, or nothing for a view of the scratch
	}
	return call(func() C.int {
		return C.dc_attn_fwd_flash((*C.float)(out.ptr), (*C.float)(lse.ptr), (*C.float)(q.ptr), (*C.float)(k.ptr), (*C.float)(v.ptr),
			(*C.int32_t)(s.Lo.ptr), (*C.int32_t)(s.Hi.ptr), C.int(s.NQ), C.int(s.NK), C.int(s.NH), C.int(s.NKV), C.int(s.HD),
			C.int(s.MaxLen), C.float(s.Scale), (*C.uint16_t)(addr(b16)), s.flags())
	})
}

// AttnBwdFlash is AttnBwdGemm tiled as AttnFwdFlash: dq, dk and dv are set
// (not accumulated). Its scratch, from the pool: the rows' rowsum(dO∘O),
// each 32-row tile's key range, with grouped heads each query head's share
// of dk, dv (2·NK·NH·HD floats; with SplitKV each half's, 4·NK·NH·HD,
// grouped or not) before they are summed, with SplitDQ the second halves'
// dq (NQ·NH·HD more: partFloats), and with AsyncTiles bf16 copies of q,
// dout, k and v.
func (d *Device) AttnBwdFlash(dq, dk, dv, dout, q, k, v, out, lse *Buffer, s AttnShape) error {
	qn, kn := s.NQ*s.NH*s.HD, s.NK*s.NKV*s.HD
	if err := s.check("attn_bwd_flash").true(FlashHeadDim(s.HD), "head size %d (flash takes 16, 32, 64, 80, 96, 128)", s.HD).
		buf("dq", dq, F32, qn).buf("dk", dk, F32, kn).buf("dv", dv, F32, kn).
		buf("dout", dout, F32, qn).buf("q", q, F32, qn).buf("k", k, F32, kn).buf("v", v, F32, kn).
		buf("out", out, F32, qn).buf("lse", lse, F32, s.NQ*s.NH).
		true(aligned16(dq, dk, dv, dout, q, k, v, out), "a buffer not on 16 bytes").err; err != nil {
		return err
	}
	sc := s.Scratch
	rows, err := sc.take(d, "rows", F32, max(s.NQ*s.NH, 1))
	if err != nil {
		return err
	}
	defer rows.Free() // to the pool, or nothing for a view of the scratch
	tiles, err := sc.take(d, "tiles", I32, max(4*((s.NQ+31)/32), 1))
	if err != nil {
		return err
	}
	defer tiles.Free() // to the pool, or nothing for a view of the scratch
	var part *Buffer
	if n := s.partFloats(); n > 0 {
		if part, err = sc.take(d, "part", F32, n); err != nil {
			return err
		}
		defer part.Free() // to the pool, or nothing for a view of the scratch
	}
	var b16 *Buffer // bf16 copies of q, dout, k and v
	if s.AsyncTiles && s.NK > 0 && s.NQ > 0 {
		if b16, err = sc.take(d, "b16", BF16, 2*qn+2*kn); err != nil {
			return err
		}
		defer b16.Free() // to the pool, or nothing for a view of the scratch
	}
	return call(func() C.int {
		return C.dc_attn_bwd_flash((*C.float)(dq.ptr), (*C.float)(dk.ptr), (*C.float)(dv.ptr), (*C.float)(dout.ptr),
			(*C.float)(q.ptr), (*C.float)(k.ptr), (*C.float)(v.ptr), (*C.float)(out.ptr), (*C.float)(lse.ptr),
			(*C.int32_t)(s.Lo.ptr), (*C.int32_t)(s.Hi.ptr), C.int(s.NQ), C.int(s.NK), C.int(s.NH), C.int(s.NKV), C.int(s.HD),
			C.int(s.MaxLen), C.float(s.Scale), (*C.float)(rows.ptr), (*C.int32_t)(tiles.ptr), (*C.float)(addr(part)),
			(*C.uint16_t)(addr(b16)), s.flags())
	})
}

// partFloats is the backward's shares of dk and dv before they are summed
// — each query head's of its KV head's with grouped heads, each split's
// with SplitKV (both: each split's of each head's) — then with SplitDQ the
// second halves' dq; 0 when none are.
func (s AttnShape) partFloats() int {
	if s.NK == 0 {
		return 0
	}
	n := 0
	switch {
	case s.SplitKV:
		n = 4 * s.NK * s.NH * s.HD
	case s.NH != s.NKV:
		n = 2 * s.NK * s.NH * s.HD
	}
	if s.SplitDQ && !(s.FusedDQ && s.AsyncTiles) { // the fused dq runs no dq kernel
		n += s.NQ * s.NH * s.HD
	}
	return n
}

// FlashScratch is the flash kernels' scratch for every call of one
// AttnShape, forward and backward, allocated once (AttnShape.Scratch).
type FlashScratch struct {
	rows, tiles, part, b16 *Buffer
}

// NewFlashScratch takes from alloc (d.Alloc, or a caller's arena) the
// scratch AttnFwdFlash and AttnBwdFlash need for shape s (its AsyncTiles
// and grouped heads included).
func NewFlashScratch(s AttnShape, alloc func(Kind, int) (*Buffer, error)) (*FlashScratch, error) {
	qn, kn := s.NQ*s.NH*s.HD, s.NK*s.NKV*s.HD
	sc := &FlashScratch{}
	var err error
	take := func(k Kind, n int) *Buffer {
		if err != nil {
			return nil
		}
		var b *Buffer
		b, err = alloc(k, n)
		return b
	}
	sc.rows, sc.tiles = take(F32, max(s.NQ*s.NH, 1)), take(I32, max(4*((s.NQ+31)/32), 1))
	if n := s.partFloats(); n > 0 {
		sc.part = take(F32, n)
	}
	if s.AsyncTiles && s.NK > 0 && s.NQ > 0 {
		sc.b16 = take(BF16, 2*qn+2*kn) // the backward's; the forward's (2·kn) is its prefix
	}
	if err != nil {
		sc.Free()
		return nil, err
	}
	return sc, nil
}

// Free returns the scratch to the pool (nil-safe; an arena's views free
// nothing).
func (sc *FlashScratch) Free() {
	if sc == nil {
		return
	}
	for _, b := range []*Buffer{sc.rows, sc.tiles, sc.part, sc.b16} {
		b.Free()
	}
}

// take is n elements of the scratch's buffer name, or a buffer from the
// pool when there is no scratch (its Free returns it; a view's frees
// nothing).
func (sc *FlashScratch) take(d *Device, name string, k Kind, n int) (*Buffer, error) {
	if sc == nil {
		return d.Alloc(k, n)
	}
	var b *Buffer
	switch name {
	case "rows":
		b = sc.rows
	case "tiles":
		b = sc.tiles
	case "part":
		b = sc.part
	case "b16":
		b = sc.b16
	}
	if b == nil || b.Kind != k || b.Len < n {
		return nil, fmt.Errorf("cuda: flash scratch %s holds %v, the call needs %s[%d] (made for another shape)", name, b, k, n)
	}
	return b.View(0, n), nil
}

// AttnMerge turns (out, lse) and (out2, lse2), attentions of the same
// queries over two disjoint sets of keys (rows query-head pairs of hd, as
// AttnFwd* lay them out: (NQ, NH·HD) and (NQ, NH)), into the attention
// over both sets, in out and lse: each weighted by its share of the
// softmax's total, e^lse / (e^lse + e^lse2).
func (d *Device) AttnMerge(out, lse, out2, lse2 *Buffer, rows, hd int) error {
	if err := check("attn_merge").true(rows >= 0 && hd > 0, "rows=%d hd=%d", rows, hd).
		buf("out", out, F32, rows*hd).buf("lse", lse, F32, rows).buf("out2", out2, F32, rows*hd).
		buf("lse2", lse2, F32, rows).err; err != nil {
		return err
	}
	return call(func() C.int {
		return C.dc_attn_merge((*C.float)(out.ptr), (*C.float)(lse.ptr), (*C.float)(out2.ptr), (*C.float)(lse2.ptr),
			C.int64_t(rows), C.int(hd))
	})
}
