//go:build cuda

package cuda

/*
#include "distill_cuda.h"
*/
import "C"

// AttnShape is one attention call: query row i (of NQ) attends key rows
// [Lo[i], Hi[i]) (i32 buffers); q, out: (NQ, NH·HD); k, v: (NK, NKV·HD).
// MaxLen bounds Hi[i]−Lo[i] (it sizes the kernels' shared memory).
type AttnShape struct {
	NQ, NK, NH, NKV, HD, MaxLen int
	Lo, Hi                      *Buffer
	Scale                       float32
	// AsyncTiles: the flash kernels stage their tiles asynchronously
	// (cp.async, two buffers) from bf16 copies they make — of k and v
	// forward, 2·NK·NKV·HD bf16 of scratch; of q, dout, k and v backward,
	// 2·(NQ·NH + NK·NKV)·HD — the same results bit for bit.
	AsyncTiles bool
	// HeavyFirst: the flash kernels' blocks dispatched heads fastest, so
	// every head's heaviest tiles (a causal pass's last rows, first keys)
	// start before any head's light ones — the same results bit for bit.
	HeavyFirst bool
	// PrefetchStats: with AsyncTiles, the dk/dv kernel copies each query
	// tile's rows' ranges, lse and D by cp.async with the tile instead of
	// loading them as it stages it — the same results bit for bit.
	PrefetchStats bool
	// FusedDQ: with AsyncTiles, the backward's dk/dv kernel adds dq up too
	// (each tile's dS·K by f32 atomics into dq) and dq's own kernel, which
	// computes S and dP again, is not run — five products a tile pair
	// where there were seven. dk and dv the same bit for bit; dq within f32
	// rounding of the default's, and not the same bits run to run (the
	// atomics land in the order the GPU picks).
	FusedDQ bool
	// SplitKV: the backward's dk/dv kernel runs two blocks a key block,
	// each over half the query tiles that reach it, their shares of dk and
	// dv summed after (so a causal pass's heaviest key blocks, attended by
	// every query, are halved: the GPU's tail is the heaviest block's) —
	// 4·NK·NH·HD floats of scratch; dk and dv within f32 rounding of the
	// default's, the same bits run to run.
	SplitKV bool
	// SplitDQ: the backward's dq kernel (not run with FusedDQ) runs two
	// blocks a row tile, each over half the key tiles its rows reach, the
	// second's dq added after (the last rows of a causal pass attend every
	// key) — NQ·NH·HD floats more scratch; dq within f32 rounding of the
	// default's, the same bits run to run.
	SplitDQ bool
	// DKVOccupancy: with AsyncTiles at head size 128, the backward's dk/dv
	// kernel built for three blocks an SM (168 registers, ~200 bytes a
	// thread spilled a tile) instead of two (213), where an SM's shared
	// memory holds three (FlashBuild) — 12 warps an SM to hide each
	// other's latency where there were 8. The same results bit for bit.
	DKVOccupancy bool
	// Stages3: with AsyncTiles at head size 64 or 128, the forward, dq and
	// dk/dv kernels with three buffers of tiles (at 128: ~35 KB more
	// forward and dq, ~17 KB dk/dv): two tiles in flight while one is
	// computed, one barrier a tile where there were two — each kernel
	// where an SM holds as many blocks of it as of the default
	// (FlashBuild; dk/dv's DKVOccupancy first when both are asked and it
	// applies). The same results bit for bit.
	Stages3 bool
	// Scratch, when set, is the flash kernels' scratch (NewFlashScratch)
	// in place of buffers from the pool for each call: a recorded pass
	// (Capture) may not allocate.
	Scratch *FlashScratch
}

// flags is the flash kernels' flags argument (attn_flash.h).
func (s AttnShape) flags() C.int {
	return cbool(s.HeavyFirst) | 2*cbool(s.PrefetchStats) | 4*cbool(s.FusedDQ) | 8*cbool(s.SplitKV) | 16*cbool(s.SplitDQ) |
		32*cbool(s.DKVOccupancy) | 64*cbool(s.Stages3)
}

func (s AttnShape) check(op string) *need {
	return check(op).true(s.NKV > 0 && s.NH%s.NKV == 0, "%d heads over %d KV heads", s.NH, s.NKV).
		buf("lo", s.Lo, I32, s.NQ).buf("hi", s.Hi, I32, s.NQ)
}

// AttnFwd: out and lse(NQ, NH), the log-sum-exp backward rebuilds P from.
func (d *Device) AttnFwd(out, lse, q, k, v *Buffer, s AttnShape) error {
	qn, kn := s.NQ*s.NH*s.HD, s.NK*s.NKV*s.HD
	if err := s.check("attn_fwd").buf("out", out, F32, qn).buf("lse", lse, F32, s.NQ*s.NH).buf("q", q, F32, qn).
		buf("k", k, F32, kn).buf("v", v, F32, kn).err; err != nil {
		return err
	}
	return call(func() C.int {
		return C.dc_attn_fwd((*C.float)(out.ptr), (*C.float)(lse.ptr), (*C.float)(q.ptr), (*C.float)(k.ptr), (*C.float)(v.ptr),
			(*C.int32_t)(s.Lo.ptr), (*C.int32_t)(s.Hi.ptr), C.int(s.NQ), C.int(s.NK), C.int(s.NH), C.int(s.NKV), C.int(s.HD),
			C.int(s.MaxLen), C.float(s.Scale))
	})
}

// AttnBwd sets dq and dk, dv (zeroed here, then accumulated) from dout.
func (d *Device) AttnBwd(dq, dk, dv, dout, q, k, v, out, lse *Buffer, s AttnShape) error {
	qn, kn := s.NQ*s.NH*s.HD, s.NK*s.NKV*s.HD
	if err := s.check("attn_bwd").buf("dq", dq, F32, qn).buf("dk", dk, F32, kn).buf("dv", dv, F32, kn).
		buf("dout", dout, F32, qn).buf("q", q, F32, qn).buf("k", k, F32, kn).buf("v", v, F32, kn).
		buf("out", out, F32, qn).buf("lse", lse, F32, s.NQ*s.NH).err; err != nil {
		return err
	}
	if err := dk.View(0, kn).Zero(); err != nil {
		return err
	}
	if err := dv.View(0, kn).Zero(); err != nil {
		return err
	}
	return call(func() C.int {
		return C.dc_attn_bwd((*C.float)(dq.ptr), (*C.float)(dk.ptr), (*C.float)(dv.ptr), (*C.float)(dout.ptr),
			(*C.float)(q.ptr), (*C.float)(k.ptr), (*C.float)(v.ptr), (*C.float)(out.ptr), (*C.float)(lse.ptr),
			(*C.int32_t)(s.Lo.ptr), (*C.int32_t)(s.Hi.ptr), C.int(s.NQ), C.int(s.NK), C.int(s.NH), C.int(s.NKV), C.int(s.HD),
			C.int(s.MaxLen), C.float(s.Scale))
	})
}
