// rows.cu: row gathers and scatters by an index list, one block per row.
#include "common.cuh"

__global__ void k_gather_rows(float *dst, const float *src, const int32_t *idx, int d) {
  const float *s = src + (int64_t)idx[blockIdx.x] * d;
  float *o = dst + (int64_t)blockIdx.x * d;
  for (int j = threadIdx.x; j < d; j += blockDim.x) o[j] = s[j];
}

__global__ void k_scatter_rows(float *dst, const float *src, const int32_t *idx, int d) {
  const float *s = src + (int64_t)blockIdx.x * d;
  float *o = dst + (int64_t)idx[blockIdx.x] * d;
  for (int j = threadIdx.x; j < d; j += blockDim.x) o[j] = s[j];
}

extern "C" int dc_gather_rows(float *dst, const float *src, const int32_t *idx, int k, int d) {
  if (k <= 0 || d <= 0) return 0;
  k_gather_rows<<<k, 256, 0, dc_stream>>>(dst, src, idx, d);
  DC_LAUNCHED("gather_rows(k=%d, d=%d)", k, d);
  return 0;
}

extern "C" int dc_scatter_rows(float *dst, const float *src, const int32_t *idx, int k, int d) {
  if (k <= 0 || d <= 0) return 0;
  k_scatter_rows<<<k, 256, 0, dc_stream>>>(dst, src, idx, d);
  DC_LAUNCHED("scatter_rows(k=%d, d=%d)", k, d);
  return 0;
}
