// embed.cu: embedding gather (widening the table's dtype to f32) and its
// backward, a scatter-add with f32 atomics (order-dependent rounding where an
// id repeats; the parity tests allow for it).
#include "common.cuh"
#include "embed_kernels.cuh"

extern "C" int dc_embed_fwd(float *out, const void *table, int dtype, const int32_t *ids, int n, int d, int vocab) {
  if (dtype < 0 || dtype > 2) return dc_fail("unknown dtype", "embed_fwd(n=%d, d=%d, vocab=%d, dtype=%d)", n, d, vocab, dtype);
  if ((int64_t)n * d == 0) return 0;
  DC_LAUNCH(dc_blocks((int64_t)n * d, 256), 256, 0, k_embed_fwd)(out, table, dtype, ids, n, d, vocab);
  DC_LAUNCHED("embed_fwd(n=%d, d=%d, vocab=%d, dtype=%d)", n, d, vocab, dtype);
  return 0;
}

extern "C" int dc_embed_bwd(float *dtable, const float *dout, const int32_t *ids, int n, int d, int vocab) {
  if ((int64_t)n * d == 0) return 0;
  DC_LAUNCH(dc_blocks((int64_t)n * d, 256), 256, 0, k_embed_bwd)(dtable, dout, ids, n, d, vocab);
  DC_LAUNCHED("embed_bwd(n=%d, d=%d, vocab=%d)", n, d, vocab);
  return 0;
}
