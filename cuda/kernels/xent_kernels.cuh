// xent_kernels.cuh: the device code of xent.cu (softmax cross-entropy fused
// with its gradient), apart from its launchers so that cuda/emu compiles it on
// the host too (DISTILL_CUDA_EMU, cuda/emu/host/shim.h first; checked by
// host/train_emu.cpp). The kernels keep their names and linkage (no anonymous
// namespace): xent.cu alone includes this.
#pragma once
#include "devmath.cuh"

// A thread's running softmax statistics (max m, Σ exp(x − m)) taking in
// the values of v, branch-free: a row's −∞ logits add nothing and never
// give NaN (−∞ − −∞).
template <int N>
__device__ __forceinline__ void xent_take(float &m, float &s, const float (&v)[N]) {
  float mx = v[0];
#pragma unroll
  for (int i = 1; i < N; i++) mx = fmaxf(mx, v[i]);
  const float mn = fmaxf(m, mx), base = mn == -INFINITY ? 0.f : mn;
  float add = 0.f;
#pragma unroll
  for (int i = 0; i < N; i++) add += expf(v[i] - base);
  s = s * expf(m - base) + add;
  m = mn;
}

// XENT_U float4s a thread loads before it computes on any (the loop's trip
// count is not known when compiled, so `#pragma unroll` alone would not keep
// several loads in flight); out-of-row slots are −∞ (they add nothing).
constexpr int XENT_U = 4;

// One block a row: loss[r] = logsumexp(row) − row[target], and with grad
// the row becomes scale·(softmax − onehot) in place. The row is read as
// float4s from its first 16-byte boundary (a few scalars before and after),
// XENT_U at a time per thread: with one block a row and ~128 rows a call
// the GPU's memory is only busy if each thread keeps several loads in flight.
__global__ void k_xent(float *loss, float *logits, const int32_t *target, int vocab, float scale,
                       const float *row_scale, int grad) {
  __shared__ float shm[33], shs[33];
  float *lg = logits + (int64_t)blockIdx.x * vocab;
  int t = target[blockIdx.x];
  if (t < 0 || t >= vocab) {  // the whole block leaves: a NaN loss, not a stray read
    if (threadIdx.x == 0) loss[blockIdx.x] = NAN;
    return;
  }
  const int head = min(vocab, (int)((16 - ((uintptr_t)lg & 15)) & 15) / 4);  // floats before a 16-byte boundary
  const int n4 = (vocab - head) / 4, tail = head + 4 * n4, step = XENT_U * blockDim.x;
  float4 *body = reinterpret_cast<float4 *>(lg + head);
  float m = -INFINITY, s = 0.f;
  for (int j = threadIdx.x; j < head; j += blockDim.x) xent_take<1>(m, s, {lg[j]});
  for (int j0 = threadIdx.x; j0 < n4; j0 += step) {
    float4 x[XENT_U];
#pragma unroll
    for (int u = 0; u < XENT_U; u++) {
      const int j = j0 + u * blockDim.x;
      x[u] = j < n4 ? body[j] : make_float4(-INFINITY, -INFINITY, -INFINITY, -INFINITY);
    }
#pragma unroll
    for (int u = 0; u < XENT_U; u++) xent_take<4>(m, s, {x[u].x, x[u].y, x[u].z, x[u].w});
  }
  for (int j = tail + threadIdx.x; j < vocab; j += blockDim.x) xent_take<1>(m, s, {lg[j]});
  float bm = dc_block_max(m, shm);
  s = m == -INFINITY ? 0.f : s * expf(m - bm);
  float bs = dc_block_sum(s, shs);
  float tl = lg[t];
  if (threadIdx.x == 0) loss[blockIdx.x] = bm + logf(bs) - tl;
  if (!grad) return;
  __syncthreads();  // every thread has read lg[t]
  if (row_scale != nullptr) scale = row_scale[blockIdx.x];
  const float inv = 1.f / bs;
  for (int j = threadIdx.x; j < head; j += blockDim.x) lg[j] = scale * expf(lg[j] - bm) * inv - (j == t ? scale : 0.f);
  for (int j0 = threadIdx.x; j0 < n4; j0 += step) {
    float4 x[XENT_U];
#pragma unroll
    for (int u = 0; u < XENT_U; u++) {
      const int j = j0 + u * blockDim.x;
      if (j < n4) x[u] = body[j];
    }
#pragma unroll
    for (int u = 0; u < XENT_U; u++) {
      const int j = j0 + u * blockDim.x;
      if (j >= n4) continue;
      float4 y = x[u];
      y.x = scale * expf(y.x - bm) * inv, y.y = scale * expf(y.y - bm) * inv;
      y.z = scale * expf(y.z - bm) * inv, y.w = scale * expf(y.w - bm) * inv;
      const int d = t - head - 4 * j;  // the target's place in this float4, if it is there
      if (d == 0) y.x -= scale;
      if (d == 1) y.y -= scale;
      if (d == 2) y.z -= scale;
      if (d == 3) y.w -= scale;
      body[j] = y;
    }
  }
  for (int j = tail + threadIdx.x; j < vocab; j += blockDim.x) lg[j] = scale * expf(lg[j] - bm) * inv - (j == t ? scale : 0.f);
}
