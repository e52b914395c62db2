// convert.cu: f32 <-> bf16 and f16 -> f32, element-wise.
#include "common.cuh"
#include "convert_kernels.cuh"

extern "C" int dc_f32_to_bf16(uint16_t *dst, const float *src, int64_t n) {
  if (n <= 0) return 0;
  if (((uintptr_t)src & 15) == 0 && ((uintptr_t)dst & 7) == 0 && n >= 4) {
    int64_t n4 = n / 4;
    DC_LAUNCH(dc_blocks(n4, 256), 256, 0, k_f32_to_bf16_x4)((uint2 *)dst, (const float4 *)src, n4);
    DC_LAUNCHED("f32_to_bf16(n=%lld, by 4)", (long long)n);
    src += 4 * n4, dst += 4 * n4, n -= 4 * n4;  // the tail, element by element
    if (n == 0) return 0;
  }
  DC_LAUNCH(dc_blocks(n, 256), 256, 0, k_f32_to_bf16)((__nv_bfloat16 *)dst, src, n);
  DC_LAUNCHED("f32_to_bf16(n=%lld)", (long long)n);
  return 0;
}

extern "C" int dc_f32_to_bf16_2d(uint16_t *dst, int64_t ldd, const float *src, int64_t lds, int64_t rows, int64_t cols,
                                 float scale) {
  if (rows <= 0 || cols <= 0) return 0;
  if (ldd < cols || lds < cols)
    return dc_fail("row stride below the columns", "f32_to_bf16_2d(%lld×%lld, ldd %lld, lds %lld)", (long long)rows,
                   (long long)cols, (long long)ldd, (long long)lds);
  if (dc_bf16_rows_by4(dst, ldd, src, lds, cols)) {
    DC_LAUNCH(dc_blocks(rows * cols / 4, 256), 256, 0, k_f32_to_bf16_2d_x4)((uint2 *)dst, ldd / 4, (const float4 *)src,
                                                                                lds / 4, rows, cols / 4, scale);
    DC_LAUNCHED("f32_to_bf16_2d(%lld×%lld, ldd %lld, lds %lld, by 4)", (long long)rows, (long long)cols, (long long)ldd,
                (long long)lds);
    return 0;
  }
  DC_LAUNCH(dc_blocks(rows * cols, 256), 256, 0, k_f32_to_bf16_2d)((__nv_bfloat16 *)dst, ldd, src, lds, rows, cols, scale);
  DC_LAUNCHED("f32_to_bf16_2d(%lld×%lld, ldd %lld, lds %lld)", (long long)rows, (long long)cols, (long long)ldd, (long long)lds);
  return 0;
}

extern "C" int dc_bf16_to_f32(float *dst, const uint16_t *src, int64_t n) {
  if (n <= 0) return 0;
  DC_LAUNCH(dc_blocks(n, 256), 256, 0, k_bf16_to_f32)(dst, (const __nv_bfloat16 *)src, n);
  DC_LAUNCHED("bf16_to_f32(n=%lld)", (long long)n);
  return 0;
}

extern "C" int dc_f16_to_f32(float *dst, const uint16_t *src, int64_t n) {
  if (n <= 0) return 0;
  DC_LAUNCH(dc_blocks(n, 256), 256, 0, k_f16_to_f32)(dst, (const __half *)src, n);
  DC_LAUNCHED("f16_to_f32(n=%lld)", (long long)n);
  return 0;
}
