// rows.cu: row gathers and scatters by an index list, one block per row.
#include "common.cuh"
#include "rows_kernels.cuh"

extern "C" int dc_gather_rows(float *dst, const float *src, const int32_t *idx, int k, int d, int src_rows) {
  if (k <= 0 || d <= 0) return 0;
  DC_LAUNCH(k, 256, 0, k_gather_rows)(dst, src, idx, d, src_rows);
  DC_LAUNCHED("gather_rows(k=%d, d=%d)", k, d);
  return 0;
}

extern "C" int dc_scale_rows(float *x, const int32_t *idx, const float *scale, int k, int d, int rows) {
  if (k <= 0 || d <= 0) return 0;
  DC_LAUNCH(k, 256, 0, k_scale_rows)(x, idx, scale, d, rows);
  DC_LAUNCHED("scale_rows(k=%d, d=%d)", k, d);
  return 0;
}

extern "C" int dc_scatter_rows(float *dst, const float *src, const int32_t *idx, int k, int d, int dst_rows) {
  if (k <= 0 || d <= 0) return 0;
  DC_LAUNCH(k, 256, 0, k_scatter_rows)(dst, src, idx, d, dst_rows);
  DC_LAUNCHED("scatter_rows(k=%d, d=%d)", k, d);
  return 0;
}
