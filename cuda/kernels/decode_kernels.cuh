// decode_kernels.cuh: the device code of decode.cu — what one decoded
// token's attention inputs need between the projections and the attention,
// in one launch. Apart so that cuda/emu compiles it on the host and checks
// it against an f64 reference (DISTILL_CUDA_EMU, shim.h first).
#pragma once
#include "devmath.cuh"
#include "distill_cuda.h"  // the kernels take the C API's argument structs

namespace {

// A cache mirror's element: f32, or bf16 (each key and value rounded to
// nearest even once, as the flash kernels round them before their products
// anyway: the device's default, half the bytes). kv_as is what the cache
// holds of x, as f32 (the host's staging copy gets exactly that).
__device__ __forceinline__ float kv_get(const float *c, int64_t i) { return c[i]; }
__device__ __forceinline__ float kv_get(const __nv_bfloat16 *c, int64_t i) { return __bfloat162float(c[i]); }
__device__ __forceinline__ void kv_put(float *c, int64_t i, float x) { c[i] = x; }
__device__ __forceinline__ void kv_put(__nv_bfloat16 *c, int64_t i, float x) { c[i] = __float2bfloat16_rn(x); }
template <typename C>
__device__ __forceinline__ float kv_as(float x) {
  if constexpr (sizeof(C) == 2) return __bfloat162float(__float2bfloat16_rn(x));
  return x;
}

// One token's q (nh heads), k and v (nkv heads each) of head size hd, after
// the projections (dc_decode_qkv_args, distill_cuda.h): q_norm, k_norm the
// per-head RMSNorm weights (hd; Qwen3) or null; RoPE at position pos[0]
// from the tables cos_t, sin_t ((tables, hd/2), as rope.cu's); k_cache,
// v_cache the layer's cache rows (cap, nkv·hd); k_stage, v_stage where the
// host's copy of the new row is gathered (nkv·hd each), or null; C the
// cache's element (float or __nv_bfloat16: a.kv_bf16), the staged rows
// what it holds.
// One warp per head: block b < nh is q's head b, normalised and rotated in
// place; then k's heads, normalised, rotated and written to row pos of
// k_cache (and k_stage); then v's, copied to v_cache (and v_stage). The arithmetic is
// k_rmsnorm_fwd's ((x·s)·w, the scale by dc_rms_scale; the sum of squares
// in another order) and k_rope's (HF's rotate-half pairs (j, j + hd/2)).
// A position outside the tables or the cache writes nothing (the host
// checks it before the launch).
template <typename C>
__global__ void __launch_bounds__(32) k_decode_qkv(dc_decode_qkv_args a) {
  C *const k_cache = static_cast<C *>(a.k_cache), *const v_cache = static_cast<C *>(a.v_cache);
  const int b = blockIdx.x, lane = threadIdx.x, hd = a.hd, half = hd / 2, kvO = a.nkv * hd;
  const int p = a.pos[0];
  if (p < 0 || p >= a.cap || p >= a.tables) return;
  if (b >= a.nh + a.nkv) {  // v
    const int h = b - a.nh - a.nkv;
    for (int j = lane; j < hd; j += 32) {
      const float x = kv_as<C>(a.v[h * hd + j]);
      kv_put(v_cache, (int64_t)p * kvO + h * hd + j, x);
      if (a.v_stage != nullptr) a.v_stage[h * hd + j] = x;
    }
    return;
  }
  const bool isq = b < a.nh;
  const int h = isq ? b : b - a.nh;
  const float *x = isq ? a.q + h * hd : a.k + h * hd, *w = isq ? a.q_norm : a.k_norm;
  float s = 0.f;
  if (w != nullptr) {
    float ss = 0.f;
    for (int j = lane; j < hd; j += 32) ss += x[j] * x[j];
    s = dc_rms_scale(dc_warp_sum(ss), hd, a.eps);  // every lane has read its x before any writes
  }
  for (int j = lane; j < half; j += 32) {
    float x0 = x[j], x1 = x[j + half];
    if (w != nullptr) x0 = x0 * s * w[j], x1 = x1 * s * w[j + half];
    const float c = a.cos_t[(int64_t)p * half + j], sn = a.sin_t[(int64_t)p * half + j];
    float r0 = x0 * c - x1 * sn, r1 = x1 * c + x0 * sn;
    if (isq) {
      a.q[h * hd + j] = r0, a.q[h * hd + j + half] = r1;
      continue;
    }
    r0 = kv_as<C>(r0), r1 = kv_as<C>(r1);
    const int64_t kr = (int64_t)p * kvO + h * hd;
    kv_put(k_cache, kr + j, r0), kv_put(k_cache, kr + j + half, r1);
    if (a.k_stage != nullptr) a.k_stage[h * hd + j] = r0, a.k_stage[h * hd + j + half] = r1;
  }
}

// ---- Decoded rows over their own caches (a batched step) ----

// Row r of nr (one decoded token of its own sequence) writes its new key
// and value rows (k, v: (nr, kvo)) into row pos[r] of its cache's layer
// buffers k_cache[r], v_cache[r] ((cap[r], kvo) each). A position outside
// [0, cap[r]) writes nothing (the host checks it first). C: the caches'
// element (a.kv_bf16).
template <typename C>
__global__ void k_kv_rows(dc_kv_rows_args a) {
  const int r = blockIdx.x, p = a.pos[r];
  if (p < 0 || p >= a.cap[r]) return;
  C *const kc = static_cast<C *>(a.k_cache[r]), *const vc = static_cast<C *>(a.v_cache[r]);
  for (int j = threadIdx.x; j < a.kvo; j += blockDim.x) {
    kv_put(kc, (int64_t)p * a.kvo + j, a.k[(int64_t)r * a.kvo + j]);
    kv_put(vc, (int64_t)p * a.kvo + j, a.v[(int64_t)r * a.kvo + j]);
  }
}

constexpr int AR_WARPS = 4, AR_DIMS = 4;  // hd ≤ 32·AR_DIMS
constexpr int AR_GROUP = 8;                // query heads a split block attends at most (k_attn_rows_split)

// ar_block: the block's AR_WARPS warps attend row r's head h over keys
// [k0, k1) of its cache — warp w an online softmax over keys k0 + w,
// k0 + w + AR_WARPS, …, each lane holding dims lane + 32i of q and of its
// output — and warp 0 merges theirs through shared memory: M the largest
// score (−∞ over no key), L the sum of exp(score − M), o the lane's dims of
// the unnormalised Σ exp(score − M)·v. Every thread of the block must call
// it (a barrier); it returns true on warp 0 alone, which holds the results.
template <typename C>
__device__ __forceinline__ bool ar_block(const dc_attn_rows_args &a, int r, int h, int k0, int k1, float &M, float &L,
                                         float o[AR_DIMS]) {
  __shared__ float sm[AR_WARPS], sl[AR_WARPS], sacc[AR_WARPS][32 * AR_DIMS];
  const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
  const int hd = a.hd, kvo = a.nkv * hd, g = h / (a.nh / a.nkv);
  const float *q = a.q + ((int64_t)r * a.nh + h) * hd;
  const C *K = static_cast<const C *>(a.k_cache[r]) + g * hd, *V = static_cast<const C *>(a.v_cache[r]) + g * hd;
  float qv[AR_DIMS], acc[AR_DIMS];
#pragma unroll
  for (int i = 0; i < AR_DIMS; i++) {
    const int d = lane + 32 * i;
    qv[i] = d < hd ? q[d] : 0.f;
    acc[i] = 0.f;
  }
  float m = -INFINITY, l = 0.f;
  for (int j = k0 + w; j < k1; j += AR_WARPS) {
    const C *kr = K + (int64_t)j * kvo, *vr = V + (int64_t)j * kvo;
    float s = 0.f;
#pragma unroll
    for (int i = 0; i < AR_DIMS; i++) {
      const int d = lane + 32 * i;
      if (d < hd) s += qv[i] * kv_get(kr, d);
    }
    s = dc_warp_sum(s) * a.scale;
    const float mn = fmaxf(m, s), c = expf(m - mn), p = expf(s - mn);  // m = −∞ at first: c = 0
    l = l * c + p;
#pragma unroll
    for (int i = 0; i < AR_DIMS; i++) {
      const int d = lane + 32 * i;
      if (d < hd) acc[i] = acc[i] * c + p * kv_get(vr, d);
    }
    m = mn;
  }
  if (lane == 0) sm[w] = m, sl[w] = l;
#pragma unroll
  for (int i = 0; i < AR_DIMS; i++) sacc[w][lane + 32 * i] = acc[i];
  __syncthreads();
  if (w != 0) return false;
  M = -INFINITY;
  for (int k = 0; k < AR_WARPS; k++) M = fmaxf(M, sm[k]);
  float e[AR_WARPS];
  L = 0.f;
  for (int k = 0; k < AR_WARPS; k++) {
    e[k] = sm[k] == -INFINITY ? 0.f : expf(sm[k] - M);  // a warp that saw no key adds nothing
    L += sl[k] * e[k];
  }
#pragma unroll
  for (int i = 0; i < AR_DIMS; i++) {
    const int d = lane + 32 * i;
    float v = 0.f;
    if (d < hd)
      for (int k = 0; k < AR_WARPS; k++) v += sacc[k][d] * e[k];
    o[i] = v;
  }
  return true;
}

// Row r's attention over keys [0, hi[r]) of its own cache (k_cache[r], v_cache[r]:
// (rows, nkv·hd)), grouped heads: out (nr, nh·hd) = softmax(q·Kᵀ·scale)·V
// per head, lse (nr, nh) its log-sum-exp — in f32 over the caches' C
// elements (f32, or bf16 widened as read: a.kv_bf16) (the flash kernels' bf16
// products serve prompts; a decoded row's cost is reading its cache). One
// block of AR_WARPS warps per (row, head) (ar_block). hd ≤ 128. A bad
// range (hi[r] ≤ 0, or past the cache's cap[r] rows) gives NaN, as the
// other attention kernels' bad rows.
template <typename C>
__global__ void __launch_bounds__(AR_WARPS * 32) k_attn_rows(dc_attn_rows_args a) {
  const int r = blockIdx.x, h = blockIdx.y, lane = threadIdx.x & 31, hd = a.hd, hi = a.hi[r];
  const bool bad = hi <= 0 || hi > a.cap[r];
  float M, L, o[AR_DIMS];
  if (!ar_block<C>(a, r, h, 0, bad ? 0 : hi, M, L, o)) return;
  float *out = a.out + ((int64_t)r * a.nh + h) * hd;
#pragma unroll
  for (int i = 0; i < AR_DIMS; i++) {
    const int d = lane + 32 * i;
    if (d < hd) out[d] = bad ? NAN : o[i] / L;
  }
  if (lane == 0) a.lse[(int64_t)r * a.nh + h] = bad ? NAN : M + logf(L);
}

// ---- Decoded rows, their keys split across blocks (flash-decoding) ----

// ar_row: the lane's dims lane + 32i of a cache row, as f32 (0 past hd).
template <typename C>
__device__ __forceinline__ void ar_row(float x[AR_DIMS], const C *row, int lane, int hd) {
#pragma unroll
  for (int i = 0; i < AR_DIMS; i++) {
    const int d = lane + 32 * i;
    x[i] = d < hd ? kv_get(row, d) : 0.f;
  }
}

// k_attn_rows with each row's keys split into chunks of chunk keys and a
// GQA group's query heads attended together: block (r·splits + z, y) attends
// keys [z·chunk, min((z+1)·chunk, hi[r])) for the query heads [h0, h0 + n)
// of KV head g (y = g·subs + sub, subs = ⌈group/NG⌉ blocks a group, h0 =
// g·group + sub·NG, n ≤ NG) — so a long cache is read by many blocks at
// once, where k_attn_rows gives a (row, head) one (at 8,192 positions a
// 0.5B model's 14 heads would keep 14 of an H200's 132 SMs busy), and each
// key and value row once for the group's heads, where a block per query
// head reads it group times (7 in Qwen2.5-0.5B). Warp w takes keys k0 + w,
// k0 + w + AR_WARPS, …, U at a time (their loads and the NG·U reductions
// in flight together), an online softmax per head, each lane holding dims
// lane + 32i of every head's q and output; then warp w merges the warps'
// partials of heads w, w + AR_WARPS, … (ar_block's merge). Each head's
// M, L and unnormalised o go to part, (nr, nh, splits, hd + 2): o, then M,
// then L; a chunk at or past hi[r] (or a bad range) writes nothing, for
// k_attn_rows_merge reads the chunks below hi[r] alone. splits·chunk must
// cover every valid hi[r]. Heads past n (NG rounds the group up) compute on
// a zero q and are never stored.
template <typename C, int NG>
__global__ void __launch_bounds__(AR_WARPS * 32) k_attn_rows_split(dc_attn_rows_args a, float *part, int splits,
                                                                      int chunk) {
  constexpr int U = NG <= 2 ? 4 : 2;  // keys in flight a warp: fewer as each brings more heads' reductions
  __shared__ float sm[AR_WARPS][NG], sl[AR_WARPS][NG], sacc[AR_WARPS][NG][32 * AR_DIMS];
  const int r = blockIdx.x / splits, z = blockIdx.x % splits, lane = threadIdx.x & 31, w = threadIdx.x >> 5, hd = a.hd;
  const int group = a.nh / a.nkv, subs = (group + NG - 1) / NG, g = blockIdx.y / subs, sub = blockIdx.y % subs;
  const int h0 = g * group + sub * NG, n = min(NG, group - sub * NG);
  const int hi = a.hi[r], k0 = z * chunk, k1 = min(hi, k0 + chunk), kvo = a.nkv * hd;
  if (hi <= 0 || hi > a.cap[r] || k0 >= hi) return;  // the whole block: no barrier is left waiting
  const C *K = static_cast<const C *>(a.k_cache[r]) + g * hd, *V = static_cast<const C *>(a.v_cache[r]) + g * hd;
  float qv[NG][AR_DIMS], acc[NG][AR_DIMS], m[NG], l[NG];
#pragma unroll
  for (int e = 0; e < NG; e++) {
    const float *q = a.q + ((int64_t)r * a.nh + h0 + e) * hd;
#pragma unroll
    for (int i = 0; i < AR_DIMS; i++) {
      const int d = lane + 32 * i;
      qv[e][i] = e < n && d < hd ? q[d] : 0.f;
      acc[e][i] = 0.f;
    }
    m[e] = -INFINITY, l[e] = 0.f;
  }
  for (int j0 = k0 + w; j0 < k1; j0 += U * AR_WARPS) {
    float s[U][NG];
#pragma unroll
    for (int u = 0; u < U; u++) {  // key j0 + u·AR_WARPS; past k1 the first one's row, its weight 0 below
      const int j = j0 + u * AR_WARPS < k1 ? j0 + u * AR_WARPS : j0;
      float kv[AR_DIMS];
      ar_row(kv, K + (int64_t)j * kvo, lane, hd);
#pragma unroll
      for (int e = 0; e < NG; e++) {
        s[u][e] = 0.f;
#pragma unroll
        for (int i = 0; i < AR_DIMS; i++) s[u][e] += qv[e][i] * kv[i];
      }
    }
#pragma unroll
    for (int u = 0; u < U; u++)
#pragma unroll
      for (int e = 0; e < NG; e++) s[u][e] = dc_warp_sum(s[u][e]) * a.scale;
    float mn[NG];
#pragma unroll
    for (int e = 0; e < NG; e++) {
      mn[e] = m[e];
#pragma unroll
      for (int u = 0; u < U; u++)
        if (j0 + u * AR_WARPS < k1) mn[e] = fmaxf(mn[e], s[u][e]);
      const float c = expf(m[e] - mn[e]);  // m = −∞ at first: c = 0
      l[e] *= c;
#pragma unroll
      for (int i = 0; i < AR_DIMS; i++) acc[e][i] *= c;
      m[e] = mn[e];
    }
#pragma unroll
    for (int u = 0; u < U; u++) {
      if (j0 + u * AR_WARPS >= k1) continue;
      float vv[AR_DIMS];
      ar_row(vv, V + (int64_t)(j0 + u * AR_WARPS) * kvo, lane, hd);
#pragma unroll
      for (int e = 0; e < NG; e++) {
        const float p = expf(s[u][e] - m[e]);
        l[e] += p;
#pragma unroll
        for (int i = 0; i < AR_DIMS; i++) acc[e][i] += p * vv[i];
      }
    }
  }
#pragma unroll
  for (int e = 0; e < NG; e++) {
    if (lane == 0) sm[w][e] = m[e], sl[w][e] = l[e];
#pragma unroll
    for (int i = 0; i < AR_DIMS; i++) sacc[w][e][lane + 32 * i] = acc[e][i];
  }
  __syncthreads();
  for (int e = w; e < n; e += AR_WARPS) {
    float M = -INFINITY, L = 0.f, x[AR_WARPS];
    for (int k = 0; k < AR_WARPS; k++) M = fmaxf(M, sm[k][e]);
    for (int k = 0; k < AR_WARPS; k++) {
      x[k] = sm[k][e] == -INFINITY ? 0.f : expf(sm[k][e] - M);  // a warp that saw no key adds nothing
      L += sl[k][e] * x[k];
    }
    float *p = part + (((int64_t)r * a.nh + h0 + e) * splits + z) * (hd + 2);
    for (int d = lane; d < hd; d += 32) {
      float v = 0.f;
      for (int k = 0; k < AR_WARPS; k++) v += sacc[k][e][d] * x[k];
      p[d] = v;
    }
    if (lane == 0) p[hd] = M, p[hd + 1] = L;
  }
}

// The chunks of k_attn_rows_split merged, a block of AR_WARPS warps per
// (row, head): each chunk weighted by exp(M_z − max M), out = Σ o_z·w_z /
// Σ L_z·w_z and lse = max M + log Σ L_z·w_z — k_attn_rows' results (NaN
// for a bad range) up to the order of the sums. The block's threads find
// the maximum over the chunks together, then warp w sums chunks w,
// w + AR_WARPS, … (its lanes a chunk's dims, each load independent of the
// last), and warp 0 adds the warps' sums: a chunk's read waits on no
// other's, where one warp walking 64 chunks in a row waited on each.
__global__ void __launch_bounds__(AR_WARPS * 32) k_attn_rows_merge(dc_attn_rows_args a, const float *part, int splits,
                                                                      int chunk) {
  __shared__ float sh[33], sl[AR_WARPS], so[AR_WARPS][32 * AR_DIMS];
  const int r = blockIdx.x, h = blockIdx.y, lane = threadIdx.x & 31, w = threadIdx.x >> 5, hd = a.hd, hi = a.hi[r];
  const bool bad = hi <= 0 || hi > a.cap[r];
  const int live = bad ? 0 : min(splits, (hi + chunk - 1) / chunk);
  const float *p = part + ((int64_t)r * a.nh + h) * splits * (hd + 2);
  float M = -INFINITY;
  for (int z = threadIdx.x; z < live; z += AR_WARPS * 32) M = fmaxf(M, p[(int64_t)z * (hd + 2) + hd]);
  M = dc_block_max(M, sh);
  float l = 0.f, o[AR_DIMS];
#pragma unroll
  for (int i = 0; i < AR_DIMS; i++) o[i] = 0.f;
  for (int z = w; z < live; z += AR_WARPS) {
    const float *pz = p + (int64_t)z * (hd + 2);
    const float e = expf(pz[hd] - M);
    l += pz[hd + 1] * e;
#pragma unroll
    for (int i = 0; i < AR_DIMS; i++) {
      const int d = lane + 32 * i;
      if (d < hd) o[i] += pz[d] * e;
    }
  }
  if (lane == 0) sl[w] = l;
#pragma unroll
  for (int i = 0; i < AR_DIMS; i++) so[w][lane + 32 * i] = o[i];
  __syncthreads();
  if (w != 0) return;
  float L = 0.f;
  for (int k = 0; k < AR_WARPS; k++) L += sl[k];
  float *out = a.out + ((int64_t)r * a.nh + h) * hd;
#pragma unroll
  for (int i = 0; i < AR_DIMS; i++) {
    const int d = lane + 32 * i;
    if (d >= hd) continue;
    float v = 0.f;
    for (int k = 0; k < AR_WARPS; k++) v += so[k][d];
    out[d] = bad ? NAN : v / L;
  }
  if (lane == 0) a.lse[(int64_t)r * a.nh + h] = bad ? NAN : M + logf(L);
}

}  // namespace
