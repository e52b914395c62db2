// dropout_kernels.cuh: the device code of dropout.cu (LoRA dropout's counter-
// based masks), apart from its launchers so that cuda/emu compiles it on the
// host too (DISTILL_CUDA_EMU, cuda/emu/host/shim.h first; checked by
// host/train_emu.cpp). The kernels keep their names and linkage (no anonymous
// namespace): dropout.cu alone includes this, and its device build is
// instruction for instruction what it was.
#pragma once
#include "devmath.cuh"

__device__ __forceinline__ uint64_t dc_mix(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// base_at, when not null, holds the key in place of base: read on the
// device, so a recorded step's launch takes each step's key (devnet's step
// graphs).
__global__ void k_dropout(float *dst, const float *x, int64_t n, uint64_t base, const uint64_t *base_at,
                          uint64_t thresh, float keep) {
  if (base_at != nullptr) base = *base_at;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    dst[i] = dc_mix(base + (uint64_t)i) < thresh ? 0.f : x[i] * keep;
}

__global__ void k_dropout_add(float *dx, const float *g, int64_t n, uint64_t base, const uint64_t *base_at,
                              uint64_t thresh, float keep) {
  if (base_at != nullptr) base = *base_at;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    if (dc_mix(base + (uint64_t)i) >= thresh) dx[i] += g[i] * keep;
}
