// adamw.cu: one fused AdamW step, constants precomputed on the host exactly
// as core/train's AdamW.Update does. nvcc may contract b1·m + (1−b1)·g into
// an FMA where Go rounds twice: the results can differ by an ulp.
#include "common.cuh"
#include "adamw_kernels.cuh"

extern "C" int dc_adamw(float *p, const float *g, float *m, float *v, int64_t n,
                        float b1, float b2, float decay, float step_size, float sqrt_bc2, float eps) {
  if (n <= 0) return 0;
  DC_LAUNCH(dc_blocks(n, 256), 256, 0, k_adamw)(p, g, m, v, n, b1, b2, decay, step_size, sqrt_bc2, eps);
  DC_LAUNCHED("adamw(n=%lld)", (long long)n);
  return 0;
}
