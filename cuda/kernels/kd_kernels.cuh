// kd_kernels.cuh: the device code of kd.cu (logit distillation's loss and
// gradient per row), apart from its launchers so that cuda/emu compiles it on
// the host too (DISTILL_CUDA_EMU, cuda/emu/host/shim.h first; checked by
// host/train_emu.cpp). The kernels keep their names and linkage (no anonymous
// namespace): kd.cu alone includes this, and its device build is instruction
// for instruction what it was.
#pragma once
#include "devmath.cuh"

// Row arithmetic is in double: the log-probabilities z/τ − lse are
// differences of numbers as large as |z|/τ (hundreds at τ = 0.25), and the
// reverse KL and JSD gradients subtract the row's mean from each term, so in
// f32 their rounding (|z|/τ·6e-8) comes back as 1e-3 relative error in the
// gradient. Each exp and log is one double op per vocabulary entry, which
// is small beside the logits' GEMM.
//
// log(β·p_t + (1−β)·p_s) from the log-probabilities, so that two tiny
// probabilities do not round their mixture to 0 (log 0 = −inf).
__device__ __forceinline__ double kd_log_mix(double lt, double ls, double lbeta, double l1beta) {
  double a = lbeta + lt, b = l1beta + ls;
  double hi = fmax(a, b);
  if (hi == -INFINITY) return -INFINITY;
  return hi + log1p(exp(-fabs(a - b)));
}

// row_scale, when not null, scales each row's gradient in place of scale
// (a recorded step's: its padding rows at 0).
__global__ void k_kd_rows(float *loss, float *z, const float *t, const int32_t *target, int vocab, int div,
                          double tau, double alpha, double beta, float scale, const float *row_scale) {
  __shared__ float shf[33];
  __shared__ double sh[33];
  float *zr = z + (int64_t)blockIdx.x * vocab;
  const float *tr = t + (int64_t)blockIdx.x * vocab;
  int tg = target[blockIdx.x];
  if (tg < 0 || tg >= vocab) {
    if (threadIdx.x == 0) loss[blockIdx.x] = NAN;
    return;
  }
  if (row_scale != nullptr) scale = row_scale[blockIdx.x];
  double inv = 1.0 / tau;
  double lbeta = log(beta), l1beta = log1p(-beta);  // JSD's weights, in log space
  // Pass 1: maxima, then the three log-sum-exps.
  float mz = -INFINITY, mt = -INFINITY;
  for (int j = threadIdx.x; j < vocab; j += blockDim.x) {
    mz = fmaxf(mz, zr[j]);
    mt = fmaxf(mt, tr[j]);
  }
  mz = dc_block_max(mz, shf);
  mt = dc_block_max(mt, shf);
  double s1 = 0, ss = 0, st = 0;
  for (int j = threadIdx.x; j < vocab; j += blockDim.x) {
    s1 += exp((double)zr[j] - mz);
    ss += exp(((double)zr[j] - mz) * inv);
    st += exp(((double)tr[j] - mt) * inv);
  }
  s1 = dc_block_sum(s1, sh);
  ss = dc_block_sum(ss, sh);
  st = dc_block_sum(st, sh);
  double lse1 = mz + log(s1), lseS = mz * inv + log(ss), lseT = mt * inv + log(st);
  // Pass 2: the divergence (and JSD's Σ p_s·g, reverse KL's is the divergence).
  double dv = 0, mean = 0;
  for (int j = threadIdx.x; j < vocab; j += blockDim.x) {
    double ls = zr[j] * inv - lseS, lt = tr[j] * inv - lseT;
    double ps = exp(ls), pt = exp(lt);
    if (div == 0) {
      dv += pt * (lt - ls);
    } else if (div == 1) {
      dv += ps * (ls - lt);
    } else {
      double lm = kd_log_mix(lt, ls, lbeta, l1beta);
      if (pt > 0) dv += beta * pt * (lt - lm);
      if (ps > 0) {
        double g = (1 - beta) * (ls - lm);
        dv += ps * g;
        mean += ps * g;
      }
    }
  }
  dv = dc_block_sum(dv, sh);
  if (div == 2) mean = dc_block_sum(mean, sh);
  if (div == 1) mean = dv;
  double ztg = zr[tg];
  double w = (1 - alpha) * tau * tau;
  if (threadIdx.x == 0) loss[blockIdx.x] = (float)(alpha * (lse1 - ztg) + w * dv);
  __syncthreads();  // every thread has read zr[tg] before any overwrites it
  // Pass 3: d loss / d z, scaled, over z.
  for (int j = threadIdx.x; j < vocab; j += blockDim.x) {
    double ls = zr[j] * inv - lseS, lt = tr[j] * inv - lseT;
    double ps = exp(ls), g;
    if (div == 0) {
      g = (ps - exp(lt)) * inv;
    } else if (div == 1) {
      g = ps * ((ls - lt) - mean) * inv;
    } else {
      double gj = ps > 0 ? (1 - beta) * (ls - kd_log_mix(lt, ls, lbeta, l1beta)) : 0;
      g = ps * (gj - mean) * inv;
    }
    double p1 = exp((double)zr[j] - lse1);
    double d = alpha * p1 + w * g - (j == tg ? alpha : 0);
    zr[j] = scale * (float)d;
  }
}
