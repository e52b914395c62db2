#ifndef DISTILL_ATTN_GEMM_H
#define DISTILL_ATTN_GEMM_H
// attn_gemm.h: attention on the tensor cores (attn_gemm.cu).
#ifdef __cplusplus
extern "C" {
#endif

// Attention with the semantics of attention.cu's dc_attn_fwd / dc_attn_bwd
// (query row i attends key rows [kv_lo[i], kv_hi[i]); q, out, dq, dout:
// (nq, nh·hd); k, v, dk, dv: (nk, nkv·hd); lse: (nq, nh)), the products as
// cuBLAS strided-batched GEMMs in TF32 (f32 in and out, f32 accumulation).
// work: device scratch of work_floats floats (at least nk for forward, 2·nk
// for backward), which bounds the score buffers: heads, then query rows, are
// processed in chunks that fit. A bad range (outside [0, nk), empty, or
// longer than max_len) gives its row NaNs in out, lse (forward) and dq
// (backward), as the reference. Every row of q, k, v must be finite: masked
// keys enter the products with weight 0.
int dc_attn_fwd_gemm(float *out, float *lse, const float *q, const float *k, const float *v,
                     const int32_t *kv_lo, const int32_t *kv_hi, int nq, int nk, int nh, int nkv, int hd,
                     int max_len, float scale, float *work, int64_t work_floats);
// dq (set), dk and dv (accumulated: zero them first) from dout, out, lse.
int dc_attn_bwd_gemm(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                     const float *v, const float *out, const float *lse, const int32_t *kv_lo,
                     const int32_t *kv_hi, int nq, int nk, int nh, int nkv, int hd, int max_len, float scale,
                     float *work, int64_t work_floats);

#ifdef __cplusplus
}
#endif
#endif
