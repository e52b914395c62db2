// bf16_rows.cuh: f32 rows rounded into bf16 rows of another stride — the
// device code both convert.cu (dc_f32_to_bf16_2d) and nf4.cu (dc_nf4_stage,
// which runs such jobs in the launch that dequantises a tile) share — and
// four floats packed into bf16 and back. Inline
// functions only (no kernels, so no linkage to clash); no CUDA runtime
// includes, so cuda/emu compiles it on the host too (shim.h first).
#pragma once
#include "distill_cuda.h"

// By 4 when cols and both strides are multiples of 4 and src is 16-byte,
// dst 8-byte aligned (the launchers and the stage kernel decide alike).
__host__ __device__ inline bool dc_bf16_rows_by4(const void *dst, int64_t ldd, const void *src, int64_t lds, int64_t cols) {
  return cols % 4 == 0 && ldd % 4 == 0 && lds % 4 == 0 && ((uintptr_t)src & 15) == 0 && ((uintptr_t)dst & 7) == 0;
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

// dst(rows, ldd) = bf16(scale·src(rows, lds)) over the first cols columns
// (scale·x rounded to f32 first; exact for scale 1), elements i0, i0 + step, …
__device__ __forceinline__ void bf16_rows_by1(__nv_bfloat16 *dst, int64_t ldd, const float *src, int64_t lds, int64_t rows,
                                              int64_t cols, float scale, int64_t i0, int64_t step) {
  const int64_t n = rows * cols;
  for (int64_t i = i0; i < n; i += step) {
    const int64_t r = i / cols, c = i - r * cols;
    dst[r * ldd + c] = __float2bfloat16_rn(src[r * lds + c] * scale);
  }
}

// The same by groups of 4: strides and cols in groups (c4 = cols/4).
__device__ __forceinline__ void bf16_rows_by4(uint2 *dst, int64_t ldd4, const float4 *src, int64_t lds4, int64_t rows, int64_t c4,
                                              float scale, int64_t i0, int64_t step) {
  const int64_t n = rows * c4;
  for (int64_t i = i0; i < n; i += step) {
    const int64_t r = i / c4, c = i - r * c4;
    float4 v = src[r * lds4 + c];
    __nv_bfloat162 a = __floats2bfloat162_rn(v.x * scale, v.y * scale), b = __floats2bfloat162_rn(v.z * scale, v.w * scale);
    dst[r * ldd4 + c] = make_uint2(*reinterpret_cast<uint32_t *>(&a), *reinterpret_cast<uint32_t *>(&b));
  }
}

// One job, by 4 where it can.
__device__ __forceinline__ void bf16_rows_run(const dc_bf16_rows &j, int64_t i0, int64_t step) {
  if (dc_bf16_rows_by4(j.dst, j.ldd, j.src, j.lds, j.cols))
    bf16_rows_by4((uint2 *)j.dst, j.ldd / 4, (const float4 *)j.src, j.lds / 4, j.rows, j.cols / 4, j.scale, i0, step);
  else
    bf16_rows_by1((__nv_bfloat16 *)j.dst, j.ldd, j.src, j.lds, j.rows, j.cols, j.scale, i0, step);
}
