// swiglu.cu: a = silu(g)·u and its backward (σ: dc_sigmoid, devmath.cuh).
#include "common.cuh"

// ab (optional): a rounded to bf16 as well, for the next GEMM's operand.
__global__ void k_swiglu_fwd(float *a, __nv_bfloat16 *ab, const float *g, const float *u, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    float gi = g[i];
    float v = gi * dc_sigmoid(gi) * u[i];
    a[i] = v;
    if (ab) ab[i] = __float2bfloat16_rn(v);
  }
}

// The same by groups of 4 (a, g, u 16-byte aligned, ab 8-byte): the
// element-wise kernels are bound by memory, and 16-byte accesses reach more
// of it. n4 = n/4.
__global__ void k_swiglu_fwd_x4(float4 *a, uint2 *ab, const float4 *g, const float4 *u, int64_t n4) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n4; i += (int64_t)gridDim.x * blockDim.x) {
    float4 gi = g[i], ui = u[i], v;
    v.x = gi.x * dc_sigmoid(gi.x) * ui.x;
    v.y = gi.y * dc_sigmoid(gi.y) * ui.y;
    v.z = gi.z * dc_sigmoid(gi.z) * ui.z;
    v.w = gi.w * dc_sigmoid(gi.w) * ui.w;
    a[i] = v;
    if (ab) {
      __nv_bfloat162 lo = __floats2bfloat162_rn(v.x, v.y), hi = __floats2bfloat162_rn(v.z, v.w);
      ab[i] = make_uint2(*reinterpret_cast<uint32_t *>(&lo), *reinterpret_cast<uint32_t *>(&hi));
    }
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

extern "C" int dc_swiglu_fwd(float *a, uint16_t *ab, const float *g, const float *u, int64_t n) {
  if (n <= 0) return 0;
  bool a16 = (((uintptr_t)a | (uintptr_t)g | (uintptr_t)u) & 15) == 0 && ((uintptr_t)ab & 7) == 0;
  if (a16 && n >= 4) {
    int64_t n4 = n / 4;
    k_swiglu_fwd_x4<<<dc_blocks(n4, 256), 256, 0, dc_stream>>>((float4 *)a, (uint2 *)ab, (const float4 *)g,
                                                                (const float4 *)u, n4);
    DC_LAUNCHED("swiglu_fwd(n=%lld, by 4)", (long long)n);
    a += 4 * n4, g += 4 * n4, u += 4 * n4, n -= 4 * n4;
    if (ab) ab += 4 * n4;
    if (n == 0) return 0;
  }
  k_swiglu_fwd<<<dc_blocks(n, 256), 256, 0, dc_stream>>>(a, (__nv_bfloat16 *)ab, g, u, n);
  DC_LAUNCHED("swiglu_fwd(n=%lld)", (long long)n);
  return 0;
}

extern "C" int dc_swiglu_bwd(float *dg, float *du, const float *da, const float *g, const float *u, int64_t n) {
  if (n <= 0) return 0;
  k_swiglu_bwd<<<dc_blocks(n, 256), 256, 0, dc_stream>>>(dg, du, da, g, u, n);
  DC_LAUNCHED("swiglu_bwd(n=%lld)", (long long)n);
  return 0;
}
