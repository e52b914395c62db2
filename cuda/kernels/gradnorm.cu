// gradnorm.cu: the global gradient norm (Σ g² in f64, as core/train's
// GradNorm) and clipping that reads it on the device.
#include "common.cuh"

__global__ void k_sumsq(double *out, const float *g, int64_t n) {
  __shared__ double sh[32];
  double acc = 0;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    acc += (double)g[i] * (double)g[i];
  for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
  int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
  if (lane == 0) sh[w] = acc;
  __syncthreads();
  if (w == 0) {
    acc = lane < (int)(blockDim.x >> 5) ? sh[lane] : 0;
    for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
    if (lane == 0) atomicAdd(out, acc);  // f64 atomics: sm_60 and later
  }
}

// As torch.nn.utils.clip_grad_norm_ and core/train.ClipGradNorm.
__global__ void k_clip(float *g, int64_t n, const double *sumsq, double max_norm) {
  double norm = sqrt(*sumsq);
  if (!(norm > max_norm)) return;
  float c = (float)(max_norm / (norm + 1e-6));
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    g[i] *= c;
}

extern "C" int dc_sumsq(double *sumsq, const float *g, int64_t n) {
  DC_CHECK(cudaMemsetAsync(sumsq, 0, sizeof(double), dc_stream), "sumsq(n=%lld): clear", (long long)n);
  if (n <= 0) return 0;
  int blocks = dc_blocks(n, 256);
  if (blocks > 1024) blocks = 1024;
  k_sumsq<<<blocks, 256, 0, dc_stream>>>(sumsq, g, n);
  DC_LAUNCHED("sumsq(n=%lld)", (long long)n);
  return 0;
}

extern "C" int dc_clip_scale(float *g, int64_t n, const double *sumsq, double max_norm) {
  if (n <= 0 || max_norm <= 0) return 0;
  k_clip<<<dc_blocks(n, 256), 256, 0, dc_stream>>>(g, n, sumsq, max_norm);
  DC_LAUNCHED("clip_scale(n=%lld, max_norm=%g)", (long long)n, max_norm);
  return 0;
}
