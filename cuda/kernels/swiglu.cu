// swiglu.cu: a = silu(g)·u and its backward (σ: dc_sigmoid, devmath.cuh).
#include "common.cuh"
#include "swiglu_kernels.cuh"

// gb, ub: both or neither (the kept bf16 copies of g and u).
extern "C" int dc_swiglu_fwd(float *a, uint16_t *ab, uint16_t *gb, uint16_t *ub, const float *g, const float *u,
                             int64_t n) {
  if (n <= 0) return 0;
  if ((gb == nullptr) != (ub == nullptr)) return dc_fail("gb and ub go together", "swiglu_fwd(n=%lld)", (long long)n);
  bool a16 = (((uintptr_t)a | (uintptr_t)g | (uintptr_t)u) & 15) == 0 &&
             (((uintptr_t)ab | (uintptr_t)gb | (uintptr_t)ub) & 7) == 0;
  if (a16 && n >= 4) {
    int64_t n4 = n / 4;
    DC_LAUNCH(dc_blocks(n4, 256), 256, 0, k_swiglu_fwd_x4)((float4 *)a, (uint2 *)ab, (uint2 *)gb, (uint2 *)ub,
                                                                (const float4 *)g, (const float4 *)u, n4);
    DC_LAUNCHED("swiglu_fwd(n=%lld, by 4)", (long long)n);
    a += 4 * n4, g += 4 * n4, u += 4 * n4, n -= 4 * n4;
    if (ab) ab += 4 * n4;
    if (gb) gb += 4 * n4, ub += 4 * n4;
    if (n == 0) return 0;
  }
  DC_LAUNCH(dc_blocks(n, 256), 256, 0, k_swiglu_fwd)(a, (__nv_bfloat16 *)ab, (__nv_bfloat16 *)gb,
                                                     (__nv_bfloat16 *)ub, g, u, n);
  DC_LAUNCHED("swiglu_fwd(n=%lld)", (long long)n);
  return 0;
}

extern "C" int dc_swiglu_bwd(float *dg, float *du, const float *da, const float *g, const float *u, int64_t n) {
  if (n <= 0) return 0;
  DC_LAUNCH(dc_blocks(n, 256), 256, 0, k_swiglu_bwd)(dg, du, da, g, u, n);
  DC_LAUNCHED("swiglu_bwd(n=%lld)", (long long)n);
  return 0;
}

// From the kept bf16 g and u, and a (the down projection's input again)
// with it; by 4 where the pointers allow.
extern "C" int dc_swiglu_bwd_b16(float *dg, float *du, float *a, const float *da, const uint16_t *gb,
                                 const uint16_t *ub, int64_t n) {
  if (n <= 0) return 0;
  if ((((uintptr_t)dg | (uintptr_t)du | (uintptr_t)a | (uintptr_t)da) & 15) == 0 &&
      (((uintptr_t)gb | (uintptr_t)ub) & 7) == 0 && n >= 4) {
    int64_t n4 = n / 4;
    DC_LAUNCH(dc_blocks(n4, 256), 256, 0, k_swiglu_bwd_b16_x4)((float4 *)dg, (float4 *)du, (float4 *)a,
                                                                    (const float4 *)da, (const uint2 *)gb,
                                                                    (const uint2 *)ub, n4);
    DC_LAUNCHED("swiglu_bwd_b16(n=%lld, by 4)", (long long)n);
    dg += 4 * n4, du += 4 * n4, da += 4 * n4, gb += 4 * n4, ub += 4 * n4, n -= 4 * n4;
    if (a) a += 4 * n4;
    if (n == 0) return 0;
  }
  DC_LAUNCH(dc_blocks(n, 256), 256, 0, k_swiglu_bwd_b16)(dg, du, a, da, (const __nv_bfloat16 *)gb,
                                                         (const __nv_bfloat16 *)ub, n);
  DC_LAUNCHED("swiglu_bwd_b16(n=%lld)", (long long)n);
  return 0;
}
