// swiglu.cu: a = silu(g)·u and its backward. σ in f32 with expf (the CPU
// reference takes it in f64 and rounds: within a few ulp of each other).
#include "common.cuh"

__device__ __forceinline__ float dc_sigmoid(float x) { return 1.f / (1.f + expf(-x)); }

__global__ void k_swiglu_fwd(float *a, const float *g, const float *u, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    float gi = g[i];
    a[i] = gi * dc_sigmoid(gi) * u[i];
  }
}

// du = da·silu(g); dg = da·u·σ(g)·(1 + g·(1 − σ(g))).
__global__ void k_swiglu_bwd(float *dg, float *du, const float *da, const float *g, const float *u, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    float gi = g[i], s = dc_sigmoid(gi), d = da[i], ui = u[i];
    du[i] = d * gi * s;
    dg[i] = d * ui * s * (1.f + gi * (1.f - s));
  }
}

extern "C" int dc_swiglu_fwd(float *a, const float *g, const float *u, int64_t n) {
  if (n <= 0) return 0;
  k_swiglu_fwd<<<dc_blocks(n, 256), 256, 0, dc_stream>>>(a, g, u, n);
  DC_LAUNCHED("swiglu_fwd(n=%lld)", (long long)n);
  return 0;
}

extern "C" int dc_swiglu_bwd(float *dg, float *du, const float *da, const float *g, const float *u, int64_t n) {
  if (n <= 0) return 0;
  k_swiglu_bwd<<<dc_blocks(n, 256), 256, 0, dc_stream>>>(dg, du, da, g, u, n);
  DC_LAUNCHED("swiglu_bwd(n=%lld)", (long long)n);
  return 0;
}
