// lora_sums.cuh: the adapter's column sums taken inside a pass over an
// activation's rows — each thread 4 columns down a chunk of rows, R sums a
// column (dA += duᵀ·a in the SwiGLU backward, dB += s·dyᵀ·u where dy is
// rounded to bf16) — where a TF32 GEMM read the activation again: r·cols
// outputs over K = rows, a product cuBLAS splits over K and serves poorly.
// Inline device code only (each kernel's file has its kernels), no CUDA
// runtime includes: cuda/emu compiles it on the host too.
#pragma once
#include "devmath.cuh"

// LoRA dropout's mask over a rows × cols input x (k_dropout's): element i
// kept where dc_mix(key + i) ≥ thresh and then scaled by keep, key base or,
// a recorded step's, *base_at; on 0: no mask.
struct lora_mask {
  int on;
  uint64_t base, thresh;
  const uint64_t *base_at;
  float keep;
};

__device__ __forceinline__ uint64_t lora_mask_key(const lora_mask &m) {
  return m.on ? (m.base_at ? *m.base_at : m.base) : 0;
}

// v (x's elements e..e+3, the key already added to e) as the mask leaves them.
__device__ __forceinline__ float4 lora_masked(float4 v, uint64_t e, const lora_mask &m) {
  v.x = dc_mix(e) < m.thresh ? 0.f : v.x * m.keep;
  v.y = dc_mix(e + 1) < m.thresh ? 0.f : v.y * m.keep;
  v.z = dc_mix(e + 2) < m.thresh ? 0.f : v.z * m.keep;
  v.w = dc_mix(e + 3) < m.thresh ? 0.f : v.w * m.keep;
  return v;
}

// acc[c][k] += v.c·w[k] for k < r (r a multiple of 4, R ≥ r): one row's
// four columns against its r weights (w 16-byte aligned, the same for
// every thread of the block: one broadcast load a float4).
template <int R>
__device__ __forceinline__ void lora_sums_row(float (&acc)[4][R], float4 v, const float *w, int r) {
  const float4 *w4 = reinterpret_cast<const float4 *>(w);
#pragma unroll
  for (int k4 = 0; k4 < R / 4; k4++) {
    if (4 * k4 >= r) break;
    const float4 x = __ldg(w4 + k4);
    const float wk[4] = {x.x, x.y, x.z, x.w};
#pragma unroll
    for (int q = 0; q < 4; q++) {
      acc[0][4 * k4 + q] = fmaf(v.x, wk[q], acc[0][4 * k4 + q]);
      acc[1][4 * k4 + q] = fmaf(v.y, wk[q], acc[1][4 * k4 + q]);
      acc[2][4 * k4 + q] = fmaf(v.z, wk[q], acc[2][4 * k4 + q]);
      acc[3][4 * k4 + q] = fmaf(v.w, wk[q], acc[3][4 * k4 + q]);
    }
  }
}

// A thread's sums for columns j..j+3 into out: a chunk's partial (part:
// stored) or the gradient itself (added, scaled by s). T: out is (cols, r)
// — dB's layout, B being out × r — else (r, cols), dA's. 16-byte aligned
// rows (cols and r multiples of 4).
template <int R, bool T>
__device__ __forceinline__ void lora_sums_store(const float (&acc)[4][R], float *out, bool part, float s, int64_t j,
                                                int64_t cols, int r) {
  if constexpr (T) {
#pragma unroll
    for (int c = 0; c < 4; c++)
#pragma unroll
      for (int k4 = 0; k4 < R / 4; k4++) {
        if (4 * k4 >= r) break;
        float4 *p = reinterpret_cast<float4 *>(out + (j + c) * r + 4 * k4);
        const float4 a = make_float4(acc[c][4 * k4], acc[c][4 * k4 + 1], acc[c][4 * k4 + 2], acc[c][4 * k4 + 3]);
        if (part) {
          *p = a;
        } else {
          float4 v = *p;
          v.x += s * a.x, v.y += s * a.y, v.z += s * a.z, v.w += s * a.w;
          *p = v;
        }
      }
  } else {
#pragma unroll
    for (int k = 0; k < R; k++) {
      if (k >= r) break;
      float4 *p = reinterpret_cast<float4 *>(out + k * cols + j);
      const float4 a = make_float4(acc[0][k], acc[1][k], acc[2][k], acc[3][k]);
      if (part) {
        *p = a;
      } else {
        float4 v = *p;
        v.x += s * a.x, v.y += s * a.y, v.z += s * a.z, v.w += s * a.w;
        *p = v;
      }
    }
  }
}

// acc[i][k] += v[i]·W[k][j..j+3] for a warp's RW rows and k < r (W: r
// rows of cols, 16-byte aligned): each float4 of W read once for the rows.
template <int R, int RW>
__device__ __forceinline__ void lora_rows_dot(float (&acc)[RW][R], const float4 (&v)[RW], const float *W, int64_t cols,
                                              int64_t j, int r) {
#pragma unroll
  for (int k = 0; k < R; k++) {
    if (k >= r) break;
    const float4 w = __ldg(reinterpret_cast<const float4 *>(W + k * cols + j));
#pragma unroll
    for (int i = 0; i < RW; i++)
      acc[i][k] = fmaf(v[i].w, w.w, fmaf(v[i].z, w.z, fmaf(v[i].y, w.y, fmaf(v[i].x, w.x, acc[i][k]))));
  }
}

// Each of the warp's acc[i][k] (k < r) summed over its lanes by a
// butterfly, in the same order every run, and handed to put(i, k, sum) on
// every lane (the caller stores lane 0's).
template <int R, int RW, class F>
__device__ __forceinline__ void lora_rows_reduce(float (&acc)[RW][R], int r, F put) {
#pragma unroll
  for (int i = 0; i < RW; i++)
#pragma unroll
    for (int k = 0; k < R; k++) {
      if (k >= r) break;
      put(i, k, dc_warp_sum(acc[i][k]));
    }
}

// The row chunks of a column-sums pass: ~64 rows a chunk, as many chunks
// as part (part_len floats, per_chunk a chunk) holds, at least one; rc
// rows each.
static inline void lora_col_chunks(int64_t rows, int64_t per_chunk, int64_t part_len, int64_t &chunks, int64_t &rc) {
  chunks = (rows + 63) / 64;
  const int64_t room = per_chunk > 0 ? part_len / per_chunk : 0;
  if (chunks > room) chunks = room;
  if (chunks < 1) chunks = 1;
  rc = rows > 0 ? (rows + chunks - 1) / chunks : 1;
  chunks = rows > 0 ? (rows + rc - 1) / rc : 0;
}
