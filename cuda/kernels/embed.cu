// embed.cu: embedding gather (widening the table's dtype to f32) and its
// backward, a scatter-add with f32 atomics (order-dependent rounding where an
// id repeats; the parity tests allow for it).
#include "common.cuh"

__global__ void k_embed_fwd(float *out, const void *table, int dtype, const int32_t *ids, int n, int d, int vocab) {
  int64_t total = (int64_t)n * d;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
    int id = ids[i / d];
    if (id < 0 || id >= vocab) {  // NaN rows, not stray reads (callers check ids first)
      out[i] = NAN;
      continue;
    }
    int64_t e = (int64_t)id * d + i % d;
    float v;
    switch (dtype) {
      case 1: v = __half2float(((const __half *)table)[e]); break;
      case 2: v = __bfloat162float(((const __nv_bfloat16 *)table)[e]); break;
      default: v = ((const float *)table)[e];
    }
    out[i] = v;
  }
}

__global__ void k_embed_bwd(float *dtable, const float *dout, const int32_t *ids, int n, int d, int vocab) {
  int64_t total = (int64_t)n * d;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
    int id = ids[i / d];
    if (id >= 0 && id < vocab) atomicAdd(&dtable[(int64_t)id * d + i % d], dout[i]);
  }
}

extern "C" int dc_embed_fwd(float *out, const void *table, int dtype, const int32_t *ids, int n, int d, int vocab) {
  if (dtype < 0 || dtype > 2) return dc_fail("unknown dtype", "embed_fwd(n=%d, d=%d, vocab=%d, dtype=%d)", n, d, vocab, dtype);
  if ((int64_t)n * d == 0) return 0;
  k_embed_fwd<<<dc_blocks((int64_t)n * d, 256), 256, 0, dc_stream>>>(out, table, dtype, ids, n, d, vocab);
  DC_LAUNCHED("embed_fwd(n=%d, d=%d, vocab=%d, dtype=%d)", n, d, vocab, dtype);
  return 0;
}

extern "C" int dc_embed_bwd(float *dtable, const float *dout, const int32_t *ids, int n, int d, int vocab) {
  if ((int64_t)n * d == 0) return 0;
  k_embed_bwd<<<dc_blocks((int64_t)n * d, 256), 256, 0, dc_stream>>>(dtable, dout, ids, n, d, vocab);
  DC_LAUNCHED("embed_bwd(n=%d, d=%d, vocab=%d)", n, d, vocab);
  return 0;
}
