// convert_kernels.cuh: the device code of convert.cu (f32 <-> bf16 and f16 ->
// f32), apart from its launchers so that cuda/emu compiles it on the host too
// (DISTILL_CUDA_EMU, cuda/emu/host/shim.h first; checked by
// host/train_emu.cpp). The kernels keep their names and linkage (no anonymous
// namespace): convert.cu alone includes this, and its device build is
// instruction for instruction what it was.
#pragma once
#include "devmath.cuh"
#include "bf16_rows.cuh"

// Round to nearest even, NaN kept quiet: tensor.F32ToBF16's rule, which is
// also __float2bfloat16_rn's.
__global__ void k_f32_to_bf16(__nv_bfloat16 *dst, const float *src, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    dst[i] = __float2bfloat16_rn(src[i]);
}

// The same over groups of 4 (src 16-byte, dst 8-byte aligned, n4 = n/4): one
// 16-byte load and one 8-byte store a thread, the copy bandwidth's pattern.
__global__ void k_f32_to_bf16_x4(uint2 *dst, const float4 *src, int64_t n4) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n4; i += (int64_t)gridDim.x * blockDim.x) {
    float4 v = src[i];
    __nv_bfloat162 a = __floats2bfloat162_rn(v.x, v.y), b = __floats2bfloat162_rn(v.z, v.w);
    dst[i] = make_uint2(*reinterpret_cast<uint32_t *>(&a), *reinterpret_cast<uint32_t *>(&b));
  }
}

// dst(rows, ldd) = bf16(scale·src(rows, lds)) over the first cols columns
// (bf16_rows.cuh): an operand written beside other columns — the
// adapter's fused GEMM reads x and u as one (n, in + r) matrix.
__global__ void k_f32_to_bf16_2d(__nv_bfloat16 *dst, int64_t ldd, const float *src, int64_t lds, int64_t rows, int64_t cols,
                                 float scale) {
  bf16_rows_by1(dst, ldd, src, lds, rows, cols, scale, blockIdx.x * (int64_t)blockDim.x + threadIdx.x,
                (int64_t)gridDim.x * blockDim.x);
}

// The same by groups of 4 (cols, ldd, lds multiples of 4; src 16-byte, dst
// 8-byte aligned), strides and cols in groups: c4 = cols/4.
__global__ void k_f32_to_bf16_2d_x4(uint2 *dst, int64_t ldd4, const float4 *src, int64_t lds4, int64_t rows, int64_t c4,
                                    float scale) {
  bf16_rows_by4(dst, ldd4, src, lds4, rows, c4, scale, blockIdx.x * (int64_t)blockDim.x + threadIdx.x,
                (int64_t)gridDim.x * blockDim.x);
}

__global__ void k_bf16_to_f32(float *dst, const __nv_bfloat16 *src, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    dst[i] = __bfloat162float(src[i]);
}

__global__ void k_f16_to_f32(float *dst, const __half *src, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    dst[i] = __half2float(src[i]);
}
