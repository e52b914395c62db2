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

extern "C" int dc_lora_dropout_dx(float *dx, const float *du, int64_t sdu, const float *A, int64_t sa, int n, int in,
                                  int r, int members, const uint64_t *bases, const uint64_t *base_at, uint64_t thresh,
                                  float keep) {
  if (n <= 0 || in <= 0 || members <= 0) return 0;
  if (members > DC_LDX_MEMBERS || r <= 0 || r > DC_LDX_MAX_R)
    return dc_fail("at most 3 members and a rank from 1 to 512", "lora_dropout_dx(n=%d, in=%d, r=%d, members=%d)", n,
                   in, r, members);
  DcDropBases b{};
  if (bases != nullptr) b = {bases[0], members > 1 ? bases[1] : 0, members > 2 ? bases[2] : 0};
  dim3 grid((in + DC_LDX_THREADS - 1) / DC_LDX_THREADS, (n + DC_LDX_ROWS - 1) / DC_LDX_ROWS);
  DC_LAUNCH(grid, DC_LDX_THREADS, (size_t)DC_LDX_ROWS * r * sizeof(float), k_lora_dropout_dx)
  (dx, du, sdu, A, sa, n, in, r, members, b, base_at, thresh, keep);
  DC_LAUNCHED("lora_dropout_dx(n=%d, in=%d, r=%d, members=%d)", n, in, r, members);
  return 0;
}
