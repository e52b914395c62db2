//go:build cuda

package cuda

/*
#include "distill_cuda.h"
*/
import "C"

// AttnGemmScratchBytes bounds the scratch AttnFwdGemm and AttnBwdGemm take
// from the pool for their score buffers (one of NH/NKV·NQ·NK f32 forward,
// two backward): heads, then query rows, are processed in chunks that fit.
// One row of keys per buffer is taken even when it is over the bound. The
// tests lower it to exercise the chunking.
var AttnGemmScratchBytes = 256 << 20

// attnGemmWork is the scratch, in floats, for nbuf score buffers.
func attnGemmWork(s AttnShape, nbuf int) int {
	need := nbuf * (s.NH / s.NKV) * s.NQ * s.NK
	return max(min(need, AttnGemmScratchBytes/4), nbuf*s.NK, 1)
}

// AttnFwdGemm is AttnFwd with the products on the tensor cores: cuBLAS
// strided-batched GEMMs in TF32 (f32 operands rounded to TF32, f32
// accumulation), a masked softmax between them. Same arguments and results,
// bad ranges included (their rows NaN); MaxLen only bounds the ranges (no
// shared memory limit). Every row of q, k and v must be finite: the keys
// outside a row's range enter its products with weight 0.
func (d *Device) AttnFwdGemm(out, lse, q, k, v *Buffer, s AttnShape) error {
	qn, kn := s.NQ*s.NH*s.HD, s.NK*s.NKV*s.HD
	if err := s.check("attn_fwd_gemm").true(s.HD > 0 && s.NQ >= 0 && s.NK >= 0, "nq=%d nk=%d hd=%d", s.NQ, s.NK, s.HD).
		buf("out", out, F32, qn).buf("lse", lse, F32, s.NQ*s.NH).buf("q", q, F32, qn).
		buf("k", k, F32, kn).buf("v", v, F32, kn).err; err != nil {
		return err
	}
	n := attnGemmWork(s, 1)
	work, err := d.Alloc(F32, n)
	if err != nil {
		return err
	}
	defer work.Free()
	return call(func() C.int {
		return C.dc_attn_fwd_gemm((*C.float)(out.ptr), (*C.float)(lse.ptr), (*C.float)(q.ptr), (*C.float)(k.ptr), (*C.float)(v.ptr),
			(*C.int32_t)(s.Lo.ptr), (*C.int32_t)(s.Hi.ptr), C.int(s.NQ), C.int(s.NK), C.int(s.NH), C.int(s.NKV), C.int(s.HD),
			C.int(s.MaxLen), C.float(s.Scale), (*C.float)(work.ptr), C.int64_t(n))
	})
}

// AttnBwdGemm is AttnBwd on the tensor cores: dq set, dk and dv zeroed here
// then accumulated, each head of a KV group adding into them by one GEMM in
// turn (a batched call would race on the shared output).
func (d *Device) AttnBwdGemm(dq, dk, dv, dout, q, k, v, out, lse *Buffer, s AttnShape) error {
	qn, kn := s.NQ*s.NH*s.HD, s.NK*s.NKV*s.HD
	if err := s.check("attn_bwd_gemm").true(s.HD > 0 && s.NQ >= 0 && s.NK >= 0, "nq=%d nk=%d hd=%d", s.NQ, s.NK, s.HD).
		buf("dq", dq, F32, qn).buf("dk", dk, F32, kn).buf("dv", dv, F32, kn).
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
	n := attnGemmWork(s, 2)
	work, err := d.Alloc(F32, n)
	if err != nil {
		return err
	}
	defer work.Free()
	return call(func() C.int {
		return C.dc_attn_bwd_gemm((*C.float)(dq.ptr), (*C.float)(dk.ptr), (*C.float)(dv.ptr), (*C.float)(dout.ptr),
			(*C.float)(q.ptr), (*C.float)(k.ptr), (*C.float)(v.ptr), (*C.float)(out.ptr), (*C.float)(lse.ptr),
			(*C.int32_t)(s.Lo.ptr), (*C.int32_t)(s.Hi.ptr), C.int(s.NQ), C.int(s.NK), C.int(s.NH), C.int(s.NKV), C.int(s.HD),
			C.int(s.MaxLen), C.float(s.Scale), (*C.float)(work.ptr), C.int64_t(n))
	})
}
