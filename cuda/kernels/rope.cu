// rope.cu: rotary embeddings, HF's rotate-half pairing (j, j + hd/2), at
// explicit positions (packed sequences restart at 0). The cos/sin tables come
// from the host (core/model computes them, llama3 and linear scaling
// included), so the kernel is the same for every scaling.
#include "common.cuh"
#include "rope_kernels.cuh"

extern "C" int dc_rope(float *x, const int32_t *pos, const float *cos_t, const float *sin_t,
                       int n, int n_heads, int hd, int max_pos, int inverse) {
  if (hd % 2 != 0) return dc_fail("head dim must be even", "rope(n=%d, heads=%d, hd=%d)", n, n_heads, hd);
  int64_t total = (int64_t)n * n_heads * (hd / 2);
  if (total == 0) return 0;
  DC_LAUNCH(dc_blocks(total, 256), 256, 0, k_rope)(x, pos, cos_t, sin_t, n, n_heads, hd, max_pos, inverse ? -1.f : 1.f);
  DC_LAUNCHED("rope(n=%d, heads=%d, hd=%d, max_pos=%d, inverse=%d)", n, n_heads, hd, max_pos, inverse);
  return 0;
}
