// xent_kernels.cuh: the device code of xent.cu (softmax cross-entropy fused
// with its gradient), apart from its launchers so that cuda/emu compiles it on
// the host too (DISTILL_CUDA_EMU, cuda/emu/host/shim.h first; checked by
// host/train_emu.cpp). The kernels keep their names and linkage (no anonymous
// namespace): xent.cu alone includes this, and its device build is instruction
// for instruction what it was.
#pragma once
#include "devmath.cuh"

__global__ void k_xent(float *loss, float *logits, const int32_t *target, int vocab, float scale,
                       const float *row_scale, int grad) {
  __shared__ float shm[33], shs[33];
  float *lg = logits + (int64_t)blockIdx.x * vocab;
  int t = target[blockIdx.x];
  if (t < 0 || t >= vocab) {  // the whole block leaves: a NaN loss, not a stray read
    if (threadIdx.x == 0) loss[blockIdx.x] = NAN;
    return;
  }
  float m = -INFINITY, s = 0.f;
  for (int j = threadIdx.x; j < vocab; j += blockDim.x) {
    float x = lg[j];
    if (x > m) {
      s = s * expf(m - x) + 1.f;
      m = x;
    } else {
      s += expf(x - m);
    }
  }
  float bm = dc_block_max(m, shm);
  s = m == -INFINITY ? 0.f : s * expf(m - bm);
  float bs = dc_block_sum(s, shs);
  float tl = lg[t];
  if (threadIdx.x == 0) loss[blockIdx.x] = bm + logf(bs) - tl;
  if (!grad) return;
  __syncthreads();  // every thread has read lg[t]
  if (row_scale != nullptr) scale = row_scale[blockIdx.x];
  float inv = 1.f / bs;
  for (int j = threadIdx.x; j < vocab; j += blockDim.x) {
    float p = expf(lg[j] - bm) * inv;
    lg[j] = scale * p - (j == t ? scale : 0.f);
  }
}
