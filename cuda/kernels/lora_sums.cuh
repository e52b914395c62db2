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

// A thread's column sums, 4 columns from j with R sums each, down rows
// [r0, r1): each row's loads issued a row ahead (load(row)), in flight
// while the last row's sums run; use(row, loaded) makes the row's 4 values
// (and writes what its kernel writes), summed against the row's r weights
// at w + row·r; then handed to store(acc) — the caller's lora_sums_store
// calls, one a branch (a chunk's partial, or into the gradient) so each
// folds its constants: a flag passed in here took 14 more registers.
template <int R, class Load, class Use, class Store>
__device__ __forceinline__ void lora_col_pass(int64_t r0, int64_t r1, Load load, Use use, const float *w, int r,
                                              Store store) {
  using Row = decltype(load(r0));
  float acc[4][R];
#pragma unroll
  for (int c = 0; c < 4; c++)
#pragma unroll
    for (int k = 0; k < R; k++) acc[c][k] = 0.f;
  Row next = r0 < r1 ? load(r0) : Row{};
  for (int64_t row = r0; row < r1; row++) {
    const Row cur = next;
    if (row + 1 < r1) next = load(row + 1);
    lora_sums_row<R>(acc, use(row, cur), w + row * r, r);
  }
  store(acc);
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

// A warp's pass over its RW rows from row0 and the columns [c0, c1), each
// lane 4 columns at a time: v[i] = load(row, j) for the rows (zeros past
// the last row, load not called), then dot(acc, v, j); acc starts at 0.
template <int R, int RW, class Load, class Dot>
__device__ __forceinline__ void lora_rows_pass(float (&acc)[RW][R], int64_t row0, int64_t rows, int64_t c0, int64_t c1,
                                               int lane, Load load, Dot dot) {
#pragma unroll
  for (int i = 0; i < RW; i++)
#pragma unroll
    for (int k = 0; k < R; k++) acc[i][k] = 0.f;
  for (int64_t j = c0 + 4 * lane; j < c1; j += 128) {
    float4 v[RW];
#pragma unroll
    for (int i = 0; i < RW; i++) {
      const int64_t row = row0 + i;
      v[i] = row < rows ? load(row, j) : make_float4(0.f, 0.f, 0.f, 0.f);
    }
    dot(acc, v, j);
  }
}

// The column chunks of a row-sums pass (lora_rows_pass's kernels, rows > 0,
// their RW rows a warp 4 up to rank 16, else 2: its accumulators RW·R):
// chunks of cw columns (a multiple of 128) enough for ~4,096 warps, as many
// as part (part_len floats, per_chunk a chunk) holds, at least one; groups
// of 8 warps' rows.
static inline void lora_row_chunks(int64_t rows, int64_t cols, int r, int64_t per_chunk, int64_t part_len,
                                   int64_t &chunks, int64_t &cw, int64_t &groups) {
  const int rw = r <= 16 ? 4 : 2;
  chunks = (4096 * rw + rows - 1) / rows;
  const int64_t most = (cols + 127) / 128, room = per_chunk > 0 ? part_len / per_chunk : 0;
  if (chunks > most) chunks = most;
  if (chunks > room) chunks = room;
  if (chunks < 1) chunks = 1;
  cw = ((cols + chunks - 1) / chunks + 127) / 128 * 128;
  chunks = (cols + cw - 1) / cw;
  groups = (rows + 8 * rw - 1) / (8 * rw);
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
