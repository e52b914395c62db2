// kd.cu: logit distillation per row, one block per row, the vocabulary in
// strides of the block: three passes (the log-sum-exps at τ = 1 and τ, the
// divergence and its mean term, then the gradient written over z), as
// core/train's KD.row computes them in f64 on the host, and in double here.
#include "common.cuh"
#include "kd_kernels.cuh"

extern "C" int dc_kd_rows(float *loss, float *z, const float *t, const int32_t *target, int rows, int vocab,
                          int div, float tau, float alpha, float beta, float scale, const float *row_scale) {
  if (rows <= 0) return 0;
  if (vocab <= 0 || tau <= 0.f || div < 0 || div > 2)
    return dc_fail("bad arguments", "kd_rows(rows=%d, vocab=%d, div=%d, tau=%g)", rows, vocab, div, tau);
  DC_LAUNCH(rows, 512, 0, k_kd_rows)(loss, z, t, target, vocab, div, (double)tau, (double)alpha, (double)beta,
                                          scale, row_scale);
  DC_LAUNCHED("kd_rows(rows=%d, vocab=%d, div=%d)", rows, vocab, div);
  return 0;
}
