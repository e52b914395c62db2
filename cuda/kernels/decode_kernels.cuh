// decode_kernels.cuh: the device code of decode.cu — what one decoded
// token's attention inputs need between the projections and the attention,
// in one launch. Apart so that cuda/emu compiles it on the host and checks
// it against an f64 reference (DISTILL_CUDA_EMU, shim.h first).
#pragma once
#include "devmath.cuh"

namespace {

// One token's q (nh heads), k and v (nkv heads each) of head size hd, after
// the projections. qn, kn: the per-head RMSNorm weights (hd; Qwen3), or
// null. RoPE at position pos[0] from the tables cs, sn ((tables, hd/2), as
// rope.cu's). kc, vc: the layer's cache rows (cap, nkv·hd); sk, sv: where
// the host's copy of the new row is gathered (nkv·hd each), or null.
struct dq_args {
  float *q;
  const float *k, *v, *qn, *kn;
  float eps;
  const int32_t *pos;
  const float *cs, *sn;
  int tables;
  float *kc, *vc, *sk, *sv;
  int cap, nh, nkv, hd;
};

// One warp per head: block b < nh is q's head b, normalised and rotated in
// place; then k's heads, normalised, rotated and written to row pos of kc
// (and sk); then v's, copied to vc (and sv). The arithmetic is
// k_rmsnorm_fwd's ((x·s)·w, the scale by dc_rms_scale; the sum of squares
// in another order) and k_rope's (HF's rotate-half pairs (j, j + hd/2)).
// A position outside the tables or the cache writes nothing (the host
// checks it before the launch).
__global__ void __launch_bounds__(32) k_decode_qkv(dq_args a) {
  const int b = blockIdx.x, lane = threadIdx.x, hd = a.hd, half = hd / 2, kvO = a.nkv * hd;
  const int p = a.pos[0];
  if (p < 0 || p >= a.cap || p >= a.tables) return;
  if (b >= a.nh + a.nkv) {  // v
    const int h = b - a.nh - a.nkv;
    for (int j = lane; j < hd; j += 32) {
      const float x = a.v[h * hd + j];
      a.vc[(int64_t)p * kvO + h * hd + j] = x;
      if (a.sv != nullptr) a.sv[h * hd + j] = x;
    }
    return;
  }
  const bool isq = b < a.nh;
  const int h = isq ? b : b - a.nh;
  const float *x = isq ? a.q + h * hd : a.k + h * hd, *w = isq ? a.qn : a.kn;
  float s = 0.f;
  if (w != nullptr) {
    float ss = 0.f;
    for (int j = lane; j < hd; j += 32) ss += x[j] * x[j];
    s = dc_rms_scale(dc_warp_sum(ss), hd, a.eps);  // every lane has read its x before any writes
  }
  for (int j = lane; j < half; j += 32) {
    float x0 = x[j], x1 = x[j + half];
    if (w != nullptr) x0 = x0 * s * w[j], x1 = x1 * s * w[j + half];
    const float c = a.cs[(int64_t)p * half + j], sn = a.sn[(int64_t)p * half + j];
    const float r0 = x0 * c - x1 * sn, r1 = x1 * c + x0 * sn;
    if (isq) {
      a.q[h * hd + j] = r0, a.q[h * hd + j + half] = r1;
      continue;
    }
    float *kr = a.kc + (int64_t)p * kvO + h * hd;
    kr[j] = r0, kr[j + half] = r1;
    if (a.sk != nullptr) a.sk[h * hd + j] = r0, a.sk[h * hd + j + half] = r1;
  }
}

// ---- Decoded rows over their own caches (a batched step) ----

// Row r of nr (one decoded token of its own sequence) writes its new key
// and value rows (k, v: (nr, nkv·hd)) into row pos[r] of its cache's layer
// buffers kc[r], vc[r] ((cap[r], nkv·hd) each). A position outside
// [0, cap[r]) writes nothing (the host checks it first).
struct kvr_args {
  const float *k, *v;
  float *const *kc, *const *vc;
  const int32_t *pos, *cap;
  int nr, kvo;
};

__global__ void k_kv_rows(kvr_args a) {
  const int r = blockIdx.x, p = a.pos[r];
  if (p < 0 || p >= a.cap[r]) return;
  for (int j = threadIdx.x; j < a.kvo; j += blockDim.x) {
    a.kc[r][(int64_t)p * a.kvo + j] = a.k[(int64_t)r * a.kvo + j];
    a.vc[r][(int64_t)p * a.kvo + j] = a.v[(int64_t)r * a.kvo + j];
  }
}

// Row r's attention over keys [0, hi[r]) of its own cache (kc[r], vc[r]:
// (rows, nkv·hd)), grouped heads: out (nr, nh·hd) = softmax(q·Kᵀ·scale)·V
// per head, lse (nr, nh) its log-sum-exp — in f32 (the flash kernels' bf16
// products serve prompts; a decoded row's cost is reading its cache). One
// block of AR_WARPS warps per (row, head); warp w runs an online softmax
// over keys w, w + AR_WARPS, …, each lane holding dims lane + 32i of q and
// of its output; the warps merge through shared memory. hd ≤ 128. A bad
// range (hi[r] ≤ 0, or past the cache's cap[r] rows) gives NaN, as the
// other attention kernels' bad rows.
constexpr int AR_WARPS = 4, AR_DIMS = 4;  // hd ≤ 32·AR_DIMS

struct ar_args {
  float *out, *lse;
  const float *q;
  const float *const *kc, *const *vc;
  const int32_t *hi, *cap;
  int nr, nh, nkv, hd;
  float scale;
};

__global__ void __launch_bounds__(AR_WARPS * 32) k_attn_rows(ar_args a) {
  __shared__ float sm[AR_WARPS], sl[AR_WARPS], sacc[AR_WARPS][32 * AR_DIMS];
  const int r = blockIdx.x, h = blockIdx.y, lane = threadIdx.x & 31, w = threadIdx.x >> 5;
  const int hd = a.hd, kvo = a.nkv * hd, g = h / (a.nh / a.nkv), hi = a.hi[r];
  const bool bad = hi <= 0 || hi > a.cap[r];
  const int n = bad ? 0 : hi;
  const float *q = a.q + ((int64_t)r * a.nh + h) * hd;
  const float *K = a.kc[r] + g * hd, *V = a.vc[r] + g * hd;
  float qv[AR_DIMS], acc[AR_DIMS];
#pragma unroll
  for (int i = 0; i < AR_DIMS; i++) {
    const int d = lane + 32 * i;
    qv[i] = d < hd ? q[d] : 0.f;
    acc[i] = 0.f;
  }
  float m = -INFINITY, l = 0.f;
  for (int j = w; j < n; j += AR_WARPS) {
    const float *kr = K + (int64_t)j * kvo, *vr = V + (int64_t)j * kvo;
    float s = 0.f;
#pragma unroll
    for (int i = 0; i < AR_DIMS; i++) {
      const int d = lane + 32 * i;
      if (d < hd) s += qv[i] * kr[d];
    }
    s = dc_warp_sum(s) * a.scale;
    const float mn = fmaxf(m, s), c = expf(m - mn), p = expf(s - mn);  // m = −∞ at first: c = 0
    l = l * c + p;
#pragma unroll
    for (int i = 0; i < AR_DIMS; i++) {
      const int d = lane + 32 * i;
      if (d < hd) acc[i] = acc[i] * c + p * vr[d];
    }
    m = mn;
  }
  if (lane == 0) sm[w] = m, sl[w] = l;
#pragma unroll
  for (int i = 0; i < AR_DIMS; i++) sacc[w][lane + 32 * i] = acc[i];
  __syncthreads();
  if (w != 0) return;
  float M = -INFINITY;
  for (int k = 0; k < AR_WARPS; k++) M = fmaxf(M, sm[k]);
  float L = 0.f, e[AR_WARPS];
  for (int k = 0; k < AR_WARPS; k++) {
    e[k] = sm[k] == -INFINITY ? 0.f : expf(sm[k] - M);  // a warp that saw no key adds nothing
    L += sl[k] * e[k];
  }
  float *o = a.out + ((int64_t)r * a.nh + h) * hd;
  for (int i = 0; i < AR_DIMS; i++) {
    const int d = lane + 32 * i;
    if (d >= hd) continue;
    float v = 0.f;
    for (int k = 0; k < AR_WARPS; k++) v += sacc[k][d] * e[k];
    o[d] = bad ? NAN : v / L;
  }
  if (lane == 0) a.lse[(int64_t)r * a.nh + h] = bad ? NAN : M + logf(L);
}

}  // namespace
