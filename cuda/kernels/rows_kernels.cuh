// rows_kernels.cuh: the device code of rows.cu (row gathers and scatters by an
// index list), apart from its launchers so that cuda/emu compiles it on the
// host too (DISTILL_CUDA_EMU, cuda/emu/host/shim.h first; checked by
// host/train_emu.cpp). The kernels keep their names and linkage (no anonymous
// namespace): rows.cu alone includes this, and its device build is instruction
// for instruction what it was.
#pragma once
#include "devmath.cuh"

__global__ void k_gather_rows(float *dst, const float *src, const int32_t *idx, int d) {
  const float *s = src + (int64_t)idx[blockIdx.x] * d;
  float *o = dst + (int64_t)blockIdx.x * d;
  for (int j = threadIdx.x; j < d; j += blockDim.x) o[j] = s[j];
}

__global__ void k_scatter_rows(float *dst, const float *src, const int32_t *idx, int d) {
  const float *s = src + (int64_t)blockIdx.x * d;
  float *o = dst + (int64_t)idx[blockIdx.x] * d;
  for (int j = threadIdx.x; j < d; j += blockDim.x) o[j] = s[j];
}
