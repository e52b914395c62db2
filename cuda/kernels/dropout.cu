// dropout.cu: LoRA dropout. The mask is a pure function of (base, element),
// the hash core/train uses, so the device's masks are the host's bit for bit
// and the forward, its recompute and the backward agree without storing one.
#include "common.cuh"

__device__ __forceinline__ uint64_t dc_mix(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

__global__ void k_dropout(float *dst, const float *x, int64_t n, uint64_t base, uint64_t thresh, float keep) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    dst[i] = dc_mix(base + (uint64_t)i) < thresh ? 0.f : x[i] * keep;
}

__global__ void k_dropout_add(float *dx, const float *g, int64_t n, uint64_t base, uint64_t thresh, float keep) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    if (dc_mix(base + (uint64_t)i) >= thresh) dx[i] += g[i] * keep;
}

extern "C" int dc_dropout(float *dst, const float *x, int64_t n, uint64_t base, uint64_t thresh, float keep) {
  if (n <= 0) return 0;
  k_dropout<<<dc_blocks(n, 256), 256, 0, dc_stream>>>(dst, x, n, base, thresh, keep);
  DC_LAUNCHED("dropout(n=%lld)", (long long)n);
  return 0;
}

extern "C" int dc_dropout_add(float *dx, const float *g, int64_t n, uint64_t base, uint64_t thresh, float keep) {
  if (n <= 0) return 0;
  k_dropout_add<<<dc_blocks(n, 256), 256, 0, dc_stream>>>(dx, g, n, base, thresh, keep);
  DC_LAUNCHED("dropout_add(n=%lld)", (long long)n);
  return 0;
}
