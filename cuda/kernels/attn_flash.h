#ifndef DISTILL_ATTN_FLASH_H
#define DISTILL_ATTN_FLASH_H
// attn_flash.h: tiled (flash-style) attention on the tensor cores in bf16
// (attn_flash.cu).
#ifdef __cplusplus
extern "C" {
#endif

// Whether the flash kernels take head size hd (16, 32, 64, 80, 96, 128).
int dc_attn_flash_supports(int hd);

// The semantics and arguments of attn_gemm.h's dc_attn_fwd_gemm: shared
// memory and registers only, linear in nq and nk. Every pointer 16-byte
// aligned (b16 too). b16, null or 2·nk·nkv·hd bf16: given, the kernel stages its key
// tiles asynchronously from bf16 copies of k and v made there (the same
// out, lse bit for bit). flags: bit 0, the blocks dispatched heads fastest,
// so every head's heaviest tiles (a causal pass's last rows, first keys)
// start before any light ones — the same results, a shorter tail; bit 1
// (backward, with b16), each query tile's rows' ranges, lse and D copied
// by cp.async with its rows in the dk/dv kernel — the same results; bit 2
// (backward, with b16), dq added up by the dk/dv kernel (f32 atomics, one
// add an element a key block) instead of made by its own kernel, which
// computes S and dP again — dk, dv the same, dq within rounding of the
// default's and not the same bits run to run; bit 3 (backward), each key
// block's query tiles split between two blocks, whose shares of dk, dv are
// summed after — a causal pass's heaviest key blocks halved (dk, dv within
// rounding of the default's, the same bits run to run); bit 4 (backward,
// without bit 2's fused dq), each row tile's key tiles split between two dq
// blocks, the second's dq added after (dq within rounding, the same bits
// run to run); bit 5 (backward, with b16, head size 128), the dk/dv kernel
// built for three blocks an SM (168 registers, some spilled) where an SM
// then holds three; bit 6 (with b16, head size 64 or 128), the forward, dq
// and dk/dv kernels with three buffers of tiles (two in flight, one
// barrier a tile) where an SM holds as many blocks of each — bits 5 and 6
// as dc_attn_flash_build says, the same results bit for bit.
int dc_attn_fwd_flash(float *out, float *lse, const float *q, const float *k, const float *v,
                      const int32_t *kv_lo, const int32_t *kv_hi, int nq, int nk, int nh, int nkv, int hd,
                      int max_len, float scale, uint16_t *b16, int flags);
// dc_attn_fwd_flash over k and v already in bf16 ((nk, nkv·hd) each, 16-byte
// aligned: a decoder's cache mirror), read by the async kernel as they are —
// out and lse bit for bit dc_attn_fwd_flash's over their f32 originals.
int dc_attn_fwd_flash_kv16(float *out, float *lse, const float *q, const uint16_t *k, const uint16_t *v,
                           const int32_t *kv_lo, const int32_t *kv_hi, int nq, int nk, int nh, int nkv, int hd,
                           int max_len, float scale, int flags);
// dq, dk, dv set (not accumulated) from dout, out, lse. Scratch: D, nq·nh
// floats; tiles, 4·⌈nq/32⌉ ints; part, 2·nk·nh·hd floats when nh ≠ nkv
// (each query head's share of its KV head's gradients), 4·nk·nh·hd with
// flags bit 3 (each split's shares), then with bit 4 nq·nh·hd more (the
// second halves' dq), else unused. b16,
// null or 2·(nq·nh + nk·nkv)·hd bf16: given, dq, dk and dv come from the
// kernels that stage their tiles asynchronously from bf16 copies of q,
// dout, k and v made there (the same results bit for bit). flags as
// dc_attn_fwd_flash's.
int dc_attn_bwd_flash(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                      const float *v, const float *out, const float *lse, const int32_t *kv_lo,
                      const int32_t *kv_hi, int nq, int nk, int nh, int nkv, int hd, int max_len, float scale,
                      float *D, int32_t *tiles, float *part, uint16_t *b16, int flags);

// The async kernels as built under flags (fused: with bit 2's fused dq) at
// head size hd for nq query rows on the current device: build[0], the
// blocks an SM the dk/dv kernel's registers are capped for (1 or 3);
// build[1], [2], [3], the dk/dv, forward and dq kernels' buffers of tiles
// (2 or 3; dq's 2 with the fused dq, which runs none). 0, or -1 with
// dc_last_error set.
int dc_attn_flash_build(int hd, int nq, int flags, int fused, int build[4]);

// Two attentions of the same queries over disjoint key sets, (out, lse)
// and (out2, lse2) — rows × hd and rows, a row one (query, head) — merged
// into (out, lse) as the attention over both sets.
int dc_attn_merge(float *out, float *lse, const float *out2, const float *lse2, int64_t rows, int hd);

#ifdef __cplusplus
}
#endif
#endif
