// nf4_format.cuh: core/quant's NF4 layout on the device (see nf4.cu's
// header): the code table, a weight's pointers, a block's scale and one
// element, each step rounded as the CPU. Shared by nf4.cu (dequantisation)
// and matvec_kernels.cuh; no CUDA runtime includes, so cuda/emu compiles it
// on the host too (with distill_cuda.h, plain C, for dc_nf4). In an anonymous namespace: every file that includes it
// has its own copy of the table (no relocatable device code).
#pragma once
#include "distill_cuda.h"

namespace {

// The 16 code values of QLoRA's NF4 (quant.NF4Code).
__constant__ float dc_nf4_code[16] = {
    -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
    -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
    0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
    0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f};

// The kernels take the struct by value (its pointers are device pointers).
struct nf4_args {
  const uint8_t *codes;
  const float *absmax;
  const uint8_t *qabsmax;
  const float *absmax2;
  const float *map2;
  float offset;
  int rows, cols;
};

__device__ __forceinline__ float nf4_dq_scale(float m2, float a2, float offset) {
  float s = __fmul_rn(m2, a2);  // rounded before the add, as the CPU
  return __fadd_rn(s, offset);
}

__device__ __forceinline__ float nf4_scale(const nf4_args &w, int64_t b) {
  if (w.absmax != nullptr) return w.absmax[b];
  return nf4_dq_scale(w.map2[w.qabsmax[b]], w.absmax2[b / 256], w.offset);
}

// Element e of the flattened matrix; tab is the code table (shared memory:
// a divergent __constant__ read is serialised per distinct address).
__device__ __forceinline__ float nf4_at(const nf4_args &w, const float *tab, int64_t e) {
  uint8_t c = w.codes[e >> 1];
  c = (e & 1) ? (c & 15) : (c >> 4);
  return __fmul_rn(tab[c], nf4_scale(w, e >> 6));
}

__device__ __forceinline__ void nf4_load_table(float *tab) {
  if (threadIdx.x < 16) tab[threadIdx.x] = dc_nf4_code[threadIdx.x];
  __syncthreads();
}

// The kernels' view of the C API's weight.
inline nf4_args nf4_of(const dc_nf4 *w) {
  return nf4_args{w->codes, w->absmax, w->qabsmax, w->absmax2, w->map2, w->offset, w->rows, w->cols};
}

}  // namespace
