// elementwise.cu: dst += src, bias rows, scaling.
#include "common.cuh"
#include "elementwise_kernels.cuh"

extern "C" int dc_add(float *dst, const float *src, int64_t n) {
  if (n <= 0) return 0;
  DC_LAUNCH(dc_blocks(n, 256), 256, 0, k_add)(dst, src, n);
  DC_LAUNCHED("add(n=%lld)", (long long)n);
  return 0;
}

extern "C" int dc_add_bias(float *x, const float *bias, int64_t rows, int n) {
  if (rows <= 0 || n <= 0) return 0;
  DC_LAUNCH(dc_blocks(rows * n, 256), 256, 0, k_add_bias)(x, bias, rows * n, n);
  DC_LAUNCHED("add_bias(rows=%lld, n=%d)", (long long)rows, n);
  return 0;
}

extern "C" int dc_scale(float *x, float s, int64_t n) {
  if (n <= 0) return 0;
  DC_LAUNCH(dc_blocks(n, 256), 256, 0, k_scale)(x, s, n);
  DC_LAUNCHED("scale(n=%lld)", (long long)n);
  return 0;
}
