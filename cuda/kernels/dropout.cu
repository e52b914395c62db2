// dropout.cu: LoRA dropout. The mask is a pure function of (base, element),
// the hash core/train uses, so the device's masks are the host's bit for bit
// and the forward, its recompute and the backward agree without storing one.
#include "common.cuh"
#include "dropout_kernels.cuh"

extern "C" int dc_dropout(float *dst, const float *x, int64_t n, uint64_t base, const uint64_t *base_at,
                          uint64_t thresh, float keep) {
  if (n <= 0) return 0;
  DC_LAUNCH(dc_blocks(n, 256), 256, 0, k_dropout)(dst, x, n, base, base_at, thresh, keep);
  DC_LAUNCHED("dropout(n=%lld)", (long long)n);
  return 0;
}

extern "C" int dc_dropout_add(float *dx, const float *g, int64_t n, uint64_t base, const uint64_t *base_at,
                              uint64_t thresh, float keep) {
  if (n <= 0) return 0;
  DC_LAUNCH(dc_blocks(n, 256), 256, 0, k_dropout_add)(dx, g, n, base, base_at, thresh, keep);
  DC_LAUNCHED("dropout_add(n=%lld)", (long long)n);
  return 0;
}
