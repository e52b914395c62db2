// gradnorm_kernels.cuh: the device code of gradnorm.cu (the global gradient
// norm's sum of squares and the clip), apart from its launchers so that
// cuda/emu compiles it on the host too (DISTILL_CUDA_EMU, cuda/emu/host/shim.h
// first; checked by host/train_emu.cpp). The kernels keep their names and
// linkage (no anonymous namespace): gradnorm.cu alone includes this, and its
// device build is instruction for instruction what it was.
#pragma once
#include "devmath.cuh"

__global__ void k_sumsq(double *out, const float *g, int64_t n) {
  __shared__ double sh[32];
  double acc = 0;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    acc += (double)g[i] * (double)g[i];
  for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
  int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
  if (lane == 0) sh[w] = acc;
  __syncthreads();
  if (w == 0) {
    acc = lane < (int)(blockDim.x >> 5) ? sh[lane] : 0;
    for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
    if (lane == 0) atomicAdd(out, acc);  // f64 atomics: sm_60 and later
  }
}

// As torch.nn.utils.clip_grad_norm_ and core/train.ClipGradNorm.
__global__ void k_clip(float *g, int64_t n, const double *sumsq, double max_norm) {
  double norm = sqrt(*sumsq);
  if (!(norm > max_norm)) return;
  float c = (float)(max_norm / (norm + 1e-6));
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    g[i] *= c;
}
