// swiglu_kernels.cuh: the device code of swiglu.cu (SwiGLU forward (f32,
// optionally bf16 too, by 1 or by 4) and backward), apart from its launchers
// so that cuda/emu compiles it on the host too (DISTILL_CUDA_EMU,
// cuda/emu/host/shim.h first; checked by host/train_emu.cpp). The kernels keep
// their names and linkage (no anonymous namespace): swiglu.cu alone includes
// this, and its device build is instruction for instruction what it was.
#pragma once
#include "devmath.cuh"

// ab (optional): a rounded to bf16 as well, for the next GEMM's operand.
// gb, ub (optional, together): g and u rounded to bf16, the copies a layer
// keeps for its backward when it keeps its activations (k_swiglu_bwd_b16).
__global__ void k_swiglu_fwd(float *a, __nv_bfloat16 *ab, __nv_bfloat16 *gb, __nv_bfloat16 *ub, const float *g,
                             const float *u, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    float gi = g[i], ui = u[i];
    float v = gi * dc_sigmoid(gi) * ui;
    a[i] = v;
    if (ab) ab[i] = __float2bfloat16_rn(v);
    if (gb) gb[i] = __float2bfloat16_rn(gi), ub[i] = __float2bfloat16_rn(ui);
  }
}

// Four floats rounded to bf16, packed as they lie in memory.
__device__ __forceinline__ uint2 dc_pack_bf16x4(float4 v) {
  __nv_bfloat162 lo = __floats2bfloat162_rn(v.x, v.y), hi = __floats2bfloat162_rn(v.z, v.w);
  return make_uint2(*reinterpret_cast<uint32_t *>(&lo), *reinterpret_cast<uint32_t *>(&hi));
}

// Four bf16 (packed as in memory) widened to floats.
__device__ __forceinline__ float4 dc_unpack_bf16x4(uint2 w) {
  return make_float4(__uint_as_float(w.x << 16), __uint_as_float(w.x & 0xFFFF0000u), __uint_as_float(w.y << 16),
                     __uint_as_float(w.y & 0xFFFF0000u));
}

// The same by groups of 4 (a, g, u 16-byte aligned, ab, gb, ub 8-byte): the
// element-wise kernels are bound by memory, and 16-byte accesses reach more
// of it. n4 = n/4.
__global__ void k_swiglu_fwd_x4(float4 *a, uint2 *ab, uint2 *gb, uint2 *ub, const float4 *g, const float4 *u,
                                int64_t n4) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n4; i += (int64_t)gridDim.x * blockDim.x) {
    float4 gi = g[i], ui = u[i], v;
    v.x = gi.x * dc_sigmoid(gi.x) * ui.x;
    v.y = gi.y * dc_sigmoid(gi.y) * ui.y;
    v.z = gi.z * dc_sigmoid(gi.z) * ui.z;
    v.w = gi.w * dc_sigmoid(gi.w) * ui.w;
    a[i] = v;
    if (ab) ab[i] = dc_pack_bf16x4(v);
    if (gb) gb[i] = dc_pack_bf16x4(gi), ub[i] = dc_pack_bf16x4(ui);
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

// k_swiglu_bwd from the kept bf16 g and u; a (optional) gets silu(g)·u as
// well, the down projection's input again for its adapter's gradient.
__global__ void k_swiglu_bwd_b16(float *dg, float *du, float *a, const float *da, const __nv_bfloat16 *gb,
                                 const __nv_bfloat16 *ub, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    float gi = __bfloat162float(gb[i]), s = dc_sigmoid(gi), d = da[i], ui = __bfloat162float(ub[i]);
    du[i] = d * gi * s;
    dg[i] = d * ui * s * (1.f + gi * (1.f - s));
    if (a) a[i] = gi * s * ui;
  }
}

// By groups of 4 (dg, du, a, da 16-byte aligned, gb, ub 8-byte).
__global__ void k_swiglu_bwd_b16_x4(float4 *dg, float4 *du, float4 *a, const float4 *da, const uint2 *gb,
                                    const uint2 *ub, int64_t n4) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n4; i += (int64_t)gridDim.x * blockDim.x) {
    float4 g = dc_unpack_bf16x4(gb[i]), u = dc_unpack_bf16x4(ub[i]), d = da[i], rg, ru, ra;
    float s;
    s = dc_sigmoid(g.x), ru.x = d.x * g.x * s, rg.x = d.x * u.x * s * (1.f + g.x * (1.f - s)), ra.x = g.x * s * u.x;
    s = dc_sigmoid(g.y), ru.y = d.y * g.y * s, rg.y = d.y * u.y * s * (1.f + g.y * (1.f - s)), ra.y = g.y * s * u.y;
    s = dc_sigmoid(g.z), ru.z = d.z * g.z * s, rg.z = d.z * u.z * s * (1.f + g.z * (1.f - s)), ra.z = g.z * s * u.z;
    s = dc_sigmoid(g.w), ru.w = d.w * g.w * s, rg.w = d.w * u.w * s * (1.f + g.w * (1.f - s)), ra.w = g.w * s * u.w;
    du[i] = ru, dg[i] = rg;
    if (a) a[i] = ra;
  }
}
