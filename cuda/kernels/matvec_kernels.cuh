// matvec_kernels.cuh: the decode matrix-vector products' device code (see
// matvec.cu for the launchers and the bandwidth each should reach). A fused
// product takes up to MV_OUTS weights over one input — q, k and v; gate and
// up — each with its own bias and residual added as it is stored, and a
// prologue applied to the input while it is staged in shared memory:
// RMSNorm (its scale computed by every block in the same order, so all
// agree) or SwiGLU (x = silu(gate)·up); the first block writes the prologue's
// result out for whoever reads it next (the adapter's input). Apart from the
// launchers so that cuda/emu compiles the same code on the host and checks
// it against an f64 reference (DISTILL_CUDA_EMU, cuda/emu/host/shim.h first).
#pragma once
#include "devmath.cuh"
#include "nf4_format.cuh"

namespace {

// The generic kernels, for the shapes the fast ones do not take (cols not a
// multiple of 32 for NF4 — rows starting mid-byte or mid-chunk — or of 8 for
// bf16; cols > 16384; unaligned pointers): one warp per row, each lane a
// strided run of the columns, f32 accumulation.
__global__ void k_nf4_matvec_any(float *y, nf4_args w, const float *x) {
  __shared__ float tab[16];
  nf4_load_table(tab);
  int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x & 31;
  if (row >= w.rows) return;
  int64_t base = (int64_t)row * w.cols;
  float acc = 0.f;
  for (int k = lane; k < w.cols; k += 32) acc += nf4_at(w, tab, base + k) * x[k];
  acc = dc_warp_sum(acc);
  if (lane == 0) y[row] = acc;
}

__global__ void k_bf16_matvec_any(float *y, const __nv_bfloat16 *w, const float *x, int rows, int cols) {
  int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x & 31;
  if (row >= rows) return;
  const __nv_bfloat16 *wr = w + (int64_t)row * cols;
  float acc = 0.f;
  for (int k = lane; k < cols; k += 32) acc += __bfloat162float(wr[k]) * x[k];
  acc = dc_warp_sum(acc);
  if (lane == 0) y[row] = acc;
}

// The fast kernels' geometry. A block of MV_THREADS threads is G = MV_THREADS/
// TPR groups of TPR threads; a group computes MV_R consecutive rows, its
// thread t the chunks j = t, t+TPR, … (a chunk: 16 bytes of a row, 32 NF4
// codes or 8 bf16) of each. Block i's rows: [i·G·MV_R, (i+1)·G·MV_R).
constexpr int MV_THREADS = 256, MV_R = 4, MV_MAX_COLS = 16384, MV_OUTS = 3;

// One output of a fused product: y(rows) = W·x' (+ bias) (+ res), x' the
// input after the prologue. W is NF4 (w.codes set) or bf16 (wb, w.rows and
// w.cols its shape). y overlaps neither x, the prologue's buffers nor res
// (other blocks may still read those while this one writes).
struct mv_out {
  nf4_args w;
  const uint4 *wb;
  float *y;
  const float *bias, *res;
};

// The input's prologue: none; RMSNorm with weight p (x' = x·rstd·p); SwiGLU
// with gate p (x' = p·σ(p)·x, x the up projection). xo, when set, gets x'.
enum { MV_PLAIN = 0, MV_RMSNORM = 1, MV_SWIGLU = 2 };
struct mv_pro {
  int kind;
  const float *p;
  float eps;
  float *xo;
};

// A launch's work: outputs [0, n) (blockIdx.y picks one), one input.
struct mv_job {
  mv_out o[MV_OUTS];
  int n;
  mv_pro pro;
};

// Stage x' (C chunks of W = 4·NQ floats, x and pro.p 16-byte aligned)
// transposed into xs[q·C + j] = x'[W·j + 4q .. W·j + 4q + 4): lane-consecutive
// chunks read consecutive float4s, so the compute loop's shared loads are
// conflict-free. Each thread transforms the entries it staged itself (no
// barrier between); the caller's __syncthreads publishes them. sh: 33 floats
// for RMSNorm's block sum.
template <int NQ>
__device__ __forceinline__ void mv_stage_x(float4 *xs, const float *x, int C, const mv_pro &pro, float *sh) {
  const float4 *x4 = reinterpret_cast<const float4 *>(x);
  float ss = 0.f;
  for (int i = threadIdx.x; i < C * NQ; i += MV_THREADS) {
    const float4 v = __ldg(x4 + i);
    xs[(i % NQ) * C + i / NQ] = v;
    ss += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
  }
  if (pro.kind == MV_PLAIN) return;
  float s = 0.f;
  if (pro.kind == MV_RMSNORM) s = dc_rms_scale(dc_block_sum(ss, sh), 4 * NQ * C, pro.eps);
  const float4 *p4 = reinterpret_cast<const float4 *>(pro.p);
  float4 *xo = blockIdx.x == 0 && blockIdx.y == 0 ? reinterpret_cast<float4 *>(pro.xo) : nullptr;
  for (int i = threadIdx.x; i < C * NQ; i += MV_THREADS) {
    float4 v = xs[(i % NQ) * C + i / NQ];
    const float4 p = __ldg(p4 + i);
    if (pro.kind == MV_RMSNORM) {  // as k_rmsnorm_fwd: (x·s)·w
      v = make_float4(v.x * s * p.x, v.y * s * p.y, v.z * s * p.z, v.w * s * p.w);
    } else {  // as k_swiglu_fwd: g·σ(g)·u
      v = make_float4(p.x * dc_sigmoid(p.x) * v.x, p.y * dc_sigmoid(p.y) * v.y, p.z * dc_sigmoid(p.z) * v.z,
                      p.w * dc_sigmoid(p.w) * v.w);
    }
    xs[(i % NQ) * C + i / NQ] = v;
    if (xo != nullptr) xo[i] = v;
  }
}

// Stores row's result v with o's bias and residual.
__device__ __forceinline__ void mv_put(const mv_out &o, int row, float v) {
  if (o.bias != nullptr) v += o.bias[row];
  if (o.res != nullptr) v += o.res[row];
  o.y[row] = v;
}

// Sum each group's MV_R partials over its TPR threads and store the rows
// below o's. red: MV_THREADS/32 × MV_R floats of shared memory.
template <int TPR>
__device__ __forceinline__ void mv_reduce_store(const mv_out &o, float (&acc)[MV_R], float (*red)[MV_R]) {
  constexpr int G = MV_THREADS / TPR, WPG = TPR / 32;  // warps per group
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, rows = o.w.rows;
#pragma unroll
  for (int r = 0; r < MV_R; r++) acc[r] = dc_warp_sum(acc[r]);
  if (WPG == 1) {
    const int row0 = (blockIdx.x * G + warp) * MV_R;
    if (lane < MV_R) {
      float v = acc[0];
#pragma unroll
      for (int r = 1; r < MV_R; r++)
        if (lane == r) v = acc[r];
      if (row0 + lane < rows) mv_put(o, row0 + lane, v);
    }
    return;
  }
  if (lane == 0) {
#pragma unroll
    for (int r = 0; r < MV_R; r++) red[warp][r] = acc[r];
  }
  __syncthreads();
  if (threadIdx.x < G * MV_R) {
    const int g = threadIdx.x / MV_R, r = threadIdx.x % MV_R, row = (blockIdx.x * G + g) * MV_R + r;
    float v = 0.f;
#pragma unroll
    for (int k = 0; k < WPG; k++) v += red[g * WPG + k][r];
    if (row < rows) mv_put(o, row, v);
  }
}

// One chunk of an NF4 row: its 32 codes, and its scale's inputs (double
// quant: qabsmax and absmax2, combined after the loads land; else absmax).
struct nf4_chunk {
  uint4 c;
  uint32_t q;
  float s;
};

template <bool DQ>
__device__ __forceinline__ void nf4_chunk_load(nf4_chunk &k, const nf4_args &w, int64_t chunk) {
  k.c = __ldg(reinterpret_cast<const uint4 *>(w.codes) + chunk);
  const int64_t b = chunk >> 1;  // 32-code chunks are 32-aligned: inside block chunk/2
  if (DQ) {
    k.q = __ldg(w.qabsmax + b);
    k.s = __ldg(w.absmax2 + (b >> 8));
  } else {
    k.s = __ldg(w.absmax + b);
  }
}

__device__ __forceinline__ uint32_t uint4_at(const uint4 &v, int q) { return q == 0 ? v.x : q == 1 ? v.y : q == 2 ? v.z : v.w; }

// Σ code·x over the 8 codes of word v and the x values of columns 8w..8w+7
// (a: the first 4, b: the last 4). tabs is the code table's shared-memory
// address, 256-byte aligned: one PRMT puts nibble·4 (a byte) under the
// table's upper address bytes, so a lookup is PRMT + LDS with no add.
__device__ __forceinline__ float nf4_lds(uint32_t addr) {
  return *reinterpret_cast<const float *>(__cvta_shared_to_generic(addr));  // an LDS: no asm for the compiler to misplace
}

__device__ __forceinline__ float nf4_dot8(uint32_t v, float4 a, float4 b, uint32_t tabs, float p) {
  const uint32_t hi = (v >> 2) & 0x3C3C3C3Cu, lo = (v << 2) & 0x3C3C3C3Cu;  // nibble·4 in each byte
#define NF4_T(x, k) nf4_lds(__byte_perm((x), tabs, 0x7650u + (k)))  // byte k of x, then tabs' bytes 1-3
  p = fmaf(NF4_T(hi, 0), a.x, p);
  p = fmaf(NF4_T(lo, 0), a.y, p);
  p = fmaf(NF4_T(hi, 1), a.z, p);
  p = fmaf(NF4_T(lo, 1), a.w, p);
  p = fmaf(NF4_T(hi, 2), b.x, p);
  p = fmaf(NF4_T(lo, 2), b.y, p);
  p = fmaf(NF4_T(hi, 3), b.z, p);
  p = fmaf(NF4_T(lo, 3), b.w, p);
#undef NF4_T
  return p;
}

// y = W·x' for each output (blockIdx.y) of an NF4 job with cols = 32·C,
// C ≤ 512, codes and x 16-byte aligned. The grid is as wide as the output
// with the most rows; a block past its output's rows leaves at once.
template <int TPR, bool DQ>
__global__ void __launch_bounds__(MV_THREADS, 3) k_nf4_matvec(mv_job job, const float *__restrict__ x) {
  DC_DYNAMIC_SHARED(float4, xs);  // [8][C]
  // The code table at a 256-byte aligned spot inside tab_area (whatever
  // alignment the compiler gives the array): see nf4_dot8.
  __shared__ float tab_area[128];
  __shared__ float map2s[DQ ? 256 : 1];
  __shared__ float red[MV_THREADS / 32][MV_R];
  __shared__ float sh[33];
  constexpr int G = MV_THREADS / TPR;
  const mv_out &o = job.o[blockIdx.y];
  const nf4_args &w = o.w;
  if ((int)blockIdx.x * G * MV_R >= w.rows) return;
  const int C = w.cols >> 5, kt = threadIdx.x % TPR, g = threadIdx.x / TPR;
  const int row0 = (blockIdx.x * G + g) * MV_R;
  int64_t base[MV_R];  // first chunk of each row, rows past the end clamped to the last (read, never written)
#pragma unroll
  for (int r = 0; r < MV_R; r++) base[r] = (int64_t)min(row0 + r, w.rows - 1) * C;

  // The first two chunks' loads go out before x is staged; each later one
  // when the chunk two before it has been computed.
  nf4_chunk cur[MV_R], nxt[MV_R];
  int j = kt;
  if (j < C) {
#pragma unroll
    for (int r = 0; r < MV_R; r++) nf4_chunk_load<DQ>(cur[r], w, base[r] + j);
  }
  if (j + TPR < C) {
#pragma unroll
    for (int r = 0; r < MV_R; r++) nf4_chunk_load<DQ>(nxt[r], w, base[r] + j + TPR);
  }
  const uint32_t area = (uint32_t)__cvta_generic_to_shared(tab_area), pad = (256u - (area & 255u)) & 255u;
  const uint32_t tabs = area + pad;
  float *tab = tab_area + pad / 4;
  mv_stage_x<8>(xs, x, C, job.pro, sh);
  if (threadIdx.x < 16) tab[threadIdx.x] = dc_nf4_code[threadIdx.x];
  if (DQ) map2s[threadIdx.x & 255] = __ldg(w.map2 + (threadIdx.x & 255));
  __syncthreads();

  float acc[MV_R];
#pragma unroll
  for (int r = 0; r < MV_R; r++) acc[r] = 0.f;
  for (; j < C; j += TPR) {
    // Word by word (8 columns), so two float4 of x are live, not eight.
    float p[MV_R];
#pragma unroll
    for (int r = 0; r < MV_R; r++) p[r] = 0.f;
#pragma unroll
    for (int q = 0; q < 4; q++) {
      const float4 a = xs[(2 * q) * C + j], b = xs[(2 * q + 1) * C + j];
#pragma unroll
      for (int r = 0; r < MV_R; r++) p[r] = nf4_dot8(uint4_at(cur[r].c, q), a, b, tabs, p[r]);
    }
#pragma unroll
    for (int r = 0; r < MV_R; r++) {
      const float s = DQ ? nf4_dq_scale(map2s[cur[r].q], cur[r].s, w.offset) : cur[r].s;
      acc[r] = fmaf(s, p[r], acc[r]);
    }
#pragma unroll
    for (int r = 0; r < MV_R; r++) cur[r] = nxt[r];
    if (j + 2 * TPR < C) {
#pragma unroll
      for (int r = 0; r < MV_R; r++) nf4_chunk_load<DQ>(nxt[r], w, base[r] + j + 2 * TPR);
    }
  }
  mv_reduce_store<TPR>(o, acc, red);
}

// Σ w·x over the 8 bf16 of word-quad v and columns 8j..8j+7.
__device__ __forceinline__ float bf16_dot8(uint4 v, float4 a, float4 b, float p) {
#define BF_LO(u) __uint_as_float((u) << 16)
#define BF_HI(u) __uint_as_float((u)&0xFFFF0000u)
  p = fmaf(BF_LO(v.x), a.x, p);
  p = fmaf(BF_HI(v.x), a.y, p);
  p = fmaf(BF_LO(v.y), a.z, p);
  p = fmaf(BF_HI(v.y), a.w, p);
  p = fmaf(BF_LO(v.z), b.x, p);
  p = fmaf(BF_HI(v.z), b.y, p);
  p = fmaf(BF_LO(v.w), b.z, p);
  p = fmaf(BF_HI(v.w), b.w, p);
#undef BF_LO
#undef BF_HI
  return p;
}

// y = W·x' for each output (blockIdx.y) of a bf16 job with cols = 8·C,
// C ≤ 2048, W and x 16-byte aligned.
template <int TPR>
__global__ void __launch_bounds__(MV_THREADS) k_bf16_matvec(mv_job job, const float *__restrict__ x) {
  DC_DYNAMIC_SHARED(float4, xs);  // [2][C]
  __shared__ float red[MV_THREADS / 32][MV_R];
  __shared__ float sh[33];
  constexpr int G = MV_THREADS / TPR;
  const mv_out &o = job.o[blockIdx.y];
  const int rows = o.w.rows;
  if ((int)blockIdx.x * G * MV_R >= rows) return;
  const uint4 *__restrict__ w = o.wb;
  const int C = o.w.cols >> 3, kt = threadIdx.x % TPR, g = threadIdx.x / TPR;
  const int row0 = (blockIdx.x * G + g) * MV_R;
  int64_t base[MV_R];
#pragma unroll
  for (int r = 0; r < MV_R; r++) base[r] = (int64_t)min(row0 + r, rows - 1) * C;
  // As k_nf4_matvec: two chunks in flight from before x is staged.
  uint4 cur[MV_R], nxt[MV_R];
  int j = kt;
  if (j < C) {
#pragma unroll
    for (int r = 0; r < MV_R; r++) cur[r] = __ldg(w + base[r] + j);
  }
  if (j + TPR < C) {
#pragma unroll
    for (int r = 0; r < MV_R; r++) nxt[r] = __ldg(w + base[r] + j + TPR);
  }
  mv_stage_x<2>(xs, x, C, job.pro, sh);
  __syncthreads();
  float acc[MV_R];
#pragma unroll
  for (int r = 0; r < MV_R; r++) acc[r] = 0.f;
  for (; j < C; j += TPR) {
    const float4 a = xs[j], b = xs[C + j];
#pragma unroll
    for (int r = 0; r < MV_R; r++) acc[r] = bf16_dot8(cur[r], a, b, acc[r]);
#pragma unroll
    for (int r = 0; r < MV_R; r++) cur[r] = nxt[r];
    if (j + 2 * TPR < C) {
#pragma unroll
      for (int r = 0; r < MV_R; r++) nxt[r] = __ldg(w + base[r] + j + 2 * TPR);
    }
  }
  mv_reduce_store<TPR>(o, acc, red);
}

}  // namespace
