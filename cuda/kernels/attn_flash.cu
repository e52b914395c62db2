// attn_flash.cu: grouped-query attention, forward and backward, tiled in
// the flash-attention way — the scores of a tile of queries against a tile
// of keys live in registers and never reach memory, so memory is linear in
// the sequence — with the products on the tensor cores in bf16 (mma.sync
// m16n8k16, f32 accumulation). Semantics are attention.cu's (query row i
// attends key rows [kv_lo[i], kv_hi[i]); a bad range gives its row NaNs in
// out, lse and dq and adds nothing to dk, dv); attn_gemm.cu (cuBLAS, TF32)
// and attention.cu (the simple kernel) stay as its references.
//
// Layout of one warp's products (PTX ISA, "Matrix fragments for mma.m16n8k16"
// with .bf16): lane = 4·g + t. A (16×16, row-major) is four 32-bit registers,
// each two adjacent columns: (g, 2t), (g+8, 2t), (g, 2t+8), (g+8, 2t+8). B
// (16×8, "col": k by n) is two: (k 2t, n g), (k 2t+8, n g) — two adjacent k
// of one column n, so B is read from a tile stored n-major ("Bᵀ row-major").
// C (16×8 f32) is four floats: (g, 2t), (g, 2t+1), (g+8, 2t), (g+8, 2t+1).
// So a thread holds two rows (g, g+8) of every C tile, a row's statistics
// are reduced over the four lanes of a quad, and the C tiles of keys
// 16c..16c+15 are, converted to bf16, exactly the A fragment of a product
// over those keys (P·V, dS·K, Pᵀ·dO, dSᵀ·Q) — P never leaves registers.
//
// Tiles are staged in shared memory as bf16, rows padded by 8 elements so
// that the eight rows g of a fragment load fall in distinct banks; tiles a
// product reads k-major (V for P·V, K for dS·K, Q and dO for the weight
// gradients) are stored transposed as they are loaded.
//
// Kernels: forward, one block per (64 or 128 query rows, head), 16 rows a warp,
// over 64-key tiles with an online softmax. Backward: row_dot
// (D_i = rowsum(dO∘O), once), dq (like forward: S and dP = dO·Vᵀ per tile,
// dS = P∘(dP − D)·scale, dq = dS·K, no atomics) and dkv, one block per (64
// key rows, query head), 16 keys a warp, over the 32-row query tiles whose
// ranges reach its keys (tile_range precomputes each tile's [min lo,
// max hi)): Sᵀ = K·Qᵀ, dPᵀ = V·dOᵀ, dV += Pᵀ·dO, dK += dSᵀ·Q, written once
// (set) — into dk, dv when a KV head has one query head, else each head's
// share into scratch that group_sum adds up (one block per KV head would
// leave most of the GPU idle: 2 KV heads × 32 key blocks at 2,048 tokens).
// With async tiles (given b16; gated in cuda/devnet until measured) the
// forward, dq and dkv read bf16 copies of k and v (and q, dout) made once
// per call: their tiles are copied by cp.async into one of two buffers
// while the warps compute on the other, and the products that read a tile
// k-major (P·V, dS·K, Pᵀ·dO, dSᵀ·Q) take their B fragments from the
// row-major tiles by ldmatrix.trans instead of staged transposes: v1's
// products in v1's order, the same results bit for bit. The async forward
// also takes k and v already in bf16 (dc_attn_fwd_flash_kv16: a decoder's
// cache mirror held in bf16), the same results as over their f32 originals.
// With the fused dq (flags bit 2, async only; gated in cuda/devnet until
// measured) dkv also stores each tile's dSᵀ in shared memory and adds dS·K
// into dq by f32 atomics, and dq's kernel — S and dP a second time — is
// not run: five products a (query tile, key block) where there were seven.
//
// Precision: q, k, v, dout, P and dS are rounded to bf16 (8 significant
// bits) for the products; scores, softmax statistics, lse, D and every
// accumulator are f32 with expf/logf.
//
// As in attn_gemm.cu, values outside a row's range still enter the
// products, with weight exactly 0: every row of q, k, v and dout must be
// finite (a NaN there would reach other rows through 0·NaN).
#include "common.cuh"
#include "attn_flash.h"
#include "distill_cuda.h"
#include "attn_flash_kernels.cuh"

namespace {

// A bound on the kernels' static shared memory (dk/dv's three buffers of
// row statistics: 1.5 KB), counted beside the dynamic bytes.
constexpr size_t FA_STATIC_SMEM = 2048;

// fa_smem opts kernel fn in to bytes of dynamic shared memory when that
// and the kernel's static shared memory could pass the default 48 KiB; the
// attribute persists, so once per kernel (*done).
int fa_smem(const void *fn, size_t bytes, const char *op, bool *done) {
  if (*done || bytes + FA_STATIC_SMEM <= 48 * 1024) return 0;
  DC_CHECK(cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes),
           "%s: opt in to %zu bytes of shared memory", op, bytes);
  *done = true;
  return 0;
}

#define FA_SHAPE "(nq=%d, nk=%d, heads=%d, kv_heads=%d, hd=%d, max_len=%d)"

// The grid of tiles × heads: heads fastest with FA_HEAVY_FIRST in opt
// (fa_block_of), when the tiles fit a grid's y (65,535) — else tiles
// fastest, as without (the bit cleared).
dim3 fa_grid(int tiles, int nh, int &opt) {
  if (tiles > 65535) opt &= ~FA_HEAVY_FIRST;
  return opt & FA_HEAVY_FIRST ? dim3(nh, tiles) : dim3(tiles, nh);
}

// *n: the blocks of kernel fn (threads each, smem bytes of dynamic shared
// memory) an SM holds at once on this device — its registers and shared
// memory against the SM's; 0 where a block's shared memory passes the
// device's limit (a consumer card's 99 KB).
int fa_resident(const void *fn, int threads, size_t smem, int *n) {
  int dev = 0, optin = 0;
  DC_CHECK(cudaGetDevice(&dev), "attn_flash: cudaGetDevice");
  DC_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev),
           "attn_flash: shared memory a block");
  if (smem + FA_STATIC_SMEM > (size_t)optin) {
    *n = 0;
    return 0;
  }
  bool opted = false;  // the calculator counts only what the kernel may take
  if (fa_smem(fn, smem, "attn_flash", &opted)) return -1;
  DC_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(n, fn, threads, smem),
           "attn_flash: blocks an SM (%zu bytes of shared memory)", smem);
  return 0;
}

// *stages: 3 where an SM holds as many blocks of the three-buffer kernel
// k3 (s3 bytes of shared memory) as of the two-buffer k2 (s2), and at
// least one, else 2 — an H100's or H200's SM loses none to the third
// buffer where registers bound it; an A100's, or a consumer card's with
// its 99 KB a block, may.
int fa_stages(const void *k2, size_t s2, const void *k3, size_t s3, int threads, int *stages) {
  int n2 = 0, n3 = 0;
  if (fa_resident(k2, threads, s2, &n2) || fa_resident(k3, threads, s3, &n3)) return -1;
  *stages = n3 >= n2 && n3 > 0 ? 3 : 2;
  return 0;
}

// fa_stages for the async forward (DQ false) or dq kernel of QW warps.
template <int HD, int QW, bool DQ>
int fa_key_stages_qw(int *stages) {
  if constexpr (DQ)
    return fa_stages((const void *)k_fa_bwd_dq<HD, QW, true, 2>, fa_dq_async_smem<HD>(2),
                     (const void *)k_fa_bwd_dq<HD, QW, true, 3>, fa_dq_async_smem<HD>(3), QW * 32, stages);
  else
    return fa_stages((const void *)k_fa_fwd<HD, QW, true, 2>, fa_fwd_async_smem<HD>(2),
                     (const void *)k_fa_fwd<HD, QW, true, 3>, fa_fwd_async_smem<HD>(3), QW * 32, stages);
}

// The async forward's (dq false) or dq's key-tile buffers under opt: 3
// with FA_STAGES3 at head size 64 or 128 where fa_stages says so, else 2.
template <int HD>
int fa_key_stages(int qw, bool dq, int opt, int *stages) {
  *stages = 2;
  if constexpr (HD == 64 || HD == 128) {
    if (!(opt & FA_STAGES3)) return 0;
    if (dq) return qw == 8 ? fa_key_stages_qw<HD, 8, true>(stages) : fa_key_stages_qw<HD, 4, true>(stages);
    return qw == 8 ? fa_key_stages_qw<HD, 8, false>(stages) : fa_key_stages_qw<HD, 4, false>(stages);
  }
  return 0;
}

template <int HD, int QW, bool ASYNC, int STAGES = 2>
int fa_fwd_qw(float *out, float *lse, const float *q, const float *k, const float *v, const bf16 *kb, const bf16 *vb,
              const int32_t *lo, const int32_t *hi, int nq, int nk, int nh, int nkv, int max_len, float scale, int opt) {
  static bool opted;
  size_t sm = ASYNC ? fa_fwd_async_smem<HD>(STAGES) : fa_fwd_smem<HD>();
  if (fa_smem((const void *)k_fa_fwd<HD, QW, ASYNC, STAGES>, sm, "attn_fwd_flash", &opted)) return -1;
  dim3 grid = fa_grid((nq + 16 * QW - 1) / (16 * QW), nh, opt);
  DC_LAUNCH(grid, QW * 32, sm, k_fa_fwd<HD, QW, ASYNC, STAGES>)(out, lse, q, k, v, kb, vb, lo, hi, nq, nk, nh, nkv,
                                                                    max_len, scale, opt);
  DC_LAUNCHED("attn_fwd_flash" FA_SHAPE, nq, nk, nh, nkv, HD, max_len);
  return 0;
}

// fa_fwd: k and v in f32 (the v1 kernel, or with b16 the async one over
// bf16 copies made here), or with k16, v16 (k, v null) already in bf16 — a
// decoder's cache mirror — read by the async kernel as they are.
template <int HD>
int fa_fwd(float *out, float *lse, const float *q, const float *k, const float *v, const uint16_t *k16,
           const uint16_t *v16, const int32_t *lo, const int32_t *hi, int nq, int nk, int nh, int nkv, int max_len,
           float scale, uint16_t *b16, int opt) {
  const bool given = k16 != nullptr, async = (given || b16 != nullptr) && nk > 0;
  const int64_t kn = (int64_t)nk * nkv * HD;
  if (async && !given && (dc_f32_to_bf16(b16, k, kn) || dc_f32_to_bf16(b16 + kn, v, kn))) return -1;
  const bf16 *kb = !async ? nullptr : reinterpret_cast<const bf16 *>(given ? k16 : b16);
  const bf16 *vb = !async ? nullptr : given ? reinterpret_cast<const bf16 *>(v16) : kb + kn;
  const int qw = fa_qw(HD, nq);
  int stages = 2;
  if (async && fa_key_stages<HD>(qw, false, opt, &stages)) return -1;
#define FA_FWD_QW(QW, ASYNC, STAGES) \
  fa_fwd_qw<HD, QW, ASYNC, STAGES>(out, lse, q, k, v, kb, vb, lo, hi, nq, nk, nh, nkv, max_len, scale, opt)
  if (stages == 3) {
    if constexpr (HD == 64 || HD == 128) return qw == 8 ? FA_FWD_QW(8, true, 3) : FA_FWD_QW(4, true, 3);
  }
  if (qw == 8) return async ? FA_FWD_QW(8, true, 2) : FA_FWD_QW(8, false, 2);
  return async ? FA_FWD_QW(4, true, 2) : FA_FWD_QW(4, false, 2);
#undef FA_FWD_QW
}

// With FA_SPLIT_DQ, two blocks a row tile, each over half its key tiles:
// the second's dq into dq2, added to dq after.
template <int HD, int QW, bool ASYNC, int STAGES = 2>
int fa_dq(float *dq, const float *dout, const float *q, const float *k, const float *v, const bf16 *kb,
          const bf16 *vb, const float *lse, const float *D, const int32_t *lo, const int32_t *hi, int nq, int nk, int nh,
          int nkv, int max_len, float scale, int opt, float *dq2) {
  static bool opted;
  size_t sq = ASYNC ? fa_dq_async_smem<HD>(STAGES) : fa_dq_smem<HD>();
  if (fa_smem((const void *)k_fa_bwd_dq<HD, QW, ASYNC, STAGES>, sq, "attn_bwd_flash dq", &opted)) return -1;
  const int splits = opt & FA_SPLIT_DQ ? 2 : 1;
  dim3 grid = fa_grid((nq + 16 * QW - 1) / (16 * QW) * splits, nh, opt);
  DC_LAUNCH(grid, QW * 32, sq, k_fa_bwd_dq<HD, QW, ASYNC, STAGES>)(dq, dout, q, k, v, kb, vb, lse, D, lo, hi, nq, nk,
                                                                       nh, nkv, max_len, scale, opt, dq2);
  DC_LAUNCHED("attn_bwd_flash dq" FA_SHAPE, nq, nk, nh, nkv, HD, max_len);
  if (splits > 1 && dc_add(dq, dq2, (int64_t)nq * nh * HD)) return -1;
  return 0;
}

// The dk/dv kernel; FUSED (async only) adds dq too, into dq as
// k_fa_dq_init left it.
// With FA_SPLIT_KV, two blocks a key block, the second's shares ss floats
// after the first's. MINB, STAGES: built for that many blocks an SM, with
// that many query tiles' buffers (fa_dkv_build).
template <int HD, bool ASYNC, bool FUSED, int MINB = 1, int STAGES = 2>
int fa_dkv(float *ok, float *ov, int64_t os, const float *dout, const float *q, const float *k, const float *v,
           const bf16 *ob, const bf16 *qb, const float *lse, const float *D, const int32_t *lo, const int32_t *hi,
           const int32_t *tiles, int nq, int nk, int nh, int nkv, int max_len, float scale, int opt, float *dq,
           int64_t ss) {
  static bool opted;
  size_t skv = FUSED ? fa_dkv_fused_smem<HD>(STAGES) : ASYNC ? fa_dkv_async_smem<HD>(STAGES) : fa_dkv_smem<HD>();
  if (fa_smem((const void *)k_fa_bwd_dkv<HD, ASYNC, FUSED, MINB, STAGES>, skv, "attn_bwd_flash dkv", &opted)) return -1;
  dim3 grid = fa_grid((nk + FA_BK - 1) / FA_BK * (opt & FA_SPLIT_KV ? 2 : 1), nh, opt);
  DC_LAUNCH(grid, FA_THREADS, skv, k_fa_bwd_dkv<HD, ASYNC, FUSED, MINB, STAGES>)(ok, ov, os, dout, q, k, v, ob, qb, lse,
                                                                                 D, lo, hi, tiles, nq, nk, nh, nkv,
                                                                                 max_len, scale, opt, dq, ss);
  DC_LAUNCHED("attn_bwd_flash dkv" FA_SHAPE, nq, nk, nh, nkv, HD, max_len);
  return 0;
}

// The async dk/dv kernel FUSED, MINB, STAGES and its shared memory.
template <int HD, bool FUSED, int MINB, int STAGES>
const void *fa_dkv_fn(size_t *smem) {
  *smem = FUSED ? fa_dkv_fused_smem<HD>(STAGES) : fa_dkv_async_smem<HD>(STAGES);
  return (const void *)k_fa_bwd_dkv<HD, true, FUSED, MINB, STAGES>;
}

template <int HD, bool FUSED>
int fa_dkv_build(int opt, int *minb, int *stages) {
  *minb = 1, *stages = 2;
  if constexpr (HD == 64 || HD == 128) {
    size_t s2 = 0, s3 = 0;
    if constexpr (HD == 128) {
      if (opt & FA_DKV_OCC3) {
        int n = 0;
        const void *k = fa_dkv_fn<HD, FUSED, 3, 2>(&s2);
        if (fa_resident(k, FA_THREADS, s2, &n)) return -1;
        if (n >= 3) {
          *minb = 3;
          return 0;
        }
      }
    }
    if (opt & FA_STAGES3) {
      const void *k2 = fa_dkv_fn<HD, FUSED, 1, 2>(&s2), *k3 = fa_dkv_fn<HD, FUSED, 1, 3>(&s3);
      return fa_stages(k2, s2, k3, s3, FA_THREADS, stages);
    }
  }
  return 0;
}

// The async dk/dv kernel's build for opt on this device: *minb blocks an
// SM the registers are capped for, *stages query tiles' buffers. 3 blocks
// with FA_DKV_OCC3 at head size 128 where an SM then holds three (an
// H100's or H200's 228 KB of shared memory does, an A100's 164 KB or a
// consumer card's 100 KB does not: there the cap would buy spills and no
// third block); else 3 stages with FA_STAGES3 at head size 64 or 128 where
// fa_stages says so (an H100's two at 128, a consumer card's one; an A100
// would lose one); else 1 and 2, the default's.
template <int HD>
int fa_dkv_build(int opt, bool fused, int *minb, int *stages) {
  *minb = 1, *stages = 2;
  if (!(opt & (FA_DKV_OCC3 | FA_STAGES3))) return 0;
  return fused ? fa_dkv_build<HD, true>(opt, minb, stages) : fa_dkv_build<HD, false>(opt, minb, stages);
}

template <int HD>
int fa_bwd(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k, const float *v,
           const float *out, const float *lse, const int32_t *lo, const int32_t *hi, int nq, int nk, int nh, int nkv,
           int max_len, float scale, float *D, int32_t *tiles, float *part, uint16_t *b16, int opt) {
  int64_t rows = (int64_t)nq * nh;
  DC_LAUNCH((unsigned)((rows * 32 + 255) / 256), 256, 0, k_fa_row_dot)(D, dout, out, nq, nh, HD);
  DC_LAUNCHED("attn_bwd_flash row_dot" FA_SHAPE, nq, nk, nh, nkv, HD, max_len);
  DC_LAUNCH((nq + FA_BQ2 - 1) / FA_BQ2, 32, 0, k_fa_tile_range)(tiles, lo, hi, nq, nk, max_len);
  DC_LAUNCHED("attn_bwd_flash tile_range" FA_SHAPE, nq, nk, nh, nkv, HD, max_len);
  // Async tiles: bf16 copies of q, dout, k and v, staged by cp.async.
  const bool async = b16 != nullptr && nk > 0;
  const int64_t qn = (int64_t)nq * nh * HD, kn = (int64_t)nk * nkv * HD;
  uint16_t *qb = b16, *ob = async ? b16 + qn : nullptr, *kb = async ? ob + qn : nullptr, *vb = async ? kb + kn : nullptr;
  if (async && (dc_f32_to_bf16(qb, q, qn) || dc_f32_to_bf16(ob, dout, qn) || dc_f32_to_bf16(kb, k, kn) ||
                dc_f32_to_bf16(vb, v, kn)))
    return -1;
  const bf16 *kb16 = reinterpret_cast<const bf16 *>(kb), *vb16 = reinterpret_cast<const bf16 *>(vb);
  // The fused dq (async tiles only): dq zeroed (bad rows NaN), then added
  // up by the dk/dv kernel; dq's own kernel is not run.
  const bool fused = async && (opt & FA_FUSED_DQ);
  // part: the shares of dk and dv (fa_dkv below), then with FA_SPLIT_DQ the
  // second halves' dq.
  const int64_t share = (int64_t)nk * nh * HD;
  if (nk == 0) opt &= ~FA_SPLIT_DQ;  // no keys: nothing to split (and no part)
  const int64_t kvpart = opt & FA_SPLIT_KV ? 4 * share : nh != nkv ? 2 * share : 0;
  float *dq2 = opt & FA_SPLIT_DQ ? part + kvpart : nullptr;
  int err = 0;
  const int qw = fa_qw(HD, nq);
  int dq_stages = 2;
  if (async && !fused && fa_key_stages<HD>(qw, true, opt, &dq_stages)) return -1;
#define FA_DQ(QW, ASYNC, STAGES)                                                                                  \
  fa_dq<HD, QW, ASYNC, STAGES>(dq, dout, q, k, v, ASYNC ? kb16 : nullptr, ASYNC ? vb16 : nullptr, lse, D, lo, hi, nq, \
                               nk, nh, nkv, max_len, scale, opt, dq2)
  if (fused) {
    DC_LAUNCH((unsigned)(nq < 65535 ? nq : 65535), 256, 0, k_fa_dq_init)(dq, lo, hi, nq, nk, max_len, nh * HD);
    DC_LAUNCHED("attn_bwd_flash dq_init" FA_SHAPE, nq, nk, nh, nkv, HD, max_len);
  } else if (dq_stages == 3) {
    if constexpr (HD == 64 || HD == 128) err = qw == 8 ? FA_DQ(8, true, 3) : FA_DQ(4, true, 3);
  } else if (qw == 8) {
    err = async ? FA_DQ(8, true, 2) : FA_DQ(8, false, 2);
  } else {
    err = async ? FA_DQ(4, true, 2) : FA_DQ(4, false, 2);
  }
#undef FA_DQ
  if (err) return err;
  if (nk == 0) return 0;
  // One block per (64 keys, query head), or two with FA_SPLIT_KV (each
  // half of the key block's query tiles): a grouped head's share goes to
  // part, (nk, nh·hd) for dk then for dv — a split's second halves after
  // the first's — and the shares are summed after.
  const int splits = opt & FA_SPLIT_KV ? 2 : 1;
  const bool grouped = nh != nkv, summed = grouped || splits > 1;
  const int64_t ss = 2 * share;
  float *ok = summed ? part : dk, *ov = summed ? part + share : dv;
  int64_t os = summed ? (int64_t)nh * HD : (int64_t)nkv * HD;
  const bf16 *ob16 = reinterpret_cast<const bf16 *>(ob), *qb16 = reinterpret_cast<const bf16 *>(qb);
  int minb = 1, stages = 2;
  if (async && fa_dkv_build<HD>(opt, fused, &minb, &stages)) return -1;
  // The async kernel, fused or not, as fa_dkv_build says (other than the
  // default at head sizes 64 and 128 alone).
#define FA_DKV_ASYNC(FUSED, MINB, STAGES)                                                                           \
  fa_dkv<HD, true, FUSED, MINB, STAGES>(ok, ov, os, dout, q, k, v, ob16, qb16, lse, D, lo, hi, tiles, nq, nk, nh, \
                                        nkv, max_len, scale, opt, FUSED ? dq : nullptr, ss)
  if (!async) {
    err = fa_dkv<HD, false, false>(ok, ov, os, dout, q, k, v, nullptr, nullptr, lse, D, lo, hi, tiles, nq, nk, nh, nkv,
                                   max_len, scale, opt, nullptr, ss);
  } else if (minb == 3) {
    if constexpr (HD == 128) err = fused ? FA_DKV_ASYNC(true, 3, 2) : FA_DKV_ASYNC(false, 3, 2);
  } else if (stages == 3) {
    if constexpr (HD == 64 || HD == 128) err = fused ? FA_DKV_ASYNC(true, 1, 3) : FA_DKV_ASYNC(false, 1, 3);
  } else {
    err = fused ? FA_DKV_ASYNC(true, 1, 2) : FA_DKV_ASYNC(false, 1, 2);
  }
#undef FA_DKV_ASYNC
  if (err) return err;
  if (summed) {
    int64_t n = (int64_t)nk * nkv * HD;
    DC_LAUNCH(dc_blocks(n, 256), 256, 0, k_fa_group_sum)(dk, dv, ok, ov, nk, nh, nkv, HD, splits, ss);
    DC_LAUNCHED("attn_bwd_flash group_sum" FA_SHAPE, nq, nk, nh, nkv, HD, max_len);
  }
  return 0;
}

int fa_check(const char *op, int nq, int nk, int nh, int nkv, int hd, int max_len) {
  if (nkv <= 0 || nh <= 0 || nh % nkv != 0 || nq < 0 || nk < 0 || max_len < 0)
    return dc_fail("heads must be a positive multiple of kv heads", "%s" FA_SHAPE, op, nq, nk, nh, nkv, hd, max_len);
  if (!dc_attn_flash_supports(hd))
    return dc_fail("head size not supported (16, 32, 64, 80, 96, 128)", "%s" FA_SHAPE, op, nq, nk, nh, nkv, hd,
                   max_len);
  return 0;
}

}  // namespace

extern "C" int dc_attn_merge(float *out, float *lse, const float *out2, const float *lse2, int64_t rows, int hd) {
  if (rows <= 0) return 0;
  DC_LAUNCH((unsigned)((rows * 32 + 255) / 256), 256, 0, k_attn_merge)(out, lse, out2, lse2, rows, hd);
  DC_LAUNCHED("attn_merge(rows=%lld, hd=%d)", (long long)rows, hd);
  return 0;
}

extern "C" int dc_attn_flash_supports(int hd) {
  return hd == 16 || hd == 32 || hd == 64 || hd == 80 || hd == 96 || hd == 128;
}

#define FA_DISPATCH(call)   \
  switch (hd) {             \
    case 16: return call(16); \
    case 32: return call(32); \
    case 64: return call(64); \
    case 80: return call(80); \
    case 96: return call(96); \
    default: return call(128); \
  }

extern "C" int dc_attn_fwd_flash(float *out, float *lse, const float *q, const float *k, const float *v,
                                 const int32_t *kv_lo, const int32_t *kv_hi, int nq, int nk, int nh, int nkv, int hd,
                                 int max_len, float scale, uint16_t *b16, int flags) {
  if (fa_check("attn_fwd_flash", nq, nk, nh, nkv, hd, max_len)) return -1;
  if (nq == 0) return 0;
#define FA_FWD(HD) fa_fwd<HD>(out, lse, q, k, v, nullptr, nullptr, kv_lo, kv_hi, nq, nk, nh, nkv, max_len, scale, b16, flags)
  FA_DISPATCH(FA_FWD)
#undef FA_FWD
}

extern "C" int dc_attn_fwd_flash_kv16(float *out, float *lse, const float *q, const uint16_t *k, const uint16_t *v,
                                      const int32_t *kv_lo, const int32_t *kv_hi, int nq, int nk, int nh, int nkv,
                                      int hd, int max_len, float scale, int flags) {
  if (fa_check("attn_fwd_flash_kv16", nq, nk, nh, nkv, hd, max_len)) return -1;
  if (nq == 0) return 0;
#define FA_FWD(HD) fa_fwd<HD>(out, lse, q, nullptr, nullptr, k, v, kv_lo, kv_hi, nq, nk, nh, nkv, max_len, scale, nullptr, flags)
  FA_DISPATCH(FA_FWD)
#undef FA_FWD
}

extern "C" int dc_attn_bwd_flash(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                                 const float *v, const float *out, const float *lse, const int32_t *kv_lo,
                                 const int32_t *kv_hi, int nq, int nk, int nh, int nkv, int hd, int max_len,
                                 float scale, float *D, int32_t *tiles, float *part, uint16_t *b16, int flags) {
  if (fa_check("attn_bwd_flash", nq, nk, nh, nkv, hd, max_len)) return -1;
  if (nq == 0) return 0;
#define FA_BWD(HD)                                                                                                      \
  fa_bwd<HD>(dq, dk, dv, dout, q, k, v, out, lse, kv_lo, kv_hi, nq, nk, nh, nkv, max_len, scale, D, tiles, part, b16, \
             flags)
  FA_DISPATCH(FA_BWD)
#undef FA_BWD
}

// build: the dk/dv kernel's blocks an SM and buffers, the forward's and
// dq's buffers (fa_dkv_build, fa_key_stages).
template <int HD>
int fa_build(int nq, int flags, bool fused, int build[4]) {
  const int qw = fa_qw(HD, nq);
  if (fa_dkv_build<HD>(flags, fused, &build[0], &build[1]) || fa_key_stages<HD>(qw, false, flags, &build[2]))
    return -1;
  if (fused) return 0;  // no dq kernel
  return fa_key_stages<HD>(qw, true, flags, &build[3]);
}

extern "C" int dc_attn_flash_build(int hd, int nq, int flags, int fused, int build[4]) {
  build[0] = 1, build[1] = build[2] = build[3] = 2;
  if (!dc_attn_flash_supports(hd)) return 0;
#define FA_BUILD(HD) fa_build<HD>(nq, flags, fused != 0, build)
  FA_DISPATCH(FA_BUILD)
#undef FA_BUILD
}
