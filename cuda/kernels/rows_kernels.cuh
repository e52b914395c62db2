// rows_kernels.cuh: the device code of rows.cu (row gathers and scatters by an
// index list), apart from its launchers so that cuda/emu compiles it on the
// host too (DISTILL_CUDA_EMU, cuda/emu/host/shim.h first; checked by
// host/train_emu.cpp). The kernels keep their names and linkage (no anonymous
// namespace): rows.cu alone includes this, and its device build is instruction
// for instruction what it was.
#pragma once
#include "devmath.cuh"

// An index outside src's rows gathers a NaN row (never a read past them).
__global__ void k_gather_rows(float *dst, const float *src, const int32_t *idx, int d, int src_rows) {
  int r = idx[blockIdx.x];
  float *o = dst + (int64_t)blockIdx.x * d;
  if (r < 0 || r >= src_rows) {
    for (int j = threadIdx.x; j < d; j += blockDim.x) o[j] = NAN;
    return;
  }
  const float *s = src + (int64_t)r * d;
  for (int j = threadIdx.x; j < d; j += blockDim.x) o[j] = s[j];
}

// x's rows idx[j] scaled by scale[j] (an index outside x's rows: nothing).
__global__ void k_scale_rows(float *x, const int32_t *idx, const float *scale, int d, int rows) {
  int r = idx[blockIdx.x];
  if (r < 0 || r >= rows) return;
  float s = scale[blockIdx.x];
  float *o = x + (int64_t)r * d;
  for (int j = threadIdx.x; j < d; j += blockDim.x) o[j] *= s;
}

// An index outside dst's rows scatters nothing (never a write past them).
__global__ void k_scatter_rows(float *dst, const float *src, const int32_t *idx, int d, int dst_rows) {
  int r = idx[blockIdx.x];
  if (r < 0 || r >= dst_rows) return;
  const float *s = src + (int64_t)blockIdx.x * d;
  float *o = dst + (int64_t)r * d;
  for (int j = threadIdx.x; j < d; j += blockDim.x) o[j] = s[j];
}
