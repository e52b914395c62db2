// adamw.cu: one fused AdamW step, constants precomputed on the host exactly
// as core/train's AdamW.Update does. nvcc may contract b1·m + (1−b1)·g into
// an FMA where Go rounds twice: the results can differ by an ulp.
#include "common.cuh"

__global__ void k_adamw(float *p, const float *g, float *m, float *v, int64_t n, float b1, float b2,
                        float decay, float step_size, float sqrt_bc2, float eps) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    float gi = g[i];
    float mi = b1 * m[i] + (1.f - b1) * gi;
    float vi = b2 * v[i] + (1.f - b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    float pi = p[i] * decay;
    p[i] = pi - step_size * mi / (sqrtf(vi) / sqrt_bc2 + eps);
  }
}

extern "C" int dc_adamw(float *p, const float *g, float *m, float *v, int64_t n,
                        float b1, float b2, float decay, float step_size, float sqrt_bc2, float eps) {
  if (n <= 0) return 0;
  k_adamw<<<dc_blocks(n, 256), 256, 0, dc_stream>>>(p, g, m, v, n, b1, b2, decay, step_size, sqrt_bc2, eps);
  DC_LAUNCHED("adamw(n=%lld)", (long long)n);
  return 0;
}
