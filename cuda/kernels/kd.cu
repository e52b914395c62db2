// kd.cu: logit distillation per row, one block per row, the vocabulary in
// strides of the block: three passes (the log-sum-exps at τ = 1 and τ, the
// divergence and its mean term, then the gradient written over z), as
// core/train's KD.row computes them in f64 on the host.
#include "common.cuh"

// log(β·p_t + (1−β)·p_s) from the log-probabilities, so that two tiny
// probabilities do not round their mixture to 0 (log 0 = −inf) in f32.
__device__ __forceinline__ float kd_log_mix(float lt, float ls, float lbeta, float l1beta) {
  float a = lbeta + lt, b = l1beta + ls;
  float hi = fmaxf(a, b);
  if (hi == -INFINITY) return -INFINITY;
  return hi + log1pf(expf(-fabsf(a - b)));
}

__global__ void k_kd_rows(float *loss, float *z, const float *t, const int32_t *target, int vocab, int div,
                          float tau, float alpha, float beta, float scale) {
  __shared__ float sh[33];
  float *zr = z + (int64_t)blockIdx.x * vocab;
  const float *tr = t + (int64_t)blockIdx.x * vocab;
  int tg = target[blockIdx.x];
  if (tg < 0 || tg >= vocab) {
    if (threadIdx.x == 0) loss[blockIdx.x] = NAN;
    return;
  }
  float inv = 1.f / tau;
  float lbeta = logf(beta), l1beta = log1pf(-beta);  // JSD's weights, in log space
  // Pass 1: maxima, then the three log-sum-exps.
  float mz = -INFINITY, mt = -INFINITY;
  for (int j = threadIdx.x; j < vocab; j += blockDim.x) {
    mz = fmaxf(mz, zr[j]);
    mt = fmaxf(mt, tr[j]);
  }
  mz = dc_block_max(mz, sh);
  mt = dc_block_max(mt, sh);
  float s1 = 0.f, ss = 0.f, st = 0.f;
  for (int j = threadIdx.x; j < vocab; j += blockDim.x) {
    s1 += expf(zr[j] - mz);
    ss += expf((zr[j] - mz) * inv);
    st += expf((tr[j] - mt) * inv);
  }
  s1 = dc_block_sum(s1, sh);
  ss = dc_block_sum(ss, sh);
  st = dc_block_sum(st, sh);
  float lse1 = mz + logf(s1), lseS = mz * inv + logf(ss), lseT = mt * inv + logf(st);
  // Pass 2: the divergence (and JSD's Σ p_s·g, reverse KL's is the divergence).
  float dv = 0.f, mean = 0.f;
  for (int j = threadIdx.x; j < vocab; j += blockDim.x) {
    float ls = zr[j] * inv - lseS, lt = tr[j] * inv - lseT;
    float ps = expf(ls), pt = expf(lt);
    if (div == 0) {
      dv += pt * (lt - ls);
    } else if (div == 1) {
      dv += ps * (ls - lt);
    } else {
      float lm = kd_log_mix(lt, ls, lbeta, l1beta);
      if (pt > 0.f) dv += beta * pt * (lt - lm);
      if (ps > 0.f) {
        float g = (1.f - beta) * (ls - lm);
        dv += (1.f - beta) * ps * (ls - lm);
        mean += ps * g;
      }
    }
  }
  dv = dc_block_sum(dv, sh);
  if (div == 2) mean = dc_block_sum(mean, sh);
  if (div == 1) mean = dv;
  float ztg = zr[tg];
  float w = (1.f - alpha) * tau * tau;
  if (threadIdx.x == 0) loss[blockIdx.x] = alpha * (lse1 - ztg) + w * dv;
  __syncthreads();  // every thread has read zr[tg] before any overwrites it
  // Pass 3: d loss / d z, scaled, over z.
  for (int j = threadIdx.x; j < vocab; j += blockDim.x) {
    float ls = zr[j] * inv - lseS, lt = tr[j] * inv - lseT;
    float ps = expf(ls), pt = expf(lt), g;
    if (div == 0) {
      g = (ps - pt) * inv;
    } else if (div == 1) {
      g = ps * ((ls - lt) - mean) * inv;
    } else {
      float gj = ps > 0.f ? (1.f - beta) * (ls - kd_log_mix(lt, ls, lbeta, l1beta)) : 0.f;
      g = ps * (gj - mean) * inv;
    }
    float p1 = expf(zr[j] - lse1);
    float d = alpha * p1 + w * g - (j == tg ? alpha : 0.f);
    zr[j] = scale * d;
  }
}

extern "C" int dc_kd_rows(float *loss, float *z, const float *t, const int32_t *target, int rows, int vocab,
                          int div, float tau, float alpha, float beta, float scale) {
  if (rows <= 0) return 0;
  if (vocab <= 0 || tau <= 0.f || div < 0 || div > 2)
    return dc_fail("bad arguments", "kd_rows(rows=%d, vocab=%d, div=%d, tau=%g)", rows, vocab, div, tau);
  k_kd_rows<<<rows, 512, 0, dc_stream>>>(loss, z, t, target, vocab, div, tau, alpha, beta, scale);
  DC_LAUNCHED("kd_rows(rows=%d, vocab=%d, div=%d)", rows, vocab, div);
  return 0;
}
