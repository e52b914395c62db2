#ifndef DISTILL_ROWS_H
#define DISTILL_ROWS_H
// rows.h: row gathers and scatters of the device-resident trainer (rows.cu).
#ifdef __cplusplus
extern "C" {
#endif

// dst(k, d) = src rows idx[0..k) (int32): the loss head gathers the rows
// that carry a target.
int dc_gather_rows(float *dst, const float *src, const int32_t *idx, int k, int d);
// dst rows idx[0..k) = src(k, d); other rows of dst untouched.
int dc_scatter_rows(float *dst, const float *src, const int32_t *idx, int k, int d);

#ifdef __cplusplus
}
#endif
#endif
