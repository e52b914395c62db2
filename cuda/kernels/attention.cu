// attention.cu: causal grouped-query attention, forward and backward, the
// simple version: one block per (query row, head), the row's scores in
// shared memory, a warp per key for the dot products. It is the reference a
// tiled (flash-style) kernel will be checked against, not the fast path: it
// reads K and V once per query head and needs max_len floats of shared memory
// per block (two rows of them in backward), so a row of more keys than the
// device's opt-in shared memory allows is refused with that message.
//
// Query i attends key rows [kv_lo[i], kv_hi[i]): training passes each
// packed segment's start and i+1; decode passes 0 and pos0+t+1. A range
// outside [0, nk), empty, or longer than max_len gives that row NaNs (the
// callers build the ranges; this keeps a mistake from reading stray memory).
#include "common.cuh"

#define ATTN_THREADS 128

// s[j − lo] = scale·q·k_j for j in [lo, hi), a warp per key.
__device__ __forceinline__ void attn_scores(float *s, const float *qh, const float *k, int lo, int hi,
                                            int kvs, int koff, int hd, float scale) {
  int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
  for (int j = lo + w; j < hi; j += nw) {
    const float *kj = k + (int64_t)j * kvs + koff;
    float d = 0.f;
    for (int c = lane; c < hd; c += 32) d += qh[c] * kj[c];
    d = dc_warp_sum(d);
    if (lane == 0) s[j - lo] = d * scale;
  }
}

// out(nq, nh·hd) and lse(nq, nh).
__global__ void k_attn_fwd(float *out, float *lse, const float *q, const float *k, const float *v,
                           const int32_t *kv_lo, const int32_t *kv_hi, int nk, int nh, int nkv, int hd,
                           int max_len, float scale) {
  DC_DYNAMIC_SHARED(float, smem);
  __shared__ float red[33];
  int i = blockIdx.x / nh, h = blockIdx.x % nh, kh = h / (nh / nkv);
  const int lo = kv_lo[i], hi = kv_hi[i];
  int qs = nh * hd, kvs = nkv * hd;
  if (lo < 0 || hi > nk || hi <= lo || hi - lo > max_len) {  // a bad range: NaNs, not stray reads (hi ≤ lo first: no overflow)
    for (int c = threadIdx.x; c < hd; c += blockDim.x) out[(int64_t)i * qs + h * hd + c] = NAN;
    if (threadIdx.x == 0) lse[(int64_t)i * nh + h] = NAN;
    return;
  }
  const int L = hi - lo;
  const float *qh = q + (int64_t)i * qs + h * hd;
  float *s = smem;
  attn_scores(s, qh, k, lo, hi, kvs, kh * hd, hd, scale);
  __syncthreads();
  float m = -INFINITY;
  for (int j = threadIdx.x; j < L; j += blockDim.x) m = fmaxf(m, s[j]);
  m = dc_block_max(m, red);
  float sum = 0.f;
  for (int j = threadIdx.x; j < L; j += blockDim.x) {
    float e = expf(s[j] - m);
    s[j] = e;
    sum += e;
  }
  sum = dc_block_sum(sum, red);  // its barriers also publish s[]
  float inv = 1.f / sum;
  float *oh = out + (int64_t)i * qs + h * hd;
  for (int c = threadIdx.x; c < hd; c += blockDim.x) {
    float acc = 0.f;
    for (int j = 0; j < L; j++) acc += s[j] * v[(int64_t)(lo + j) * kvs + kh * hd + c];
    oh[c] = acc * inv;
  }
  if (threadIdx.x == 0) lse[(int64_t)i * nh + h] = m + logf(sum);
}

// P = exp(S − lse); dP_j = dO·v_j; dS = P∘(dP − dO·O)·scale;
// dq_i = Σ_j dS_j k_j (set); dk_j += dS_j q_i; dv_j += P_j dO_i (atomics:
// many queries add into one key row).
__global__ void k_attn_bwd(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                           const float *v, const float *out, const float *lse, const int32_t *kv_lo,
                           const int32_t *kv_hi, int nk, int nh, int nkv, int hd, int max_len, float scale) {
  DC_DYNAMIC_SHARED(float, smem);
  __shared__ float red[33];
  int i = blockIdx.x / nh, h = blockIdx.x % nh, kh = h / (nh / nkv);
  const int lo = kv_lo[i], hi = kv_hi[i];
  int qs = nh * hd, kvs = nkv * hd;
  int64_t qo = (int64_t)i * qs + h * hd;
  if (lo < 0 || hi > nk || hi <= lo || hi - lo > max_len) {
    for (int c = threadIdx.x; c < hd; c += blockDim.x) dq[qo + c] = NAN;
    return;
  }
  const int L = hi - lo;
  const float *qh = q + qo, *doh = dout + qo, *oh = out + qo;
  float *p = smem, *ds = smem + max_len;
  attn_scores(p, qh, k, lo, hi, kvs, kh * hd, hd, scale);
  attn_scores(ds, doh, v, lo, hi, kvs, kh * hd, hd, 1.f);
  float dd = 0.f;
  for (int c = threadIdx.x; c < hd; c += blockDim.x) dd += doh[c] * oh[c];
  dd = dc_block_sum(dd, red);  // its barriers also publish p[] and ds[]
  float l = lse[(int64_t)i * nh + h];
  for (int j = threadIdx.x; j < L; j += blockDim.x) {
    float pj = expf(p[j] - l);
    p[j] = pj;
    ds[j] = pj * (ds[j] - dd) * scale;
  }
  __syncthreads();
  for (int c = threadIdx.x; c < hd; c += blockDim.x) {
    float acc = 0.f;
    for (int j = 0; j < L; j++) {
      int64_t ko = (int64_t)(lo + j) * kvs + kh * hd + c;
      acc += ds[j] * k[ko];
      atomicAdd(&dk[ko], ds[j] * qh[c]);
      atomicAdd(&dv[ko], p[j] * doh[c]);
    }
    dq[qo + c] = acc;
  }
}

static int attn_smem(int rows_of_len, int max_len, size_t *bytes, const char *op, int nq, int nh, int nkv, int hd,
                     const void *fn) {
  *bytes = (size_t)rows_of_len * max_len * sizeof(float);
  int dev = 0, optin = 0;
  DC_CHECK(cudaGetDevice(&dev), "%s: cudaGetDevice", op);
  DC_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev), "%s: shared memory limit", op);
  if (*bytes + 33 * sizeof(float) > (size_t)optin) {
    char why[160];
    snprintf(why, sizeof why, "%zu bytes of scores exceed the device's %d bytes of shared memory per block (the tiled kernel lifts this)",
             *bytes, optin);
    return dc_fail(why, "%s(nq=%d, heads=%d, kv_heads=%d, hd=%d, max_len=%d)", op, nq, nh, nkv, hd, max_len);
  }
  if (*bytes > 48 * 1024)
    DC_CHECK(cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)*bytes),
             "%s(max_len=%d): opt in to %zu bytes of shared memory", op, max_len, *bytes);
  return 0;
}

static int attn_check(const char *op, int nq, int nh, int nkv, int hd, int max_len) {
  if (nkv <= 0 || nh % nkv != 0 || hd <= 0 || max_len < 0)
    return dc_fail("heads must be a multiple of kv heads", "%s(nq=%d, heads=%d, kv_heads=%d, hd=%d, max_len=%d)", op,
                   nq, nh, nkv, hd, max_len);
  return 0;
}

extern "C" int dc_attn_fwd(float *out, float *lse, const float *q, const float *k, const float *v,
                           const int32_t *kv_lo, const int32_t *kv_hi, int nq, int nk, int nh, int nkv, int hd,
                           int max_len, float scale) {
  if (attn_check("attn_fwd", nq, nh, nkv, hd, max_len)) return -1;
  if (nq == 0) return 0;
  size_t sm;
  if (attn_smem(1, max_len, &sm, "attn_fwd", nq, nh, nkv, hd, (const void *)k_attn_fwd)) return -1;
  DC_LAUNCH((unsigned)nq * nh, ATTN_THREADS, sm, k_attn_fwd)(out, lse, q, k, v, kv_lo, kv_hi, nk, nh, nkv, hd, max_len, scale);
  DC_LAUNCHED("attn_fwd(nq=%d, nk=%d, heads=%d, kv_heads=%d, hd=%d, max_len=%d)", nq, nk, nh, nkv, hd, max_len);
  return 0;
}

extern "C" int dc_attn_bwd(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                           const float *v, const float *out, const float *lse, const int32_t *kv_lo,
                           const int32_t *kv_hi, int nq, int nk, int nh, int nkv, int hd, int max_len, float scale) {
  if (attn_check("attn_bwd", nq, nh, nkv, hd, max_len)) return -1;
  if (nq == 0) return 0;
  size_t sm;
  if (attn_smem(2, max_len, &sm, "attn_bwd", nq, nh, nkv, hd, (const void *)k_attn_bwd)) return -1;
  DC_LAUNCH((unsigned)nq * nh, ATTN_THREADS, sm, k_attn_bwd)(dq, dk, dv, dout, q, k, v, out, lse, kv_lo, kv_hi,
                                                                  nk, nh, nkv, hd, max_len, scale);
  DC_LAUNCHED("attn_bwd(nq=%d, nk=%d, heads=%d, kv_heads=%d, hd=%d, max_len=%d)", nq, nk, nh, nkv, hd, max_len);
  return 0;
}
