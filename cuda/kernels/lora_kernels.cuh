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
constexpr int LC_UNROLL = 4;  // lora_cols: rows a warp loads before their FMAs

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

// out(n, r) = s·X(n, K)·Wᵀ for the adapter's A (r, K) (TRANS false: W = A)
// or its B (K, r) read transposed (TRANS true: W(k, j) = B[j·r + k]). RT ≥ r
// is the rank rounded up (16 or 32); a warp holds RPW = 64/RT rows' RT sums
// in each lane (its four columns of each chunk of LR_KC), reduced across the
// warp at the end by halving exchanges (62 shuffles for the 64 sums, each
// lane left with two). W's chunk is staged in shared memory (rows k ≥ r
// zero); each thread's next chunk of W and of X is loaded into registers
// while the current one is computed, so a block keeps a chunk's loads in
// flight. K a multiple of 4, X 16-byte aligned (the launcher checks).
// Block: LR_WARPS warps, LR_WARPS·RPW rows.
template <int RT, bool TRANS>
__global__ void __launch_bounds__(LR_WARPS * 32) k_lora_rows(float *__restrict__ out, const float *__restrict__ x,
                                                             const float *__restrict__ w, int n, int r, int K, float s) {
  constexpr int RPW = 64 / RT, T = LR_WARPS * 32;
  static_assert(LR_KC == T, "a thread stages one column (A) or one element a rank (B) of each chunk");
  __shared__ float4 ws[RT][LR_KC / 4];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, t = threadIdx.x;
  const int row0 = (blockIdx.x * LR_WARPS + warp) * RPW;
  for (int k = r; k < RT; k++) reinterpret_cast<float *>(ws[k])[t] = 0.f;  // padding ranks: zero weights

  // A chunk's loads: of W, element i of thread t — A: rank i, column t;
  // B: the chunk's (LR_KC, r) block is contiguous, element t + i·T of it —
  // and of X, the four columns of lane's share for each of the warp's rows.
  float wv[RT];
  float4 xv[RPW];
  auto load = [&](int c0) {
#pragma unroll
    for (int i = 0; i < RT; i++) {
      float v = 0.f;
      if (!TRANS) {
        if (i < r && c0 + t < K) v = w[(int64_t)i * K + c0 + t];
      } else {
        const int e = t + i * T, jj = e / r;  // the block's row jj, rank e % r
        if (i < r && c0 + jj < K) v = w[(int64_t)c0 * r + e];
      }
      wv[i] = v;
    }
    const int j = c0 + 4 * lane;
#pragma unroll
    for (int q = 0; q < RPW; q++) {
      const int row = row0 + q;
      xv[q] = row < n && j < K ? *reinterpret_cast<const float4 *>(x + (int64_t)row * K + j) : make_float4(0.f, 0.f, 0.f, 0.f);
    }
  };
  float acc[RPW * RT];
#pragma unroll
  for (int i = 0; i < RPW * RT; i++) acc[i] = 0.f;
  load(0);
  for (int c0 = 0; c0 < K; c0 += LR_KC) {
    __syncthreads();  // the previous chunk's reads of ws are done
#pragma unroll
    for (int i = 0; i < RT; i++) {
      if (i >= r) break;
      if (!TRANS) {
        reinterpret_cast<float *>(ws[i])[t] = wv[i];
      } else {
        const int e = t + i * T;
        reinterpret_cast<float *>(ws[e % r])[e / r] = wv[i];
      }
    }
    float4 xc[RPW];
#pragma unroll
    for (int q = 0; q < RPW; q++) xc[q] = xv[q];
    __syncthreads();
    if (c0 + LR_KC < K) load(c0 + LR_KC);  // in flight while this chunk is computed
#pragma unroll
    for (int k = 0; k < RT; k++) {
      const float4 wk = ws[k][lane];
#pragma unroll
      for (int q = 0; q < RPW; q++) {
        float a = acc[q * RT + k];
        a = fmaf(xc[q].x, wk.x, a);
        a = fmaf(xc[q].y, wk.y, a);
        a = fmaf(xc[q].z, wk.z, a);
        a = fmaf(xc[q].w, wk.w, a);
        acc[q * RT + k] = a;
      }
    }
  }
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

// Σ_i X(i, j)·U(i, k) over rows [i0, i1) for j < J, k < r, into p[k·J + j]
// (split > 1: a partial, summed by k_lora_cols_sum) or, unsplit, added as
// s·sum to c[j·cj + k·ck] (the adapter's dB (J, r) from dy and u: cj = r,
// ck = 1; its dA (r, J) from x and du: cj = 1, ck = J). X (n, J), U (n, r).
// Block (tile, split): 32 columns (a lane each: a warp reads 128 contiguous
// bytes of a row) over the split's rows, its warps the rows in turn (warp w
// rows w, w + LC_WARPS, …, LC_UNROLL loaded before their FMAs), RT sums a
// lane, U's rows staged LC_CHUNK at a time and read four ranks a load; the
// warps' sums, then the splits' (k_lora_cols_sum), are added in a fixed
// order: no atomics, the same sums every run.
template <int RT>
__global__ void __launch_bounds__(LC_WARPS * 32) k_lora_cols(float *__restrict__ c, int64_t cj, int64_t ck,
                                                             float *__restrict__ part, const float *__restrict__ x,
                                                             const float *__restrict__ u, int n, int J, int r, float s) {
  __shared__ float4 us[LC_CHUNK][RT / 4];
  __shared__ float red[LC_WARPS][RT][33];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, j = blockIdx.x * 32 + lane;
  const int per = (n + gridDim.y - 1) / gridDim.y, i0s = blockIdx.y * per, i1s = min(n, i0s + per);
  float acc[RT];
#pragma unroll
  for (int k = 0; k < RT; k++) acc[k] = 0.f;
  for (int i0 = i0s; i0 < i1s; i0 += LC_CHUNK) {
    __syncthreads();  // the previous chunk's reads are done
    for (int e = threadIdx.x; e < LC_CHUNK * RT; e += LC_WARPS * 32) {
      const int i = e / RT, k = e % RT;
      reinterpret_cast<float *>(us[i])[k] = i0 + i < i1s && k < r ? u[(int64_t)(i0 + i) * r + k] : 0.f;
    }
    __syncthreads();
    for (int i = warp; i < LC_CHUNK; i += LC_WARPS * LC_UNROLL) {
      float xv[LC_UNROLL];
#pragma unroll
      for (int q = 0; q < LC_UNROLL; q++) {
        const int ii = i + q * LC_WARPS;
        xv[q] = ii < LC_CHUNK && i0 + ii < i1s && j < J ? x[(int64_t)(i0 + ii) * J + j] : 0.f;  // rows past: U is zero too
      }
#pragma unroll
      for (int q = 0; q < LC_UNROLL; q++) {
        const int ii = min(i + q * LC_WARPS, LC_CHUNK - 1);  // xv is 0 past the chunk
#pragma unroll
        for (int k4 = 0; k4 < RT / 4; k4++) {
          const float4 uv = us[ii][k4];
          acc[4 * k4] = fmaf(xv[q], uv.x, acc[4 * k4]);
          acc[4 * k4 + 1] = fmaf(xv[q], uv.y, acc[4 * k4 + 1]);
          acc[4 * k4 + 2] = fmaf(xv[q], uv.z, acc[4 * k4 + 2]);
          acc[4 * k4 + 3] = fmaf(xv[q], uv.w, acc[4 * k4 + 3]);
        }
      }
    }
  }
#pragma unroll
  for (int k = 0; k < RT; k++) red[warp][k][lane] = acc[k];
  __syncthreads();
  // Warp w adds up column lane's sums for ranks w, w + LC_WARPS, …
  for (int k = warp; k < RT; k += LC_WARPS) {
    float v = 0.f;
#pragma unroll
    for (int w2 = 0; w2 < LC_WARPS; w2++) v += red[w2][k][lane];
    if (j >= J || k >= r) continue;
    if (gridDim.y == 1)
      c[(int64_t)j * cj + (int64_t)k * ck] += s * v;
    else
      part[((int64_t)blockIdx.y * r + k) * J + j] = v;
  }
}

// c[j·cj + k·ck] += s·Σ_split part[split][k][j], the splits in order.
__global__ void k_lora_cols_sum(float *__restrict__ c, int64_t cj, int64_t ck, const float *__restrict__ part, int splits,
                                int J, int r, float s) {
  for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < (int64_t)J * r; e += (int64_t)gridDim.x * blockDim.x) {
    const int k = (int)(e / J), j = (int)(e % J);
    float v = 0.f;
    for (int sp = 0; sp < splits; sp++) v += part[((int64_t)sp * r + k) * J + j];
    c[(int64_t)j * cj + (int64_t)k * ck] += s * v;
  }
}

}  // namespace
