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

extern "C" int dc_lora_takes(int r, int K) { return r >= 1 && r <= 32 && K % 4 == 0 ? 1 : 0; }

extern "C" int dc_lora_rows(float *out, const float *x, const float *w, int64_t wk, int64_t wj, int n, int r, int K, float s) {
  if (!dc_lora_takes(r, K) || !dc_aligned16(x))
    return dc_fail("rank in [1, 32], K a multiple of 4, x 16-byte aligned", "lora_rows(n=%d, r=%d, K=%d)", n, r, K);
  if (n <= 0) return 0;
  if (r <= 16) {
    k_lora_rows<16><<<(n + LR_WARPS * 4 - 1) / (LR_WARPS * 4), LR_WARPS * 32, 0, dc_stream>>>(out, x, w, wk, wj, n, r, K, s);
  } else {
    k_lora_rows<32><<<(n + LR_WARPS * 2 - 1) / (LR_WARPS * 2), LR_WARPS * 32, 0, dc_stream>>>(out, x, w, wk, wj, n, r, K, s);
  }
  DC_LAUNCHED("lora_rows(n=%d, r=%d, K=%d)", n, r, K);
  return 0;
}

extern "C" int dc_lora_cols(float *c, int64_t cj, int64_t ck, const float *x, const float *u, int n, int J, int r, float s) {
  if (r < 1 || r > 32) return dc_fail("rank in [1, 32]", "lora_cols(n=%d, J=%d, r=%d)", n, J, r);
  if (J <= 0) return 0;
  int blocks = (J + 31) / 32;
  if (r <= 16) {
    k_lora_cols<16><<<blocks, LC_WARPS * 32, 0, dc_stream>>>(c, cj, ck, x, u, n, J, r, s);
  } else {
    k_lora_cols<32><<<blocks, LC_WARPS * 32, 0, dc_stream>>>(c, cj, ck, x, u, n, J, r, s);
  }
  DC_LAUNCHED("lora_cols(n=%d, J=%d, r=%d)", n, J, r);
  return 0;
}
