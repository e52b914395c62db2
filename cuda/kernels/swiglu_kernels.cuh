// swiglu_kernels.cuh: the device code of swiglu.cu (SwiGLU forward (f32,
// optionally bf16 too, by 1 or by 4) and backward), apart from its launchers
// so that cuda/emu compiles it on the host too (DISTILL_CUDA_EMU,
// cuda/emu/host/shim.h first; checked by host/train_emu.cpp). The kernels keep
// their names and linkage (no anonymous namespace): swiglu.cu alone includes
// this, and its device build is instruction for instruction what it was.
#pragma once
#include "devmath.cuh"

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
