// convert.cu: f32 <-> bf16 and f16 -> f32, element-wise.
#include "common.cuh"

// Round to nearest even, NaN kept quiet: tensor.F32ToBF16's rule, which is
// also __float2bfloat16_rn's.
__global__ void k_f32_to_bf16(__nv_bfloat16 *dst, const float *src, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    dst[i] = __float2bfloat16_rn(src[i]);
}

__global__ void k_bf16_to_f32(float *dst, const __nv_bfloat16 *src, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    dst[i] = __bfloat162float(src[i]);
}

__global__ void k_f16_to_f32(float *dst, const __half *src, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    dst[i] = __half2float(src[i]);
}

extern "C" int dc_f32_to_bf16(uint16_t *dst, const float *src, int64_t n) {
  if (n <= 0) return 0;
  k_f32_to_bf16<<<dc_blocks(n, 256), 256, 0, dc_stream>>>((__nv_bfloat16 *)dst, src, n);
  DC_LAUNCHED("f32_to_bf16(n=%lld)", (long long)n);
  return 0;
}

extern "C" int dc_bf16_to_f32(float *dst, const uint16_t *src, int64_t n) {
  if (n <= 0) return 0;
  k_bf16_to_f32<<<dc_blocks(n, 256), 256, 0, dc_stream>>>(dst, (const __nv_bfloat16 *)src, n);
  DC_LAUNCHED("bf16_to_f32(n=%lld)", (long long)n);
  return 0;
}

extern "C" int dc_f16_to_f32(float *dst, const uint16_t *src, int64_t n) {
  if (n <= 0) return 0;
  k_f16_to_f32<<<dc_blocks(n, 256), 256, 0, dc_stream>>>(dst, (const __half *)src, n);
  DC_LAUNCHED("f16_to_f32(n=%lld)", (long long)n);
  return 0;
}
