// gradnorm.cu: the global gradient norm (Σ g² in f64, as core/train's
// GradNorm) and clipping that reads it on the device.
#include "common.cuh"
#include "gradnorm_kernels.cuh"

extern "C" int dc_sumsq(double *sumsq, const float *g, int64_t n) {
  DC_CHECK(cudaMemsetAsync(sumsq, 0, sizeof(double), dc_stream), "sumsq(n=%lld): clear", (long long)n);
  if (n <= 0) return 0;
  int blocks = dc_blocks(n, 256);
  if (blocks > 1024) blocks = 1024;
  DC_LAUNCH(blocks, 256, 0, k_sumsq)(sumsq, g, n);
  DC_LAUNCHED("sumsq(n=%lld)", (long long)n);
  return 0;
}

extern "C" int dc_clip_scale(float *g, int64_t n, const double *sumsq, double max_norm) {
  if (n <= 0 || max_norm <= 0) return 0;
  DC_LAUNCH(dc_blocks(n, 256), 256, 0, k_clip)(g, n, sumsq, max_norm);
  DC_LAUNCHED("clip_scale(n=%lld, max_norm=%g)", (long long)n, max_norm);
  return 0;
}
