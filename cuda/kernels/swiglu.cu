// swiglu.cu: a = silu(g)·u and its backward (σ: dc_sigmoid, devmath.cuh).
#include "common.cuh"
#include "swiglu_kernels.cuh"

extern "C" int dc_swiglu_fwd(float *a, uint16_t *ab, const float *g, const float *u, int64_t n) {
  if (n <= 0) return 0;
  bool a16 = (((uintptr_t)a | (uintptr_t)g | (uintptr_t)u) & 15) == 0 && ((uintptr_t)ab & 7) == 0;
  if (a16 && n >= 4) {
    int64_t n4 = n / 4;
    DC_LAUNCH(dc_blocks(n4, 256), 256, 0, k_swiglu_fwd_x4)((float4 *)a, (uint2 *)ab, (const float4 *)g,
                                                                (const float4 *)u, n4);
    DC_LAUNCHED("swiglu_fwd(n=%lld, by 4)", (long long)n);
    a += 4 * n4, g += 4 * n4, u += 4 * n4, n -= 4 * n4;
    if (ab) ab += 4 * n4;
    if (n == 0) return 0;
  }
  DC_LAUNCH(dc_blocks(n, 256), 256, 0, k_swiglu_fwd)(a, (__nv_bfloat16 *)ab, g, u, n);
  DC_LAUNCHED("swiglu_fwd(n=%lld)", (long long)n);
  return 0;
}

extern "C" int dc_swiglu_bwd(float *dg, float *du, const float *da, const float *g, const float *u, int64_t n) {
  if (n <= 0) return 0;
  DC_LAUNCH(dc_blocks(n, 256), 256, 0, k_swiglu_bwd)(dg, du, da, g, u, n);
  DC_LAUNCHED("swiglu_bwd(n=%lld)", (long long)n);
  return 0;
}
