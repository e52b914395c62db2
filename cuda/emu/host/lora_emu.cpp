// lora_emu.cpp: lora_kernels.cuh's skinny products on the host (shim.h)
// against f64 references, launched as lora.cu launches them: lora_rows for
// x·Aᵀ (A row-major) and dy·B (B read transposed), lora_cols for dB (rows of
// r) and dA (columns of J), ranks 1–32 (both templates, ranks below them),
// row counts and widths off the blocks' sizes, accumulation into c. Run by
// emu_test.go (make test). Exit 1 on a failure.
#include "shim.h"
#include "../../kernels/lora_kernels.cuh"

#include "ref.h"

static void rows(int RT, bool trans, float *out, const float *x, const float *w, int n, int r, int K, float s) {
  int rpb = LR_WARPS * (64 / RT);
  emu_launch((n + rpb - 1) / rpb, 1, LR_WARPS * 32, 0, [&] {
    if (RT == 16 && !trans) k_lora_rows<16, false>(out, x, w, n, r, K, s);
    if (RT == 16 && trans) k_lora_rows<16, true>(out, x, w, n, r, K, s);
    if (RT == 32 && !trans) k_lora_rows<32, false>(out, x, w, n, r, K, s);
    if (RT == 32 && trans) k_lora_rows<32, true>(out, x, w, n, r, K, s);
  });
}

// As dc_lora_cols launches it, with splits of the token sum (1: straight
// into c) over a scratch of partials, then their sum in order.
static void cols(int RT, int splits, float *c, int64_t cj, int64_t ck, const float *x, const float *u, int n, int J, int r,
                 float s) {
  std::vector<float> part(splits > 1 ? (size_t)splits * r * J : 1, NAN);
  emu_launch((J + 31) / 32, splits, LC_WARPS * 32, 0, [&] {
    if (RT == 16)
      k_lora_cols<16>(c, cj, ck, part.data(), x, u, n, J, r, s);
    else
      k_lora_cols<32>(c, cj, ck, part.data(), x, u, n, J, r, s);
  });
  if (splits > 1) emu_launch(4, 1, 256, 0, [&] { k_lora_cols_sum(c, cj, ck, part.data(), splits, J, r, s); });
}

static void lora_case(int n, int K, int r, int splits) {
  const int RT = r <= 16 ? 16 : 32;
  const float s = 1.75f;
  printf("lora n=%d K=%d r=%d (RT %d), token sum in %d split(s)\n", n, K, r, RT, splits);
  // f32 FMAs over up to ~1000 terms against f64: 1e-5 of the rms.
  std::vector<float> x = randn((size_t)n * K), A = randn((size_t)r * K), B = randn((size_t)K * r), dy = randn((size_t)n * K);
  std::vector<float> u = randn((size_t)n * r);
  // u' = s·x·Aᵀ and du = s·dy·B (B (K, r) read as W(k, j) = B[j·r + k]).
  std::vector<float> got((size_t)n * r, NAN), got2((size_t)n * r, NAN);
  rows(RT, false, got.data(), x.data(), A.data(), n, r, K, s);
  rows(RT, true, got2.data(), dy.data(), B.data(), n, r, K, s);
  std::vector<double> want((size_t)n * r), want2((size_t)n * r);
  for (int i = 0; i < n; i++)
    for (int k = 0; k < r; k++) {
      double a = 0, b = 0;
      for (int j = 0; j < K; j++) a += (double)x[(size_t)i * K + j] * A[(size_t)k * K + j], b += (double)dy[(size_t)i * K + j] * B[(size_t)j * r + k];
      want[(size_t)i * r + k] = s * a, want2[(size_t)i * r + k] = s * b;
    }
  check("x·Aᵀ", got, want, 1e-5);
  check("dy·B", got2, want2, 1e-5);
  // dB (K, r) += s·dyᵀ·u and dA (r, K) += s·uᵀ·x, onto nonzero starts.
  std::vector<float> dB = randn((size_t)K * r), dA = randn((size_t)r * K);
  std::vector<double> wB(dB.begin(), dB.end()), wA(dA.begin(), dA.end());
  cols(RT, splits, dB.data(), r, 1, dy.data(), u.data(), n, K, r, s);
  cols(RT, splits, dA.data(), 1, K, x.data(), u.data(), n, K, r, s);
  for (int j = 0; j < K; j++)
    for (int k = 0; k < r; k++) {
      double b = 0, a = 0;
      for (int i = 0; i < n; i++) b += (double)dy[(size_t)i * K + j] * u[(size_t)i * r + k], a += (double)x[(size_t)i * K + j] * u[(size_t)i * r + k];
      wB[(size_t)j * r + k] += s * b, wA[(size_t)k * K + j] += s * a;
    }
  check("dB += dyᵀ·u", dB, wB, 1e-5);
  check("dA += uᵀ·x", dA, wA, 1e-5);
}

int main() {
  lora_case(37, 96, 16, 1);    // one chunk, rows off the block
  lora_case(70, 300, 8, 3);    // rank below the template's, K off the chunk, three splits (the last short)
  lora_case(129, 512, 32, 2);  // the wide template
  lora_case(5, 1028, 24, 1);   // few rows, K off the chunk by 4
  lora_case(300, 68, 1, 4);    // rank 1, rows over several U chunks and splits
  lora_case(1, 260, 12, 1);    // one row
  printf("%d failures\n", fails);
  return fails != 0;
}
