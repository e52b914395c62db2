// xent.cu: softmax cross-entropy fused with its gradient, one block per row.
// The vocabulary is read in chunks of the block's width: each thread keeps an
// online (max, sum of exp) over its strided elements, the block merges them,
// and a second pass writes the gradient in place, so no (rows, V) softmax is
// ever stored beside the logits. The sums are f32 (the CPU reference's are
// f64): the parity tests allow about 1e-5 relative on the loss. A target
// outside [0, vocab) gives its row a NaN loss (callers check targets first).
#include "common.cuh"
#include "xent_kernels.cuh"

extern "C" int dc_xent(float *loss, float *logits, const int32_t *target, int rows, int vocab, float scale, int grad) {
  if (rows <= 0) return 0;
  if (vocab <= 0) return dc_fail("empty vocabulary", "xent(rows=%d, vocab=%d)", rows, vocab);
  DC_LAUNCH(rows, 512, 0, k_xent)(loss, logits, target, vocab, scale, nullptr, grad);
  DC_LAUNCHED("xent(rows=%d, vocab=%d, grad=%d)", rows, vocab, grad);
  return 0;
}

extern "C" int dc_xent_rows(float *loss, float *logits, const int32_t *target, int rows, int vocab,
                            const float *row_scale) {
  if (rows <= 0) return 0;
  if (vocab <= 0) return dc_fail("empty vocabulary", "xent_rows(rows=%d, vocab=%d)", rows, vocab);
  DC_LAUNCH(rows, 512, 0, k_xent)(loss, logits, target, vocab, 0.f, row_scale, 1);
  DC_LAUNCHED("xent_rows(rows=%d, vocab=%d)", rows, vocab);
  return 0;
}
