// nf4_dequant_kernels.cuh: the device code of nf4.cu (NF4 dequantisation
// into bf16 or f32; its header describes them), apart from the launchers so
// that cuda/emu compiles it on the host too (DISTILL_CUDA_EMU, shim.h
// first; checked by host/decode_emu.cpp). The kernels keep their names and
// linkage: nf4.cu's device build is instruction for instruction what it was.
#pragma once
#include "nf4_format.cuh"
#include "bf16_rows.cuh"

template <typename T>
__device__ __forceinline__ T nf4_out(float v);
template <>
__device__ __forceinline__ float nf4_out<float>(float v) { return v; }
template <>
__device__ __forceinline__ __nv_bfloat16 nf4_out<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

// ---- Dequantisation ----

// Where element i of the range (from its first row's start) lands: i, or
// with LD in rows of ld elements (ld > cols: a tile whose rows carry more
// columns after the weight's — the adapter's fused GEMM).
template <bool LD>
__device__ __forceinline__ int64_t nf4_dst_at(int64_t i, int cols, int64_t ld) {
  return LD ? (i / cols) * ld + i % cols : i;
}

// dst((r1−r0), cols) = rows [r0, r1): elements [e0, e0+n), e0 = r0·cols. The
// generic kernel: one element per thread, any e0 and dst alignment.
template <typename T, bool LD = false>
__global__ void k_nf4_dequant(T *dst, nf4_args w, int64_t e0, int64_t n, int64_t ld = 0) {
  __shared__ float tab[16];
  nf4_load_table(tab);
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    dst[nf4_dst_at<LD>(i, w.cols, ld)] = nf4_out<T>(nf4_at(w, tab, e0 + i));
}

// The 8 values of the code word v (4 bytes, high nibble first) scaled by s,
// each __fmul_rn as nf4_at.
__device__ __forceinline__ void nf4_word(float *o, uint32_t v, float s, const float *tab) {
#pragma unroll
  for (int k = 0; k < 4; k++) {
    o[2 * k] = __fmul_rn(tab[(v >> (8 * k + 4)) & 15], s);
    o[2 * k + 1] = __fmul_rn(tab[(v >> (8 * k)) & 15], s);
  }
}

// 8 values to d (16-byte aligned): two float4, or one 16-byte store of bf16.
__device__ __forceinline__ void nf4_store8(float *d, const float *v) {
  reinterpret_cast<float4 *>(d)[0] = make_float4(v[0], v[1], v[2], v[3]);
  reinterpret_cast<float4 *>(d)[1] = make_float4(v[4], v[5], v[6], v[7]);
}
__device__ __forceinline__ void nf4_store8(__nv_bfloat16 *d, const float *v) {
  __nv_bfloat162 p0 = __floats2bfloat162_rn(v[0], v[1]), p1 = __floats2bfloat162_rn(v[2], v[3]);
  __nv_bfloat162 p2 = __floats2bfloat162_rn(v[4], v[5]), p3 = __floats2bfloat162_rn(v[6], v[7]);
  uint4 u;
  u.x = *reinterpret_cast<uint32_t *>(&p0);
  u.y = *reinterpret_cast<uint32_t *>(&p1);
  u.z = *reinterpret_cast<uint32_t *>(&p2);
  u.w = *reinterpret_cast<uint32_t *>(&p3);
  *reinterpret_cast<uint4 *>(d) = u;
}

// The vector kernel. A warp takes tiles of DQ_TILE = 2048 elements (aligned
// to element 0 of the matrix), in DQ_SUB = 8 steps of 256: in step t lane l
// has the 8 elements at e = tile + 256t + 8l — one 4-byte code word (a warp
// reads 128 contiguous bytes) and one 16-byte bf16 store (a warp writes 512
// contiguous bytes), one scale (8 | 64). All 8 steps' loads are issued
// before any is used. Groups of 8 only partly inside [e0, e0+n) (at the
// range's two ends) go element by element. Needs e0 % 8 == 0 and dst
// 16-byte aligned: a whole group's store lands at dst + e − e0, a multiple
// of 8 elements — with LD (rows of ld elements) cols and ld multiples of 8
// too, so that a group stays in its row and its store aligned.
constexpr int DQ_SUB = 8, DQ_TILE = 256 * DQ_SUB;

// The vector kernel's body as block `block` of `blocks` (the stage kernel
// gives the blocks past these to its conversions).
template <typename T, bool DQ, bool LD>
__device__ __forceinline__ void nf4_dequant_vec_blocks(T *__restrict__ dst, nf4_args w, int64_t e0, int64_t n, int64_t ld,
                                                       int64_t block, int64_t blocks) {
  __shared__ float tab[16];
  nf4_load_table(tab);
  const int lane = threadIdx.x & 31;
  const int64_t e1 = e0 + n, t1 = (e1 + DQ_TILE - 1) / DQ_TILE;
  const int64_t warps = blocks * (blockDim.x >> 5);
  const uint32_t *words = reinterpret_cast<const uint32_t *>(w.codes);
  for (int64_t t = e0 / DQ_TILE + block * (int64_t)(blockDim.x >> 5) + (threadIdx.x >> 5); t < t1; t += warps) {
    uint32_t v[DQ_SUB];
    float s[DQ_SUB];
#pragma unroll
    for (int k = 0; k < DQ_SUB; k++) {
      const int64_t e = t * DQ_TILE + 256 * k + 8 * lane, b = e >> 6;
      v[k] = e >= e0 && e + 8 <= e1 ? __ldg(words + (e >> 3)) : 0u;
      s[k] = 0.f;
      if (e < e1 && e + 8 > e0) s[k] = DQ ? nf4_dq_scale(__ldg(w.map2 + __ldg(w.qabsmax + b)), __ldg(w.absmax2 + (b >> 8)), w.offset) : __ldg(w.absmax + b);
    }
#pragma unroll
    for (int k = 0; k < DQ_SUB; k++) {
      const int64_t e = t * DQ_TILE + 256 * k + 8 * lane;
      if (e >= e0 && e + 8 <= e1) {  // a whole group
        float o[8];
        nf4_word(o, v[k], s[k], tab);
        nf4_store8(dst + nf4_dst_at<LD>(e - e0, w.cols, ld), o);
      } else {
        for (int64_t i = max(e, e0); i < min(e + 8, e1); i++) {
          uint8_t c = w.codes[i >> 1];
          c = (i & 1) ? (c & 15) : (c >> 4);
          dst[nf4_dst_at<LD>(i - e0, w.cols, ld)] = nf4_out<T>(__fmul_rn(tab[c], s[k]));
        }
      }
    }
  }
}

template <typename T, bool DQ, bool LD = false>
__global__ void __launch_bounds__(256) k_nf4_dequant_vec(T *__restrict__ dst, nf4_args w, int64_t e0, int64_t n, int64_t ld = 0) {
  nf4_dequant_vec_blocks<T, DQ, LD>(dst, w, e0, n, ld, blockIdx.x, gridDim.x);
}

// ---- The stage: a tile and its conversions in one launch ----

// Up to 3 conversions (bf16_rows.cuh) beside a tile's dequantisation.
struct nf4_stage_jobs {
  dc_bf16_rows j[3];
  int n;
};

// Blocks [0, dq_blocks) dequantise all of w into tile (the vector kernel's
// body: rows ld apart with LD), the rest run the jobs one after another,
// each over all of them: the adapter's fused GEMM gets its tile (W and s·B,
// or W and A) and its bf16 operands (u beside x, or dy and du) from one
// launch instead of three or four.
template <bool DQ, bool LD>
__global__ void __launch_bounds__(256) k_nf4_stage(__nv_bfloat16 *__restrict__ tile, nf4_args w, int64_t ld, int64_t dq_blocks,
                                                   nf4_stage_jobs jobs) {
  if (blockIdx.x < dq_blocks) {
    nf4_dequant_vec_blocks<__nv_bfloat16, DQ, LD>(tile, w, 0, (int64_t)w.rows * w.cols, ld, blockIdx.x, dq_blocks);
    return;
  }
  const int64_t threads = (int64_t)(gridDim.x - dq_blocks) * blockDim.x;
  const int64_t i0 = (int64_t)(blockIdx.x - dq_blocks) * blockDim.x + threadIdx.x;
  for (int k = 0; k < jobs.n; k++) bf16_rows_run(jobs.j[k], i0, threads);
}
