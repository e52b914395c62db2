// dropout_kernels.cuh: the device code of dropout.cu (LoRA dropout's counter-
// based masks), apart from its launchers so that cuda/emu compiles it on the
// host too (DISTILL_CUDA_EMU, cuda/emu/host/shim.h first; checked by
// host/train_emu.cpp). The kernels keep their names and linkage (no anonymous
// namespace): dropout.cu alone includes this, and its device build is
// instruction for instruction what it was.
#pragma once
#include "devmath.cuh"

// base_at, when not null, holds the key in place of base: read on the
// device, so a recorded step's launch takes each step's key (devnet's step
// graphs).
__global__ void k_dropout(float *dst, const float *x, int64_t n, uint64_t base, const uint64_t *base_at,
                          uint64_t thresh, float keep) {
  if (base_at != nullptr) base = *base_at;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    dst[i] = dc_mix(base + (uint64_t)i) < thresh ? 0.f : x[i] * keep;
}

__global__ void k_dropout_add(float *dx, const float *g, int64_t n, uint64_t base, const uint64_t *base_at,
                              uint64_t thresh, float keep) {
  if (base_at != nullptr) base = *base_at;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    if (dc_mix(base + (uint64_t)i) >= thresh) dx[i] += g[i] * keep;
}

// The adapter's term of the input gradient under LoRA dropout, for the
// members of a group that share x (and dx): dx(n, in) += Σ_m keep ·
// mask_m ⊙ (du_m·A_m), du_m (n, r) at du + m·sdu, A_m (r, in) at A + m·sa,
// member m's mask keyed by bases.b0, b1, b2 (or base_at[m]). In one pass over dx,
// where a TF32 GEMM per member wrote du_m·A_m (n·in floats) for a
// dropout_add to read back with dx. A block: DC_LDX_ROWS rows, a column a
// thread (A's rows read coalesced along j); each member's du rows staged in
// shared memory (DC_LDX_ROWS·r floats, the warps' common operand). Each
// member's product summed over k in order and added as dropout_add adds it
// (dx + g·keep where kept), members in order: the same values one launch a
// member or one for the group.
constexpr int DC_LDX_ROWS = 16, DC_LDX_THREADS = 256, DC_LDX_MEMBERS = 3, DC_LDX_MAX_R = 512;
struct DcDropBases {
  uint64_t b0, b1, b2;
};
__global__ void __launch_bounds__(DC_LDX_THREADS)
    k_lora_dropout_dx(float *dx, const float *du, int64_t sdu, const float *A, int64_t sa, int n, int in, int r,
                      int members, DcDropBases bases, const uint64_t *base_at, uint64_t thresh, float keep) {
  DC_DYNAMIC_SHARED(float, du_s);  // [DC_LDX_ROWS][r]
  const int j = blockIdx.x * DC_LDX_THREADS + threadIdx.x, r0 = blockIdx.y * DC_LDX_ROWS;
  const int rows = min(DC_LDX_ROWS, n - r0);
  const bool col = j < in;  // a thread past the columns still stages du
  float *dxj = dx + (int64_t)r0 * in + j;
  float tot[DC_LDX_ROWS];
#pragma unroll
  for (int i = 0; i < DC_LDX_ROWS; i++) tot[i] = col && i < rows ? dxj[(int64_t)i * in] : 0.f;
  for (int m = 0; m < members; m++) {
    __syncthreads();  // the previous member's du rows are read
    const float *dm = du + m * sdu + (int64_t)r0 * r;
    for (int e = threadIdx.x; e < DC_LDX_ROWS * r; e += DC_LDX_THREADS) du_s[e] = e < rows * r ? dm[e] : 0.f;
    __syncthreads();
    if (!col) continue;
    const uint64_t base = base_at != nullptr ? base_at[m] : m == 0 ? bases.b0 : m == 1 ? bases.b1 : bases.b2;
    const float *am = A + m * sa + j;
    float acc[DC_LDX_ROWS];
#pragma unroll
    for (int i = 0; i < DC_LDX_ROWS; i++) acc[i] = 0.f;
    for (int k = 0; k < r; k++) {
      const float a = __ldg(am + (int64_t)k * in);
#pragma unroll
      for (int i = 0; i < DC_LDX_ROWS; i++) acc[i] += du_s[i * r + k] * a;
    }
    const uint64_t at = base + (uint64_t)r0 * in + j;
#pragma unroll
    for (int i = 0; i < DC_LDX_ROWS; i++)
      if (i < rows && dc_mix(at + (uint64_t)i * in) >= thresh) tot[i] += acc[i] * keep;
  }
  if (col)
#pragma unroll
    for (int i = 0; i < DC_LDX_ROWS; i++)
      if (i < rows) dxj[(int64_t)i * in] = tot[i];
}
