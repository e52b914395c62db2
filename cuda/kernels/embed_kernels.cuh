// embed_kernels.cuh: the device code of embed.cu (the embedding gather and its
// scatter-add backward), apart from its launchers so that cuda/emu compiles it
// on the host too (DISTILL_CUDA_EMU, cuda/emu/host/shim.h first; checked by
// host/train_emu.cpp). The kernels keep their names and linkage (no anonymous
// namespace): embed.cu alone includes this, and its device build is
// instruction for instruction what it was.
#pragma once
#include "devmath.cuh"

__global__ void k_embed_fwd(float *out, const void *table, int dtype, const int32_t *ids, int n, int d, int vocab) {
  int64_t total = (int64_t)n * d;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
    int id = ids[i / d];
    if (id < 0 || id >= vocab) {  // NaN rows, not stray reads (callers check ids first)
      out[i] = NAN;
      continue;
    }
    int64_t e = (int64_t)id * d + i % d;
    float v;
    switch (dtype) {
      case 1: v = __half2float(((const __half *)table)[e]); break;
      case 2: v = __bfloat162float(((const __nv_bfloat16 *)table)[e]); break;
      default: v = ((const float *)table)[e];
    }
    out[i] = v;
  }
}

__global__ void k_embed_bwd(float *dtable, const float *dout, const int32_t *ids, int n, int d, int vocab) {
  int64_t total = (int64_t)n * d;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
    int id = ids[i / d];
    if (id >= 0 && id < vocab) atomicAdd(&dtable[(int64_t)id * d + i % d], dout[i]);
  }
}
