// lora.cu: the adapter's skinny products in the training step — u = x·Aᵀ
// and du = s·dy·B (lora_rows: n rows against the rank's 16–32 columns of a
// weight), dB += s·dyᵀ·u and dA += duᵀ·x (lora_cols: a sum over the n
// tokens for each of the K columns and r ranks). cuBLAS runs these shapes
// (one side of 16–32, the other two of thousands) at a small share of the
// bandwidth they need — the leave-one-out profile put the adapter at 28 ms
// of a 127 ms step for 1.5% of its FLOPs — and in TF32; these stream X once
// with every block busy, in f32 FMAs (closer to the CPU than TF32), in a
// fixed order (no atomics: the same sums every run). Ranks up to 32; other
// shapes stay on cuBLAS (the caller asks dc_lora_takes).
#include "common.cuh"
#include "lora_kernels.cuh"

#include <algorithm>
#include <climits>

extern "C" int dc_lora_takes(int r, int K) { return r >= 1 && r <= 32 && K % 4 == 0 ? 1 : 0; }

template <int RT>
static void lora_rows_launch(float *out, const float *x, const float *w, int trans, int n, int r, int K, float s) {
  const int rows = LR_WARPS * (64 / RT), blocks = (n + rows - 1) / rows;
  if (trans)
    k_lora_rows<RT, true><<<blocks, LR_WARPS * 32, 0, dc_stream>>>(out, x, w, n, r, K, s);
  else
    k_lora_rows<RT, false><<<blocks, LR_WARPS * 32, 0, dc_stream>>>(out, x, w, n, r, K, s);
}

extern "C" int dc_lora_rows(float *out, const float *x, const float *w, int trans, int n, int r, int K, float s) {
  if (!dc_lora_takes(r, K) || !dc_aligned16(x))
    return dc_fail("rank in [1, 32], K a multiple of 4, x 16-byte aligned", "lora_rows(n=%d, r=%d, K=%d)", n, r, K);
  if (n <= 0) return 0;
  if (r <= 16)
    lora_rows_launch<16>(out, x, w, trans, n, r, K, s);
  else
    lora_rows_launch<32>(out, x, w, trans, n, r, K, s);
  DC_LAUNCHED("lora_rows(n=%d, r=%d, K=%d, trans=%d)", n, r, K, trans);
  return 0;
}

// The splits of the token sum a lora_cols call uses: enough blocks for two
// a multiprocessor of a large part (264) when the columns alone give fewer,
// at least 256 rows a split, and no more than the scratch holds (splits·r·J
// floats; none: one split, added straight to c).
static int lora_splits(int n, int J, int r, int64_t scratch) {
  const int tiles = (J + 31) / 32;
  int sp = std::min((264 + tiles - 1) / tiles, std::max(1, n / 256));
  while (sp > 1 && (int64_t)sp * r * J > scratch) sp--;
  return sp;
}

extern "C" int64_t dc_lora_cols_scratch(int n, int J, int r) {
  const int sp = lora_splits(n, J, r, INT64_MAX);
  return sp > 1 ? (int64_t)sp * r * J : 0;
}

extern "C" int dc_lora_cols(float *c, int64_t cj, int64_t ck, const float *x, const float *u, int n, int J, int r, float s,
                            float *scratch, int64_t scratch_len) {
  if (r < 1 || r > 32) return dc_fail("rank in [1, 32]", "lora_cols(n=%d, J=%d, r=%d)", n, J, r);
  if (J <= 0) return 0;
  const int sp = scratch != nullptr ? lora_splits(n, J, r, scratch_len) : 1;
  const dim3 grid((J + 31) / 32, sp);
  if (r <= 16)
    k_lora_cols<16><<<grid, LC_WARPS * 32, 0, dc_stream>>>(c, cj, ck, scratch, x, u, n, J, r, s);
  else
    k_lora_cols<32><<<grid, LC_WARPS * 32, 0, dc_stream>>>(c, cj, ck, scratch, x, u, n, J, r, s);
  DC_LAUNCHED("lora_cols(n=%d, J=%d, r=%d, splits=%d)", n, J, r, sp);
  if (sp > 1) {
    k_lora_cols_sum<<<dc_blocks((int64_t)J * r, 256), 256, 0, dc_stream>>>(c, cj, ck, scratch, sp, J, r, s);
    DC_LAUNCHED("lora_cols sum(J=%d, r=%d, splits=%d)", J, r, sp);
  }
  return 0;
}
