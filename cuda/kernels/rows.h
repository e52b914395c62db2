#ifndef DISTILL_ROWS_H
#define DISTILL_ROWS_H
// rows.h: row gathers and scatters of the device-resident trainer (rows.cu).
#ifdef __cplusplus
extern "C" {
#endif

// dst(k, d) = src rows idx[0..k) (int32) of its src_rows: the loss head
// gathers the rows that carry a target (an index outside: a NaN row).
int dc_gather_rows(float *dst, const float *src, const int32_t *idx, int k, int d, int src_rows);
// x's rows idx[0..k) of its rows scaled by scale[0..k) (an index outside:
// nothing): DPO's row gradients applied to the head's gradient after it.
int dc_scale_rows(float *x, const int32_t *idx, const float *scale, int k, int d, int rows);
// dst rows idx[0..k) of its dst_rows = src(k, d); other rows of dst
// untouched (an index outside: nothing written).
int dc_scatter_rows(float *dst, const float *src, const int32_t *idx, int k, int d, int dst_rows);

#ifdef __cplusplus
}
#endif
#endif
