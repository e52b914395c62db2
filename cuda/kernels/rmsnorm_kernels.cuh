// rmsnorm_kernels.cuh: the device code of rmsnorm.cu (RMSNorm forward and
// backward), apart from its launchers so that cuda/emu compiles it on the host
// too (DISTILL_CUDA_EMU, cuda/emu/host/shim.h first; checked by
// host/train_emu.cpp). The kernels keep their names and linkage (no anonymous
// namespace): rmsnorm.cu alone includes this, and its device build is
// instruction for instruction what it was.
#pragma once
#include "devmath.cuh"

// out(rows, d) = x·rstd·w; rstd(rows). With ob, each value rounded to bf16
// too, into ob's rows ldb apart (the next GEMM's operand, which a separate
// conversion would read out again).
__global__ void k_rmsnorm_fwd(float *out, float *rstd, const float *x, const float *w, int d, float eps,
                              __nv_bfloat16 *ob, int64_t ldb) {
  __shared__ float sh[33];
  const float *xr = x + (int64_t)blockIdx.x * d;
  float *orow = out + (int64_t)blockIdx.x * d;
  float ss = 0.f;
  for (int i = threadIdx.x; i < d; i += blockDim.x) ss += xr[i] * xr[i];
  ss = dc_block_sum(ss, sh);
  float s = dc_rms_scale(ss, d, eps);
  if (rstd != nullptr && threadIdx.x == 0) rstd[blockIdx.x] = s;
  if (ob == nullptr) {
    for (int i = threadIdx.x; i < d; i += blockDim.x) orow[i] = xr[i] * s * w[i];
    return;
  }
  __nv_bfloat16 *brow = ob + (int64_t)blockIdx.x * ldb;
  for (int i = threadIdx.x; i < d; i += blockDim.x) {
    float v = xr[i] * s * w[i];
    orow[i] = v;
    brow[i] = __float2bfloat16_rn(v);
  }
}

// dx(rows, d) += s·dy·w − x·s³·Σ(dy·w·x)/d.
__global__ void k_rmsnorm_bwd_dx(float *dx, const float *dy, const float *x, const float *w, const float *rstd, int d) {
  __shared__ float sh[33];
  int64_t o = (int64_t)blockIdx.x * d;
  float s = rstd[blockIdx.x];
  float gx = 0.f;
  for (int i = threadIdx.x; i < d; i += blockDim.x) gx += dy[o + i] * w[i] * x[o + i];
  gx = dc_block_sum(gx, sh);
  float c = gx / d * s * s * s;
  for (int i = threadIdx.x; i < d; i += blockDim.x) dx[o + i] += s * dy[o + i] * w[i] - c * x[o + i];
}

// dw(d) += Σ_r dy·x·rstd: a thread per column walks the rows (adjacent
// threads read adjacent columns: coalesced).
__global__ void k_rmsnorm_bwd_dw(float *dw, const float *dy, const float *x, const float *rstd, int rows, int d) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= d) return;
  float acc = 0.f;
  for (int r = 0; r < rows; r++) acc += dy[(int64_t)r * d + i] * x[(int64_t)r * d + i] * rstd[r];
  dw[i] += acc;
}
