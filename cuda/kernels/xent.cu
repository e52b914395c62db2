// xent.cu: softmax cross-entropy fused with its gradient, one block per row.
// The vocabulary is read in chunks of the block's width: each thread keeps an
// online (max, sum of exp) over its strided elements, the block merges them,
// and a second pass writes the gradient in place, so no (rows, V) softmax is
// ever stored beside the logits. The sums are f32 (the CPU reference's are
// f64): the parity tests allow about 1e-5 relative on the loss. A target
// outside [0, vocab) gives its row a NaN loss (callers check targets first).
#include "common.cuh"

__global__ void k_xent(float *loss, float *logits, const int32_t *target, int vocab, float scale,
                       const float *row_scale, int grad) {
  __shared__ float shm[33], shs[33];
  float *lg = logits + (int64_t)blockIdx.x * vocab;
  int t = target[blockIdx.x];
  if (t < 0 || t >= vocab) {  // the whole block leaves: a NaN loss, not a stray read
    if (threadIdx.x == 0) loss[blockIdx.x] = NAN;
    return;
  }
  float m = -INFINITY, s = 0.f;
  for (int j = threadIdx.x; j < vocab; j += blockDim.x) {
    float x = lg[j];
    if (x > m) {
      s = s * expf(m - x) + 1.f;
      m = x;
    } else {
      s += expf(x - m);
    }
  }
  float bm = dc_block_max(m, shm);
  s = m == -INFINITY ? 0.f : s * expf(m - bm);
  float bs = dc_block_sum(s, shs);
  float tl = lg[t];
  if (threadIdx.x == 0) loss[blockIdx.x] = bm + logf(bs) - tl;
  if (!grad) return;
  __syncthreads();  // every thread has read lg[t]
  if (row_scale != nullptr) scale = row_scale[blockIdx.x];
  float inv = 1.f / bs;
  for (int j = threadIdx.x; j < vocab; j += blockDim.x) {
    float p = expf(lg[j] - bm) * inv;
    lg[j] = scale * p - (j == t ? scale : 0.f);
  }
}

extern "C" int dc_xent(float *loss, float *logits, const int32_t *target, int rows, int vocab, float scale, int grad) {
  if (rows <= 0) return 0;
  if (vocab <= 0) return dc_fail("empty vocabulary", "xent(rows=%d, vocab=%d)", rows, vocab);
  k_xent<<<rows, 512, 0, dc_stream>>>(loss, logits, target, vocab, scale, nullptr, grad);
  DC_LAUNCHED("xent(rows=%d, vocab=%d, grad=%d)", rows, vocab, grad);
  return 0;
}

extern "C" int dc_xent_rows(float *loss, float *logits, const int32_t *target, int rows, int vocab,
                            const float *row_scale) {
  if (rows <= 0) return 0;
  if (vocab <= 0) return dc_fail("empty vocabulary", "xent_rows(rows=%d, vocab=%d)", rows, vocab);
  k_xent<<<rows, 512, 0, dc_stream>>>(loss, logits, target, vocab, 0.f, row_scale, 1);
  DC_LAUNCHED("xent_rows(rows=%d, vocab=%d)", rows, vocab);
  return 0;
}
