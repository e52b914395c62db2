// nf4.cu: core/quant's NF4 (bitsandbytes' quantize_4bit layout, block 64,
// high nibble first, optional double-quantised absmax) dequantised on the
// device: into bf16 tiles right before a cuBLAS GEMM, or in registers for the
// decode matrix-vector product.
//
// The arithmetic of a dequantised element is core/quant's, operation for
// operation and each rounded (no FMA contraction: __fmul_rn/__fadd_rn), so an
// f32 dequantisation is bit-identical to the CPU's and the bf16 one is its
// round-to-nearest-even. The matvec factors each 32-code chunk's scale out of
// its dot product (f32, as close to the CPU as any other summation order).
//
// Layout (core/quant): one flat stream of rows·cols nibbles, element e in
// byte e/2, the high nibble for even e; block b = e/64 has scale absmax[b] or
// map2[qabsmax[b]]·absmax2[b/256] + offset. Rows of an odd column count start
// mid-byte; rows of a column count that is not a multiple of 64 share blocks.
//
// ---- Decode matvec: bytes, and the predicted fraction of bandwidth ----
// Bytes read per row of an NF4 weight: cols/2 of codes, cols/64 of qabsmax
// (double quant; 4·cols/64 without), 4·cols/16384 of absmax2: ≈ 0.516·cols
// (Qwen2.5-1.5B's 8960×1536 MLP weight: 792 B a row, 7.1 MB in all). For a
// bf16 weight, 2·cols.
//
// k_nf4_matvec (cols a multiple of 32, ≤ 16384, 16-byte aligned codes and x)
// reads each row's codes as 16-byte loads (32 codes a lane), the block's
// scale once per 32 codes, and keeps 4 rows per thread group so a float4 of x
// read from shared memory serves 4 rows. x is staged in shared memory
// transposed ([8][cols/32] float4) so a warp's reads are conflict-free; the
// first two chunks' loads are issued before x is staged and each later
// chunk's as soon as the one two before it is computed, so each thread has
// 64–128 bytes in flight (48–96 KB an SM at 3 blocks of 256 threads).
//
// Predicted for NF4, weights well beyond L2, against 3% for the former
// warp-per-row byte-wide kernel: 60–75% of the device-to-device copy rate
// (≈ 2.4–3.0 TB/s on an H200 whose copy runs at 4.0 TB/s) for the kernel
// itself (BenchmarkNF4MatVec/tall), 45–65% launch to launch at the MLP shape
// (BenchmarkNF4MatVec/mlp: ≈ 2.5–4 µs a 7.1 MB launch). Why not more:
// (1) the NF4 table is a shared-memory lookup per code (a PRMT that builds
// the table address, then an LDS: ≈ 3.3 instructions a code in all), one LDS
// wavefront per 32 codes at ≤ 1 wavefront an SM per clock, plus 8 LDS.128 of
// x per 4·32 codes: 160 wavefronts per 2 KB of codes, a ceiling of
// 12.8 B/clock/SM ≈ 3.3 TB/s at 1.98 GHz on 132 SMs, about the HBM's own read
// rate, so both limits bite together; (2) each block re-reads all of x from
// L2: 4·cols bytes per block of 32 rows at cols < 2048 (TPR 32), fewer rows a
// block for longer rows — L2 traffic of 8/rows-a-block times the weight's
// bytes, 25% at 1536 columns, up to 200% at ≥ 8192 columns, which caps long
// rows (the down projection) lower, ≈ 40–50%; (3) a 7 MB weight streams in
// ≈ 2 µs, so each launch's ramp-up and tail (≈ 1 µs) and the host's launch
// rate (cgo + cudaLaunchKernel, 2–4 µs a launch) cost a visible share:
// BenchmarkNF4MatVec's "tall" variant (4× the rows a launch) shows the
// kernel with that amortised. At 80 registers 3 blocks (24 warps) fit an
// SM: the 280 blocks of an 8960×1536 weight run in one wave.
// bf16 (k_bf16_matvec): 16 bytes = 8 weights a lane per load, two ALU ops and
// one FMA per weight, no table: memory-bound, 70–85% of the copy rate
// predicted for the MLP shape (25% extra L2 traffic for x at 8 rows a block).
// The vector dequantisation (8 codes a step, 8 steps' loads in flight a
// thread, coalesced 16-byte bf16 stores, the table in shared memory): 75–90% of the copy rate (it is a copy that
// reads 0.52 bytes per 2 written), against 12% before.
#include "common.cuh"

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

template <typename T>
__device__ __forceinline__ T nf4_out(float v);
template <>
__device__ __forceinline__ float nf4_out<float>(float v) { return v; }
template <>
__device__ __forceinline__ __nv_bfloat16 nf4_out<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

// ---- Dequantisation ----

// dst((r1−r0), cols) = rows [r0, r1): elements [e0, e0+n), e0 = r0·cols. The
// generic kernel: one element per thread, any e0 and dst alignment.
template <typename T>
__global__ void k_nf4_dequant(T *dst, nf4_args w, int64_t e0, int64_t n) {
  __shared__ float tab[16];
  nf4_load_table(tab);
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    dst[i] = nf4_out<T>(nf4_at(w, tab, e0 + i));
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
// of 8 elements.
constexpr int DQ_SUB = 8, DQ_TILE = 256 * DQ_SUB;

template <typename T, bool DQ>
__global__ void __launch_bounds__(256) k_nf4_dequant_vec(T *__restrict__ dst, nf4_args w, int64_t e0, int64_t n) {
  __shared__ float tab[16];
  nf4_load_table(tab);
  const int lane = threadIdx.x & 31;
  const int64_t e1 = e0 + n, t1 = (e1 + DQ_TILE - 1) / DQ_TILE;
  const int64_t warps = (int64_t)gridDim.x * (blockDim.x >> 5);
  const uint32_t *words = reinterpret_cast<const uint32_t *>(w.codes);
  for (int64_t t = e0 / DQ_TILE + blockIdx.x * (int64_t)(blockDim.x >> 5) + (threadIdx.x >> 5); t < t1; t += warps) {
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
        nf4_store8(dst + (e - e0), o);
      } else {
        for (int64_t i = max(e, e0); i < min(e + 8, e1); i++) {
          uint8_t c = w.codes[i >> 1];
          c = (i & 1) ? (c & 15) : (c >> 4);
          dst[i - e0] = nf4_out<T>(__fmul_rn(tab[c], s[k]));
        }
      }
    }
  }
}

// ---- Matrix-vector products ----

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
constexpr int MV_THREADS = 256, MV_R = 4, MV_MAX_COLS = 16384;

// TPR for a row of C chunks: the largest power of two ≤ C in [32, 256]
// (so 1–2 chunks a thread up to 512 chunks, all lanes busy in the first).
static int mv_tpr(int C) {
  int t = 32;
  while (t < 256 && 2 * t <= C) t *= 2;
  return t;
}

// Stage x (C chunks of W floats, W = 4·NQ) transposed into xs[q·C + j] =
// x[W·j + 4q .. W·j + 4q + 4): lane-consecutive chunks read consecutive
// float4s, so the compute loop's shared loads are conflict-free.
template <int NQ>
__device__ __forceinline__ void mv_stage_x(float4 *xs, const float *x, int C) {
  const float4 *x4 = reinterpret_cast<const float4 *>(x);
  for (int i = threadIdx.x; i < C * NQ; i += MV_THREADS) xs[(i % NQ) * C + i / NQ] = __ldg(x4 + i);
}

// Sum each group's MV_R partials over its TPR threads and write the rows
// below rows. red: MV_THREADS/32 × MV_R floats of shared memory.
template <int TPR>
__device__ __forceinline__ void mv_reduce_store(float *y, float (&acc)[MV_R], float (*red)[MV_R], int rows) {
  constexpr int G = MV_THREADS / TPR, WPG = TPR / 32;  // warps per group
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
  for (int r = 0; r < MV_R; r++) acc[r] = dc_warp_sum(acc[r]);
  if (WPG == 1) {
    const int row0 = (blockIdx.x * G + warp) * MV_R;
    if (lane < MV_R) {
      float v = acc[0];
#pragma unroll
      for (int r = 1; r < MV_R; r++)
        if (lane == r) v = acc[r];
      if (row0 + lane < rows) y[row0 + lane] = v;
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
    if (row < rows) y[row] = v;
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

// y(rows) = W·x for cols = 32·C, C ≤ 512, codes and x 16-byte aligned.
template <int TPR, bool DQ>
__global__ void __launch_bounds__(MV_THREADS, 3) k_nf4_matvec(float *__restrict__ y, nf4_args w, const float *__restrict__ x) {
  extern __shared__ float4 xs[];  // [8][C]
  // The code table at a 256-byte aligned spot inside tab_area (whatever
  // alignment the compiler gives the array): see nf4_dot8.
  __shared__ float tab_area[128];
  __shared__ float map2s[DQ ? 256 : 1];
  __shared__ float red[MV_THREADS / 32][MV_R];
  constexpr int G = MV_THREADS / TPR;
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
  mv_stage_x<8>(xs, x, C);
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
  mv_reduce_store<TPR>(y, acc, red, w.rows);
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

// y(rows) = W·x for a bf16 W with cols = 8·C, C ≤ 2048, W and x 16-byte aligned.
template <int TPR>
__global__ void __launch_bounds__(MV_THREADS) k_bf16_matvec(float *__restrict__ y, const uint4 *__restrict__ w, const float *__restrict__ x,
                                                            int rows, int cols) {
  extern __shared__ float4 xs[];  // [2][C]
  __shared__ float red[MV_THREADS / 32][MV_R];
  constexpr int G = MV_THREADS / TPR;
  const int C = cols >> 3, kt = threadIdx.x % TPR, g = threadIdx.x / TPR;
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
  mv_stage_x<2>(xs, x, C);
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
  mv_reduce_store<TPR>(y, acc, red, rows);
}

// ---- Launchers ----

static nf4_args nf4_of(const dc_nf4 *w) {
  return nf4_args{w->codes, w->absmax, w->qabsmax, w->absmax2, w->map2, w->offset, w->rows, w->cols};
}

static int nf4_check(const dc_nf4 *w, int r0, int r1, const char *op) {
  if (r0 < 0 || r1 > w->rows || r0 > r1)
    return dc_fail("row range out of bounds", "%s(rows [%d, %d) of %d×%d)", op, r0, r1, w->rows, w->cols);
  if (w->absmax == nullptr && (w->qabsmax == nullptr || w->absmax2 == nullptr || w->map2 == nullptr))
    return dc_fail("no absmax and no double-quant statistics", "%s(%d×%d)", op, w->rows, w->cols);
  return 0;
}

static bool aligned16(const void *p) { return ((uintptr_t)p & 15) == 0; }

template <typename T>
static void nf4_dequant_launch(T *dst, const dc_nf4 *w, int64_t e0, int64_t n) {
  nf4_args a = nf4_of(w);
  if (e0 % 8 == 0 && aligned16(dst) && aligned16(w->codes)) {
    int64_t tiles = (e0 + n + DQ_TILE - 1) / DQ_TILE - e0 / DQ_TILE;  // one warp each, 8 a block
    int blocks = dc_blocks(tiles, 8);
    if (w->absmax == nullptr)
      k_nf4_dequant_vec<T, true><<<blocks, 256, 0, dc_stream>>>(dst, a, e0, n);
    else
      k_nf4_dequant_vec<T, false><<<blocks, 256, 0, dc_stream>>>(dst, a, e0, n);
  } else {
    k_nf4_dequant<T><<<dc_blocks(n, 256), 256, 0, dc_stream>>>(dst, a, e0, n);
  }
}

extern "C" int dc_nf4_dequant_bf16(uint16_t *dst, const dc_nf4 *w, int r0, int r1) {
  if (nf4_check(w, r0, r1, "nf4_dequant_bf16")) return -1;
  int64_t n = (int64_t)(r1 - r0) * w->cols;
  if (n == 0) return 0;
  nf4_dequant_launch((__nv_bfloat16 *)dst, w, (int64_t)r0 * w->cols, n);
  DC_LAUNCHED("nf4_dequant_bf16(rows [%d, %d) of %d×%d)", r0, r1, w->rows, w->cols);
  return 0;
}

extern "C" int dc_nf4_dequant_f32(float *dst, const dc_nf4 *w, int r0, int r1) {
  if (nf4_check(w, r0, r1, "nf4_dequant_f32")) return -1;
  int64_t n = (int64_t)(r1 - r0) * w->cols;
  if (n == 0) return 0;
  nf4_dequant_launch(dst, w, (int64_t)r0 * w->cols, n);
  DC_LAUNCHED("nf4_dequant_f32(rows [%d, %d) of %d×%d)", r0, r1, w->rows, w->cols);
  return 0;
}

// Launches kernel k (a fast matvec instantiation) with dyn bytes of dynamic
// shared memory, raising the kernel's limit first when dyn is over the limit
// set so far (raised: per kernel, the attribute stays set). One instantiation
// serves several column counts, so a later, wider call may need more than
// the first (the first GPU run failed 16384 columns after 8192 with
// cudaErrorInvalidValue when the limit was raised only once).
template <typename K, typename... A>
static int mv_launch(K k, int blocks, size_t dyn, size_t &raised, A... args) {
  if (dyn > 32 * 1024 && dyn > raised) {  // the default 48 KB counts static shared memory too
    DC_CHECK(cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)dyn), "cudaFuncSetAttribute(%zu bytes)", dyn);
    raised = dyn;
  }
  k<<<blocks, MV_THREADS, dyn, dc_stream>>>(args...);
  return 0;
}

template <int TPR, bool DQ>
static int nf4_matvec_fast(float *y, const nf4_args &a, const float *x) {
  static size_t raised = 0;  // per instantiation
  constexpr int rows_per_block = MV_THREADS / TPR * MV_R;
  int blocks = (a.rows + rows_per_block - 1) / rows_per_block;
  return mv_launch(k_nf4_matvec<TPR, DQ>, blocks, (size_t)a.cols * 4, raised, y, a, x);
}

template <bool DQ>
static int nf4_matvec_tpr(float *y, const nf4_args &a, const float *x) {
  switch (mv_tpr(a.cols / 32)) {
    case 32: return nf4_matvec_fast<32, DQ>(y, a, x);
    case 64: return nf4_matvec_fast<64, DQ>(y, a, x);
    case 128: return nf4_matvec_fast<128, DQ>(y, a, x);
    default: return nf4_matvec_fast<256, DQ>(y, a, x);
  }
}

extern "C" int dc_nf4_matvec(float *y, const dc_nf4 *w, const float *x) {
  if (nf4_check(w, 0, w->rows, "nf4_matvec")) return -1;
  if (w->rows == 0) return 0;
  nf4_args a = nf4_of(w);
  if (w->cols > 0 && w->cols % 32 == 0 && w->cols <= MV_MAX_COLS && aligned16(w->codes) && aligned16(x)) {
    int rc = w->absmax == nullptr ? nf4_matvec_tpr<true>(y, a, x) : nf4_matvec_tpr<false>(y, a, x);
    if (rc != 0) return rc;
  } else {
    k_nf4_matvec_any<<<(w->rows + 7) / 8, 256, 0, dc_stream>>>(y, a, x);
  }
  DC_LAUNCHED("nf4_matvec(%d×%d)", w->rows, w->cols);
  return 0;
}

template <int TPR>
static int bf16_matvec_fast(float *y, const uint16_t *w, const float *x, int rows, int cols) {
  static size_t raised = 0;
  constexpr int rows_per_block = MV_THREADS / TPR * MV_R;
  int blocks = (rows + rows_per_block - 1) / rows_per_block;
  return mv_launch(k_bf16_matvec<TPR>, blocks, (size_t)cols * 4, raised, y, (const uint4 *)w, x, rows, cols);
}

extern "C" int dc_bf16_matvec(float *y, const uint16_t *w, const float *x, int rows, int cols) {
  if (rows == 0) return 0;
  if (cols > 0 && cols % 8 == 0 && cols <= MV_MAX_COLS && aligned16(w) && aligned16(x)) {
    int rc;
    switch (mv_tpr(cols / 8)) {
      case 32: rc = bf16_matvec_fast<32>(y, w, x, rows, cols); break;
      case 64: rc = bf16_matvec_fast<64>(y, w, x, rows, cols); break;
      case 128: rc = bf16_matvec_fast<128>(y, w, x, rows, cols); break;
      default: rc = bf16_matvec_fast<256>(y, w, x, rows, cols); break;
    }
    if (rc != 0) return rc;
  } else {
    k_bf16_matvec_any<<<(rows + 7) / 8, 256, 0, dc_stream>>>(y, (const __nv_bfloat16 *)w, x, rows, cols);
  }
  DC_LAUNCHED("bf16_matvec(%d×%d)", rows, cols);
  return 0;
}
