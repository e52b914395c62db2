// lora_kernels.cuh: the adapter's skinny products (lora.cu has the
// launchers and why). Apart so that cuda/emu compiles them on the host and
// checks them against an f64 reference (DISTILL_CUDA_EMU, shim.h first).
#pragma once
#include "devmath.cuh"

namespace {

constexpr int LR_WARPS = 4;   // lora_rows: warps a block
constexpr int LR_KC = 128;    // lora_rows: columns of W staged at a time (a float4 a lane)
constexpr int LC_WARPS = 8;   // lora_cols: warps a block, each a residue class of rows
constexpr int LC_CHUNK = 64;  // lora_cols: rows of U staged at a time

// One halving exchange of lora_rows' sums: the lanes with bit HALF/2 keep
// the upper HALF of the 2·HALF left, the others the lower, each adding its
// partner's copy of the half it keeps.
template <int HALF>
__device__ __forceinline__ void lr_halve(float *acc, int lane) {
  const bool up = lane & (HALF / 2);
#pragma unroll
  for (int i = 0; i < HALF; i++) {
    const float send = up ? acc[i] : acc[i + HALF], keep = up ? acc[i + HALF] : acc[i];
    acc[i] = keep + __shfl_xor_sync(0xffffffffu, send, HALF / 2);
  }
}

// out(n, r) = s·X(n, K)·Wᵀ, W(k, j) = w[k·wk + j·wj] for k < r, j < K (the
// adapter's A (r, K): wk = K, wj = 1; its B (K, r) read as Bᵀ: wk = 1,
// wj = r). RT ≥ r is the rank rounded up (16 or 32); a warp holds
// RPW = 64/RT rows' RT sums in each lane (its four columns of each chunk),
// reduced across the warp at the end by halving exchanges (62 shuffles for
// the 64 sums, each lane left with two). K a multiple of 4, X 16-byte
// aligned (the launcher checks). Block: LR_WARPS warps, LR_WARPS·RPW rows.
template <int RT>
__global__ void __launch_bounds__(LR_WARPS * 32) k_lora_rows(float *__restrict__ out, const float *__restrict__ x,
                                                             const float *__restrict__ w, int64_t wk, int64_t wj, int n,
                                                             int r, int K, float s) {
  constexpr int RPW = 64 / RT;
  __shared__ float4 ws[RT][LR_KC / 4];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int row0 = (blockIdx.x * LR_WARPS + warp) * RPW;
  float acc[RPW * RT];
#pragma unroll
  for (int i = 0; i < RPW * RT; i++) acc[i] = 0.f;
  for (int c0 = 0; c0 < K; c0 += LR_KC) {
    __syncthreads();  // the previous chunk's reads are done
    for (int e = threadIdx.x; e < RT * LR_KC; e += LR_WARPS * 32) {
      const int k = e / LR_KC, j = e % LR_KC;
      const float v = k < r && c0 + j < K ? w[k * wk + (int64_t)(c0 + j) * wj] : 0.f;
      reinterpret_cast<float *>(ws[k])[j] = v;
    }
    __syncthreads();
    const int j = c0 + 4 * lane;
    float4 xv[RPW];
#pragma unroll
    for (int q = 0; q < RPW; q++) {
      const int row = row0 + q;
      xv[q] = row < n && j < K ? *reinterpret_cast<const float4 *>(x + (int64_t)row * K + j) : make_float4(0.f, 0.f, 0.f, 0.f);
    }
#pragma unroll
    for (int k = 0; k < RT; k++) {
      const float4 wv = ws[k][lane];
#pragma unroll
      for (int q = 0; q < RPW; q++) {
        float a = acc[q * RT + k];
        a = fmaf(xv[q].x, wv.x, a);
        a = fmaf(xv[q].y, wv.y, a);
        a = fmaf(xv[q].z, wv.z, a);
        a = fmaf(xv[q].w, wv.w, a);
        acc[q * RT + k] = a;
      }
    }
  }
  // Halving exchanges: at offset o the lanes with bit o keep the upper half
  // of what is left and add the partner's, so after the five, lane l holds
  // the warp's totals of sums 2l and 2l + 1.
  static_assert(RPW * RT == 64, "64 sums a lane: five halvings leave two");
  lr_halve<32>(acc, lane);
  lr_halve<16>(acc, lane);
  lr_halve<8>(acc, lane);
  lr_halve<4>(acc, lane);
  lr_halve<2>(acc, lane);
#pragma unroll
  for (int m = 0; m < 2; m++) {
    const int idx = 2 * lane + m, q = idx / RT, k = idx % RT, row = row0 + q;
    if (row < n && k < r) out[(int64_t)row * r + k] = s * acc[m];
  }
}

// c(j, k) += s·Σ_i X(i, j)·U(i, k) for j < J, k < r: c at c[j·cj + k·ck]
// (the adapter's dB (J, r) from dy and u: cj = r, ck = 1; its dA (r, J)
// from x and du: cj = 1, ck = J). X (n, J), U (n, r). A block takes 32
// columns (a lane each: a warp reads 128 contiguous bytes of a row), its
// warps the rows in turn (warp w rows w, w + LC_WARPS, …) with RT sums a
// lane, U's rows staged LC_CHUNK at a time and read four ranks a load;
// the warps' sums are added in a fixed order, so results do not depend on
// scheduling (no atomics).
template <int RT>
__global__ void __launch_bounds__(LC_WARPS * 32) k_lora_cols(float *__restrict__ c, int64_t cj, int64_t ck,
                                                             const float *__restrict__ x, const float *__restrict__ u,
                                                             int n, int J, int r, float s) {
  __shared__ float4 us[LC_CHUNK][RT / 4];
  __shared__ float red[LC_WARPS][RT][33];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, j = blockIdx.x * 32 + lane;
  float acc[RT];
#pragma unroll
  for (int k = 0; k < RT; k++) acc[k] = 0.f;
  for (int i0 = 0; i0 < n; i0 += LC_CHUNK) {
    __syncthreads();  // the previous chunk's reads are done
    for (int e = threadIdx.x; e < LC_CHUNK * RT; e += LC_WARPS * 32) {
      const int i = e / RT, k = e % RT;
      reinterpret_cast<float *>(us[i])[k] = i0 + i < n && k < r ? u[(int64_t)(i0 + i) * r + k] : 0.f;
    }
    __syncthreads();
    for (int i = warp; i < LC_CHUNK && i0 + i < n; i += LC_WARPS) {
      const float xv = j < J ? x[(int64_t)(i0 + i) * J + j] : 0.f;
#pragma unroll
      for (int k4 = 0; k4 < RT / 4; k4++) {
        const float4 uv = us[i][k4];
        acc[4 * k4] = fmaf(xv, uv.x, acc[4 * k4]);
        acc[4 * k4 + 1] = fmaf(xv, uv.y, acc[4 * k4 + 1]);
        acc[4 * k4 + 2] = fmaf(xv, uv.z, acc[4 * k4 + 2]);
        acc[4 * k4 + 3] = fmaf(xv, uv.w, acc[4 * k4 + 3]);
      }
    }
  }
#pragma unroll
  for (int k = 0; k < RT; k++) red[warp][k][lane] = acc[k];
  __syncthreads();
  // Thread t adds up column lane t%32's sums for ranks t/32, t/32 + 8, …
  for (int k = warp; k < RT; k += LC_WARPS) {
    float v = 0.f;
#pragma unroll
    for (int w2 = 0; w2 < LC_WARPS; w2++) v += red[w2][k][lane];
    if (j < J && k < r) c[(int64_t)j * cj + (int64_t)k * ck] += s * v;
  }
}

}  // namespace
