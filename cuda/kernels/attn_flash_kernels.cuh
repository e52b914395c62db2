// attn_flash_kernels.cuh: the device code of attn_flash.cu (its header
// comment describes the kernels). Apart so that cuda/emu compiles the same
// code on the host — each CUDA thread a fiber, mma.sync emulated from
// the PTX ISA's fragment layouts — and checks it against an f64 reference
// where there is no GPU (DISTILL_CUDA_EMU, with cuda/emu/shim.h included
// first).
#pragma once
#include <climits>

#include "devmath.cuh"


namespace {

// Forward and dq: a block is QW warps of 16 query rows, so each staged key
// tile serves 16·QW rows. At head size 128 with more than 64 rows, eight
// warps halve the tile's bytes from L2 per product (H200, 2,048 tokens:
// forward 60 → 68 TFLOP/s, backward 28 → 31); at 64 the tile is half as big
// and four warps' twice as many blocks win (forward 54 against 48 with
// eight); a decoded token (one row) keeps four: three idle warps, not seven.
inline int fa_qw(int hd, int nq) { return hd >= 128 && nq > 64 ? 8 : 4; }
constexpr int FA_THREADS = 128;                             // dkv: four warps
constexpr int FA_BK = 64;        // key rows per tile (forward, dq), per block (dkv): 16 a warp
constexpr int FA_BQ2 = 32;       // query rows per tile (dkv)
constexpr int FA_PAD = 8;        // bf16 elements of padding per shared row

typedef __nv_bfloat16 bf16;

// hi > lo before hi − lo: a garbage hi (INT_MIN) would overflow the difference.
__device__ __forceinline__ bool fa_valid(int lo, int hi, int nk, int max_len) {
  return lo >= 0 && hi <= nk && hi > lo && hi - lo <= max_len;
}

// The softmax's exponentials in base 2, as flash-attention takes them:
// e^(s·scale − L) = 2^(s·scale·log2e − L·log2e), the scale's log2e folded
// into one multiply(-add) and 2^x one instruction of the special function
// unit (ex2.approx.ftz: ~2⁻²² relative, a result below 2⁻¹²⁶ flushed to
// 0, 2^−inf = 0) — where expf spends ~9 on range reduction that P, rounded
// to bf16 for its products, cannot use.
constexpr float FA_LOG2E = 1.4426950408889634f, FA_LN2 = 0.6931471805599453f;
__device__ __forceinline__ float fa_exp2(float x) {
#ifdef DISTILL_CUDA_EMU
  const float y = exp2f(x);
  return y < 1.17549435e-38f ? 0.f : y;  // flushed as .ftz flushes it (NaN stays NaN)
#else
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
#endif
}

// Two floats as one register of two bf16: lo in the low half (the lower
// column), as the fragments want.
__device__ __forceinline__ uint32_t fa_pack(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<uint32_t *>(&v);
}

// c += a·b, one m16n8k16 product.
__device__ __forceinline__ void fa_mma(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
#ifdef DISTILL_CUDA_EMU
  emu_mma(c, a, b0, b1);
#else
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#endif
}

// Four 8×8 bf16 matrices from shared memory (ldmatrix): lane L names row
// L % 8 of matrix L / 8. TRANS (.trans): r[m] holds rows 2t, 2t + 1 of
// column g of matrix m — a B fragment read from a tile stored k-major;
// else row g, columns 2t, 2t + 1 — an A or B fragment's register from a
// tile stored along k.
template <bool TRANS>
__device__ __forceinline__ void fa_ldsm_x4(uint32_t r[4], const bf16 *row) {
#ifdef DISTILL_CUDA_EMU
  emu_ldsm_x4(r, row, TRANS);
#else
  const unsigned a = (unsigned)__cvta_generic_to_shared(row);
  if constexpr (TRANS)
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a));
  else
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a));
#endif
}

// 16 bytes from global to shared memory without the registers (sm_80's
// cp.async), src_bytes of them read and the rest zeros; in flight until
// fa_cp_wait.
__device__ __forceinline__ void fa_cp_async16(void *dst, const void *src, int src_bytes) {
#ifdef DISTILL_CUDA_EMU
  emu_cp_async16(dst, src, src_bytes);
#else
  const unsigned a = (unsigned)__cvta_generic_to_shared(dst);
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(a), "l"(__cvta_generic_to_global(src)),
               "r"(src_bytes));
#endif
}
// 4 bytes so (cp.async.ca: the sizes below 16 go through L1).
__device__ __forceinline__ void fa_cp_async4(void *dst, const void *src, int src_bytes) {
#ifdef DISTILL_CUDA_EMU
  emu_cp_async(dst, src, 4, src_bytes);
#else
  const unsigned a = (unsigned)__cvta_generic_to_shared(dst);
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(a), "l"(__cvta_generic_to_global(src)),
               "r"(src_bytes));
#endif
}
__device__ __forceinline__ void fa_cp_commit() {
#ifdef DISTILL_CUDA_EMU
  emu_cp_commit();
#else
  asm volatile("cp.async.commit_group;\n" ::);
#endif
}
// Waits until at most N of this thread's committed groups are in flight.
template <int N>
__device__ __forceinline__ void fa_cp_wait() {
#ifdef DISTILL_CUDA_EMU
  emu_cp_wait(N);
#else
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");  // no shared read moves above it
#endif
}

// The A fragment of rows r0.., columns c0.. of a row-major bf16 tile, by
// one ldmatrix: matrices (rows lo, columns lo), (hi, lo), (lo, hi), (hi, hi).
__device__ __forceinline__ void fa_frag_a(uint32_t a[4], const bf16 *s, int ld, int r0, int c0, int lane) {
  const int m = lane >> 3, rr = lane & 7;  // the row this lane names: matrix m's row rr
  fa_ldsm_x4<false>(a, s + (r0 + (m & 1) * 8 + rr) * ld + c0 + (m >> 1) * 8);
}

// c0(16, 8), c1(16, 8) += a(16, 16) · B for two 8-column blocks, B's
// column j row n0+j of s (c0) and row n0+8+j (c1), its k running along
// that row from k0 — both B fragments by one ldmatrix: matrices (rows lo,
// k lo), (lo, k hi), (hi, k lo), (hi, k hi).
__device__ __forceinline__ void fa_mma_rows2(float c0[4], float c1[4], const uint32_t a[4], const bf16 *s, int ld,
                                             int n0, int k0, int lane) {
  const int m = lane >> 3, rr = lane & 7;
  uint32_t b[4];
  fa_ldsm_x4<false>(b, s + (n0 + (m >> 1) * 8 + rr) * ld + k0 + (m & 1) * 8);
  fa_mma(c0, a, b[0], b[1]);
  fa_mma(c1, a, b[2], b[3]);
}

// The A fragment of a 16×16 product over keys (or queries) 16c.. from the
// C tiles 2c and 2c+1 of a score-shaped accumulator.
__device__ __forceinline__ void fa_c_to_a(uint32_t a[4], const float lo[4], const float hi[4]) {
  a[0] = fa_pack(lo[0], lo[1]);
  a[1] = fa_pack(lo[2], lo[3]);
  a[2] = fa_pack(hi[0], hi[1]);
  a[3] = fa_pack(hi[2], hi[3]);
}

// acc(16, 8·ND) += S·T over KB keys (or queries): S a score-shaped
// accumulator (its C tiles, rounded to bf16 as the A fragments of the
// product), T's column d row d of tile (a transposed tile, ld apart).
template <int KB, int ND>
__device__ __forceinline__ void fa_mma_scores(float acc[ND][4], float s[KB / 8][4], const bf16 *tile, int ld) {
#pragma unroll
  for (int c = 0; c < KB / 16; c++) {
    uint32_t a[4];
    fa_c_to_a(a, s[2 * c], s[2 * c + 1]);
#pragma unroll
    for (int d = 0; d < ND; d += 2) fa_mma_rows2(acc[d], acc[d + 1], a, tile, ld, d * 8, c * 16, threadIdx.x & 31);
  }
}

// fa_mma_scores with T read row-major — row k, column d (the tile as
// staged, ld apart) — through ldmatrix.trans: no transposed copy. The same
// products in the same order as fa_mma_scores over that tile's transpose.
template <int KB, int ND>
__device__ __forceinline__ void fa_mma_scores_rows(float acc[ND][4], float s[KB / 8][4], const bf16 *tile, int ld,
                                                   int lane) {
  const int m = lane >> 3, rr = lane & 7;  // the row this lane names: matrix m's row rr
#pragma unroll
  for (int c = 0; c < KB / 16; c++) {
    uint32_t a[4];
    fa_c_to_a(a, s[2 * c], s[2 * c + 1]);
#pragma unroll
    for (int dd = 0; dd < ND / 2; dd++) {  // two 8-column blocks a load: matrices (k lo, k hi) × (d lo, d hi)
      uint32_t b[4];
      fa_ldsm_x4<true>(b, tile + (c * 16 + (m & 1) * 8 + rr) * ld + dd * 16 + (m >> 1) * 8);
      fa_mma(acc[2 * dd], a, b[0], b[1]);
      fa_mma(acc[2 * dd + 1], a, b[2], b[3]);
    }
  }
}

// Rows r0..r0+rows−1 of a (n, stride) f32 matrix, columns c0..c0+HD−1,
// into a row-major bf16 tile (ld) and, if tr is set, its transpose (ldt);
// rows at or past n are zeros. HD is a multiple of 16 and every address
// 16-byte aligned (the caller checks), so each thread moves float4s. Each
// layout has its own pass, mapped so a warp's shared stores fall in
// distinct banks: along a row for the row-major tile; down the rows, two at
// a time (one 32-bit store of two bf16), for the transpose (along a row, a
// warp's transposed stores were 16 to a bank). THREADS must be the block's
// size (the kernel's launch bounds): with fewer, part of the tile is left
// unstaged and nothing would say so.
template <int HD, int ROWS, int THREADS>
__device__ __forceinline__ void fa_stage(bf16 *rowm, int ld, bf16 *tr, int ldt, const float *x, int n, int64_t stride,
                                         int c0, int r0) {
  // Trip counts are constants, so the loops unroll and a thread's loads are
  // all in flight before its first store (a loop of dependent load-store
  // pairs waits out the memory latency at each).
  constexpr int NR = ROWS * (HD / 4), NT = ROWS / 2 * (HD / 4);
  if (rowm) {
#pragma unroll
    for (int i = 0; i < (NR + THREADS - 1) / THREADS; i++) {
      int e = threadIdx.x + i * THREADS;
      if (NR % THREADS != 0 && e >= NR) break;
      int r = e / (HD / 4), c = (e % (HD / 4)) * 4;
      float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
      if (r0 + r < n) v = *reinterpret_cast<const float4 *>(x + (int64_t)(r0 + r) * stride + c0 + c);
      *reinterpret_cast<uint2 *>(rowm + r * ld + c) = make_uint2(fa_pack(v.x, v.y), fa_pack(v.z, v.w));
    }
  }
  if (tr) {
#pragma unroll
    for (int i = 0; i < (NT + THREADS - 1) / THREADS; i++) {
      int e = threadIdx.x + i * THREADS;
      if (NT % THREADS != 0 && e >= NT) break;
      int r = 2 * (e % (ROWS / 2)), c = (e / (ROWS / 2)) * 4;
      float4 a = make_float4(0.f, 0.f, 0.f, 0.f), b = a;
      if (r0 + r < n) a = *reinterpret_cast<const float4 *>(x + (int64_t)(r0 + r) * stride + c0 + c);
      if (r0 + r + 1 < n) b = *reinterpret_cast<const float4 *>(x + (int64_t)(r0 + r + 1) * stride + c0 + c);
      *reinterpret_cast<uint32_t *>(tr + (c + 0) * ldt + r) = fa_pack(a.x, b.x);
      *reinterpret_cast<uint32_t *>(tr + (c + 1) * ldt + r) = fa_pack(a.y, b.y);
      *reinterpret_cast<uint32_t *>(tr + (c + 2) * ldt + r) = fa_pack(a.z, b.z);
      *reinterpret_cast<uint32_t *>(tr + (c + 3) * ldt + r) = fa_pack(a.w, b.w);
    }
  }
}

// The A fragments of a warp's 16 rows (r0..) of a (n, stride) f32 matrix,
// columns c0..c0+HD−1, straight from memory (rows past n are zeros).
template <int HD>
__device__ __forceinline__ void fa_rows_a(uint32_t a[HD / 16][4], const float *x, int n, int64_t stride, int c0,
                                          int r0, int g, int t) {
  const float *p0 = x + (int64_t)(r0 + g) * stride + c0 + 2 * t, *p1 = p0 + 8 * stride;
  bool in0 = r0 + g < n, in1 = r0 + g + 8 < n;
#pragma unroll
  for (int kk = 0; kk < HD / 16; kk++) {
    float2 x00 = in0 ? *reinterpret_cast<const float2 *>(p0 + kk * 16) : make_float2(0.f, 0.f);
    float2 x10 = in1 ? *reinterpret_cast<const float2 *>(p1 + kk * 16) : make_float2(0.f, 0.f);
    float2 x01 = in0 ? *reinterpret_cast<const float2 *>(p0 + kk * 16 + 8) : make_float2(0.f, 0.f);
    float2 x11 = in1 ? *reinterpret_cast<const float2 *>(p1 + kk * 16 + 8) : make_float2(0.f, 0.f);
    a[kk][0] = fa_pack(x00.x, x00.y);
    a[kk][1] = fa_pack(x10.x, x10.y);
    a[kk][2] = fa_pack(x01.x, x01.y);
    a[kk][3] = fa_pack(x11.x, x11.y);
  }
}

// A warp's two rows g, g+8 (of rows r0..r0+15): their ranges, empty for a
// row past nq or with a bad range (bad[i] says which), and the warp's union
// [wlo, whi) (wlo > whi when empty).
struct fa_rows {
  int lo[2], hi[2];
  bool bad[2];
  int wlo, whi;
};

__device__ __forceinline__ fa_rows fa_row_ranges(const int32_t *kv_lo, const int32_t *kv_hi, int r0, int nq, int nk,
                                                  int max_len, int g) {
  fa_rows w;
  int mlo = INT_MAX, mhi = 0;
#pragma unroll
  for (int i = 0; i < 2; i++) {
    int r = r0 + g + 8 * i;
    w.lo[i] = w.hi[i] = 0;
    w.bad[i] = false;
    if (r < nq) {
      int lo = kv_lo[r], hi = kv_hi[r];
      if (fa_valid(lo, hi, nk, max_len)) {
        w.lo[i] = lo, w.hi[i] = hi;
        mlo = min(mlo, lo), mhi = max(mhi, hi);
      } else {
        w.bad[i] = true;
      }
    }
  }
  for (int o = 16; o > 0; o >>= 1) {
    mlo = min(mlo, __shfl_xor_sync(0xffffffffu, mlo, o));
    mhi = max(mhi, __shfl_xor_sync(0xffffffffu, mhi, o));
  }
  w.wlo = mlo, w.whi = mhi;
  return w;
}

// Whether each of the warp's rows attends every key of k0..k0+n−1 — a
// tile its masks would not change, so its products skip them (a causal
// pass's tiles below the diagonal: all but one a row of tiles). One vote,
// the same answer to every lane; rows past nq or with bad ranges (empty
// here) are never full.
__device__ __forceinline__ bool fa_full(const fa_rows &w, int k0, int n) {
  const bool mine = w.lo[0] <= k0 && w.hi[0] >= k0 + n && w.lo[1] <= k0 && w.hi[1] >= k0 + n;
  return __all_sync(0xffffffffu, mine);
}

// The block's key range: the union of its warps' (each thread passes its
// warp's); sh holds 2·NW ints.
template <int NW>
__device__ __forceinline__ void fa_block_range(int wlo, int whi, int *sh, int *blo, int *bhi) {
  int warp = threadIdx.x >> 5, nw = NW;
  if ((threadIdx.x & 31) == 0) sh[warp] = wlo, sh[nw + warp] = whi;
  __syncthreads();
  int lo = INT_MAX, hi = 0;
  for (int w = 0; w < nw; w++) lo = min(lo, sh[w]), hi = max(hi, sh[nw + w]);
  *blo = lo, *bhi = hi;
}

__device__ __forceinline__ float fa_quad_max(float v) {
  v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1));
  return fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
}
__device__ __forceinline__ float fa_quad_sum(float v) {
  v += __shfl_xor_sync(0xffffffffu, v, 1);
  return v + __shfl_xor_sync(0xffffffffu, v, 2);
}

// Key rows k0..k0+63 of the bf16 copies kb, vb (rows kvs apart, columns
// col..col+HD−1) into the row-major tiles Kd, Vd by cp.async — in flight
// until fa_cp_wait — rows at or past n zero-filled (not read).
template <int HD, int THREADS>
__device__ __forceinline__ void fa_stage_kv_async(bf16 *Kd, bf16 *Vd, const bf16 *kb, const bf16 *vb, int n,
                                                  int64_t kvs, int col, int k0) {
  constexpr int LDK = HD + FA_PAD, CH = HD / 8, N = FA_BK * CH;
#pragma unroll
  for (int i = 0; i < (N + THREADS - 1) / THREADS; i++) {
    const int e = threadIdx.x + i * THREADS;
    if (N % THREADS != 0 && e >= N) break;
    const int r = e / CH, c = (e % CH) * 8;
    const bool in = k0 + r < n;
    const int64_t off = in ? (int64_t)(k0 + r) * kvs + col + c : 0;  // a valid address when zero-filled
    fa_cp_async16(Kd + r * LDK + c, kb + off, in ? 16 : 0);
    fa_cp_async16(Vd + r * LDK + c, vb + off, in ? 16 : 0);
  }
}

// One key tile (k0..) of a warp's forward: S = Q·Kᵀ masked to each row's
// range, the online softmax's running max m and sum l rescaled, O += P·V —
// V's B operand from the transposed tile Vt with TR (v1 stages it), else
// from the row-major V by ldmatrix.trans (the same values in the same
// order).
// MASK false: a full tile (fa_full), no key masked — the same values.
template <int HD, bool TR, bool MASK>
__device__ __forceinline__ void fa_fwd_tile(float o[HD / 8][4], float m[2], float l[2], const uint32_t qa[HD / 16][4],
                                            const bf16 *Ks, const bf16 *V, const fa_rows &w, int k0, float scale) {
  constexpr int LDK = HD + FA_PAD, LDV = FA_BK + FA_PAD, NT = FA_BK / 8, ND = HD / 8;
  const int lane = threadIdx.x & 31, t = lane & 3;
  float s[NT][4];
#pragma unroll
  for (int n = 0; n < NT; n++) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;
#pragma unroll
  for (int kk = 0; kk < HD / 16; kk++)
#pragma unroll
    for (int n = 0; n < NT; n += 2) fa_mma_rows2(s[n], s[n + 1], qa[kk], Ks, LDK, n * 8, kk * 16, lane);

  // Scores, the running max m and base in base-2 units (× log2e).
  const float sl2 = scale * FA_LOG2E;
  float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
  for (int n = 0; n < NT; n++)
#pragma unroll
    for (int e = 0; e < 4; e++) {
      int i = e >> 1, j = k0 + n * 8 + 2 * t + (e & 1);
      float x = (!MASK || (j >= w.lo[i] && j < w.hi[i])) ? s[n][e] * sl2 : -INFINITY;
      s[n][e] = x;
      mx[i] = fmaxf(mx[i], x);
    }
  float base[2], alpha[2];
#pragma unroll
  for (int i = 0; i < 2; i++) {
    float mn = fmaxf(m[i], fa_quad_max(mx[i]));
    base[i] = mn == -INFINITY ? 0.f : mn;  // no key yet: 2^(−inf − 0) = 0, never NaN
    alpha[i] = fa_exp2(m[i] - base[i]);
    m[i] = mn;
    l[i] *= alpha[i];
  }
#pragma unroll
  for (int n = 0; n < NT; n++)
#pragma unroll
    for (int e = 0; e < 4; e++) {
      float p = fa_exp2(s[n][e] - base[e >> 1]);
      s[n][e] = p;
      l[e >> 1] += p;
    }
  // Past a row's first tiles its max seldom moves (alpha exactly 1): the
  // warp skips the rescale when no row's did — a vote for 2·ND multiplies
  // by 1.
  if (!__all_sync(0xffffffffu, alpha[0] == 1.f && alpha[1] == 1.f)) {
#pragma unroll
    for (int d = 0; d < ND; d++) o[d][0] *= alpha[0], o[d][1] *= alpha[0], o[d][2] *= alpha[1], o[d][3] *= alpha[1];
  }
  if constexpr (TR)
    fa_mma_scores<FA_BK, ND>(o, s, V, LDV);  // O += P·V
  else
    fa_mma_scores_rows<FA_BK, ND>(o, s, V, LDK, lane);
}

// Forward: grid (⌈nq/(16·QW)⌉, nh). Shared: K tile [64][HD+8], Vᵀ tile
// [HD][64+8], staged from f32 key tile by key tile; with ASYNC (kb, vb:
// bf16 copies of k and v) K and V tiles [64][HD+8] by cp.async into two
// buffers each, the next in flight while the warps compute on this one,
// and no Vᵀ (ldmatrix.trans reads V) — the same out and lse bit for bit.
// A block's tile of rows (or keys) and head: grid (tiles, heads), or with
// hf (heads, tiles) — heads fastest, so every head's heaviest tiles are
// dispatched before any head's light ones (longest first: a causal pass's
// tail is then light blocks, not the last heads' heavy ones).
struct fa_block {
  int tile, tiles, head;
};
__device__ __forceinline__ fa_block fa_block_of(int hf) {
  return hf ? fa_block{(int)blockIdx.y, (int)gridDim.y, (int)blockIdx.x}
            : fa_block{(int)blockIdx.x, (int)gridDim.x, (int)blockIdx.y};
}

// The kernels' opt bits (attn_flash.h's flags): FA_HEAVY_FIRST the grid
// heads fastest (fa_block_of); FA_PREFETCH (dk/dv with async tiles) each
// query tile's rows' ranges, lse and D copied by cp.async with its Q and
// dO rows instead of loaded when the tile is staged; FA_FUSED_DQ (backward
// with async tiles, read by the host code) dq added up by the dk/dv kernel
// instead of made by its own; FA_SPLIT_KV (dk/dv, read by the host code:
// the grid has two blocks a key block) each key block's query tiles split
// in two halves, a block each (fa_kv_split), their shares summed after;
// FA_SPLIT_DQ (dq, read by the host code: two blocks a row tile) each row
// tile's key tiles halved between two blocks (fa_q_split), the second's dq
// into dq2 and added after; FA_DKV_OCC3 (dk/dv with async tiles at head
// size 128, read by the host code: fa_dkv_build) the kernel built for
// three blocks an SM (MINB below); FA_STAGES3 (async tiles at head size 64
// or 128, read by the host code: fa_stages, fa_dkv_build) three buffers of
// tiles in the forward, dq and dk/dv (STAGES: fa_key_tiles, dk/dv's).
constexpr int FA_HEAVY_FIRST = 1, FA_PREFETCH = 2, FA_FUSED_DQ = 4, FA_SPLIT_KV = 8, FA_SPLIT_DQ = 16,
              FA_DKV_OCC3 = 32, FA_STAGES3 = 64;

// The forward's and dq's loop over key tiles k0 = kbeg, kbeg + 64, …
// below kend: stage(k0, b) copies tile k0 into buffer b by cp.async, and
// body(k0, b) computes on it once every thread's copies have landed.
// STAGES 2: tile k0 + 64 is copied while k0 is computed, into the buffer
// tile k0 − 64 was read from — so each tile ends at a barrier, lest a warp
// still reading it meet the copy — and has one tile's compute to land.
// STAGES 3: tiles k0 + 64 and k0 + 128 are in flight while k0 is computed;
// k0 + 128 is issued after the barrier that opens k0, into the buffer of
// k0 − 64, which every warp has then left: one barrier a tile, and each
// copy two tiles' compute to land (dk/dv's loop does the same over its
// query tiles).
template <int STAGES, class Stage, class Body>
__device__ __forceinline__ void fa_key_tiles(int kbeg, int kend, Stage stage, Body body) {
  int st = 0;
  if (kbeg < kend) stage(kbeg, 0);
  fa_cp_commit();
  if constexpr (STAGES == 3) {
    // kend − kbeg, not kbeg + 64: a block whose rows all attend nothing
    // has kbeg near INT_MAX (fa_block_range), and the sum would wrap.
    if (kend - kbeg > FA_BK) stage(kbeg + FA_BK, 1);
    fa_cp_commit();
  }
  for (int k0 = kbeg; k0 < kend; k0 += FA_BK, st = (st + 1) % STAGES) {
    if constexpr (STAGES == 2) {
      // The next tile into the other buffer, which the warps finished
      // reading before the barrier that ended the last iteration.
      if (k0 + FA_BK < kend) stage(k0 + FA_BK, st ^ 1);
      fa_cp_commit();
    }
    fa_cp_wait<1>();  // this thread's copies of tile k0 have landed (three stages: the next one's may not)
    __syncthreads();  // everyone's have; every warp has left the last tile
    if constexpr (STAGES == 3) {
      if (k0 + 2 * FA_BK < kend) stage(k0 + 2 * FA_BK, (st + 2) % 3);
      fa_cp_commit();
    }
    body(k0, st);
    if constexpr (STAGES == 2) __syncthreads();  // buffer st is read: the next iteration may refill it
  }
}

template <int HD, int QW, bool ASYNC, int STAGES = 2>
__global__ void __launch_bounds__(QW * 32) k_fa_fwd(float *out, float *lse, const float *q, const float *k,
                                                       const float *v, const bf16 *kb, const bf16 *vb,
                                                       const int32_t *kv_lo, const int32_t *kv_hi, int nq, int nk,
                                                       int nh, int nkv, int max_len, float scale, int opt) {
  DC_DYNAMIC_SHARED(unsigned char, fa_sh);
  constexpr int LDK = HD + FA_PAD, LDV = FA_BK + FA_PAD, ND = HD / 8, TILE = FA_BK * LDK;
  static_assert(STAGES == 2 || (STAGES == 3 && ASYNC), "two or three stages, three with async tiles");
  // async: Ks, Vs STAGES tiles each; v1: Ks, Vt one each
  bf16 *Ks = reinterpret_cast<bf16 *>(fa_sh), *Vt = Ks + TILE, *Vs = Ks + STAGES * TILE;
  __shared__ int rng[2 * QW];
  int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  // The last rows of a causal sequence attend the most keys: they start first.
  const fa_block bl = fa_block_of(opt & FA_HEAVY_FIRST);
  int h = bl.head, kvh = h / (nh / nkv), r0 = (bl.tiles - 1 - bl.tile) * 16 * QW + warp * 16;
  int64_t qs = (int64_t)nh * HD, kvs = (int64_t)nkv * HD;
  fa_rows w = fa_row_ranges(kv_lo, kv_hi, r0, nq, nk, max_len, g);
  int blo, bhi;
  fa_block_range<QW>(w.wlo, w.whi, rng, &blo, &bhi);

  uint32_t qa[HD / 16][4];
  fa_rows_a<HD>(qa, q, nq, qs, h * HD, r0, g, t);
  float o[ND][4];
#pragma unroll
  for (int d = 0; d < ND; d++) o[d][0] = o[d][1] = o[d][2] = o[d][3] = 0.f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};

  // Keys past the block's last range are staged as zeros, not read: a
  // masked key still meets P·V with weight 0, and 0·NaN is NaN (a decoder's
  // cache mirror past what it holds, attended with nk its capacity).
  const int kend = min(nk, bhi);
  if constexpr (ASYNC) {
    fa_key_tiles<STAGES>(
        blo / FA_BK * FA_BK, bhi,
        [&](int k0, int st) {
          fa_stage_kv_async<HD, QW * 32>(Ks + st * TILE, Vs + st * TILE, kb, vb, kend, kvs, kvh * HD, k0);
        },
        [&](int k0, int st) {
          if (fa_full(w, k0, FA_BK))
            fa_fwd_tile<HD, false, false>(o, m, l, qa, Ks + st * TILE, Vs + st * TILE, w, k0, scale);
          else if (!(k0 >= w.whi || k0 + FA_BK <= w.wlo))
            fa_fwd_tile<HD, false, true>(o, m, l, qa, Ks + st * TILE, Vs + st * TILE, w, k0, scale);
        });
  } else {
    for (int k0 = blo / FA_BK * FA_BK; k0 < bhi; k0 += FA_BK) {
      __syncthreads();  // the previous tile's reads are done
      fa_stage<HD, FA_BK, QW * 32>(Ks, LDK, nullptr, 0, k, kend, kvs, kvh * HD, k0);
      fa_stage<HD, FA_BK, QW * 32>(nullptr, 0, Vt, LDV, v, kend, kvs, kvh * HD, k0);
      __syncthreads();
      if (k0 >= w.whi || k0 + FA_BK <= w.wlo) continue;  // none of this warp's rows sees the tile
      if (fa_full(w, k0, FA_BK))
        fa_fwd_tile<HD, true, false>(o, m, l, qa, Ks, Vt, w, k0, scale);
      else
        fa_fwd_tile<HD, true, true>(o, m, l, qa, Ks, Vt, w, k0, scale);
    }
  }

#pragma unroll
  for (int i = 0; i < 2; i++) {
    int r = r0 + g + 8 * i;
    float sum = fa_quad_sum(l[i]);
    if (r >= nq) continue;
    float *orow = out + (int64_t)r * qs + h * HD;
    if (w.bad[i]) {
      for (int d = 0; d < ND; d++) *reinterpret_cast<float2 *>(orow + d * 8 + 2 * t) = make_float2(NAN, NAN);
      if (t == 0) lse[(int64_t)r * nh + h] = NAN;
      continue;
    }
    float inv = 1.f / sum;
#pragma unroll
    for (int d = 0; d < ND; d++)
      *reinterpret_cast<float2 *>(orow + d * 8 + 2 * t) = make_float2(o[d][2 * i] * inv, o[d][2 * i + 1] * inv);
    if (t == 0) lse[(int64_t)r * nh + h] = (m[i] + log2f(sum)) * FA_LN2;  // m in base 2: lse natural
  }
}

// D[i·nh + h] = Σ dout∘out over row i, head h: one warp a (row, head).
__global__ void k_fa_row_dot(float *D, const float *dout, const float *out, int nq, int nh, int hd) {
  int64_t rh = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
  int lane = threadIdx.x & 31;
  if (rh >= (int64_t)nq * nh) return;
  const float *a = dout + rh * hd, *b = out + rh * hd;  // (nq, nh·hd): row i head h starts at (i·nh + h)·hd
  float s = 0.f;
  for (int c = lane; c < hd; c += 32) s += a[c] * b[c];
  s = dc_warp_sum(s);
  if (lane == 0) D[rh] = s;
}

// Each 32-row query tile's [min lo, max hi) over its rows with good ranges
// (lo > hi when none): tiles[4·b], tiles[4·b+1]; and [max lo, min hi) over
// all its rows — the keys every row attends, empty (INT_MAX, 0) when a row
// is bad or past nq: tiles[4·b+2], tiles[4·b+3].
__global__ void k_fa_tile_range(int32_t *tiles, const int32_t *kv_lo, const int32_t *kv_hi, int nq, int nk,
                                int max_len) {
  int b = blockIdx.x, r = b * FA_BQ2 + threadIdx.x;  // one warp a tile
  int lo = INT_MAX, hi = 0, flo = INT_MAX, fhi = 0;
  if (r < nq) {
    int a = kv_lo[r], z = kv_hi[r];
    if (fa_valid(a, z, nk, max_len)) lo = flo = a, hi = fhi = z;
  }
  for (int o = 16; o > 0; o >>= 1) {
    lo = min(lo, __shfl_xor_sync(0xffffffffu, lo, o));
    hi = max(hi, __shfl_xor_sync(0xffffffffu, hi, o));
    flo = max(flo, __shfl_xor_sync(0xffffffffu, flo, o));
    fhi = min(fhi, __shfl_xor_sync(0xffffffffu, fhi, o));
  }
  if (threadIdx.x == 0) tiles[4 * b] = lo, tiles[4 * b + 1] = hi, tiles[4 * b + 2] = flo, tiles[4 * b + 3] = fhi;
}

// One key tile's share of a warp's dq (its 16 rows, fragments qa, da of q
// and dO, statistics L, Dr): S = Q·Kᵀ and dP = dO·Vᵀ from the row-major
// tiles, dS = P∘(dP − D)·scale, dq += dS·K — K's B operand from the
// transposed tile Kt with TR (v1 stages it), else from Ks by ldmatrix.trans
// (the same values in the same order).
// MASK false: a full tile (fa_full) — the same values.
template <int HD, bool TR, bool MASK>
__device__ __forceinline__ void fa_dq_tile(float acc[HD / 8][4], const uint32_t qa[HD / 16][4],
                                           const uint32_t da[HD / 16][4], const bf16 *Ks, const bf16 *Vs,
                                           const bf16 *Kt, const fa_rows &w, const float L[2], const float Dr[2],
                                           int k0, float scale) {
  constexpr int LDK = HD + FA_PAD, LDT = FA_BK + FA_PAD, NT = FA_BK / 8, ND = HD / 8;
  const int lane = threadIdx.x & 31, t = lane & 3;
  float s[NT][4], dp[NT][4];
#pragma unroll
  for (int n = 0; n < NT; n++)
#pragma unroll
    for (int e = 0; e < 4; e++) s[n][e] = dp[n][e] = 0.f;
#pragma unroll
  for (int kk = 0; kk < HD / 16; kk++)
#pragma unroll
    for (int n = 0; n < NT; n += 2) {
      fa_mma_rows2(s[n], s[n + 1], qa[kk], Ks, LDK, n * 8, kk * 16, lane);
      fa_mma_rows2(dp[n], dp[n + 1], da[kk], Vs, LDK, n * 8, kk * 16, lane);
    }
  const float sl2 = scale * FA_LOG2E, l2[2] = {L[0] * FA_LOG2E, L[1] * FA_LOG2E};  // base 2 (fa_exp2)
#pragma unroll
  for (int n = 0; n < NT; n++)
#pragma unroll
    for (int e = 0; e < 4; e++) {
      int i = e >> 1, j = k0 + n * 8 + 2 * t + (e & 1);
      bool in = !MASK || (j >= w.lo[i] && j < w.hi[i]);
      const float x = fa_exp2(fmaf(s[n][e], sl2, -l2[i])), p = in ? x : 0.f;  // taken, then selected: no branch
      s[n][e] = in ? p * (dp[n][e] - Dr[i]) * scale : 0.f;  // dS
    }
  if constexpr (TR)
    fa_mma_scores<FA_BK, ND>(acc, s, Kt, LDT);  // dq += dS·K
  else
    fa_mma_scores_rows<FA_BK, ND>(acc, s, Ks, LDK, lane);
}

// dq: grid (⌈nq/(16·QW)⌉, nh). Shared: K [64][HD+8], V [64][HD+8], Kᵀ [HD][64+8]
// staged from f32 key tile by key tile; with ASYNC (kb, vb: bf16 copies of
// k and v, made once per backward) K and V tiles by cp.async into two
// buffers each, the next tile in flight while the warps compute on this
// one, and no Kᵀ (ldmatrix.trans reads K) — the same dq bit for bit.
// The key range [*lo, *hi) of a block of rows whose keys are [blo, bhi):
// with splits 1 all of it; with 2 (FA_SPLIT_DQ) the first half of its key
// tiles (split 0) or the rest — at 2,048 causal tokens the last row tiles
// attend 32 key tiles where a GPU's average block slot (one a block an SM)
// has ~25, so the pass cannot end before them; split, they have 16.
__device__ __forceinline__ void fa_q_split(int *lo, int *hi, int blo, int bhi, int splits, int sp) {
  *lo = blo, *hi = bhi;
  if (splits == 1) return;
  const int k0 = blo / FA_BK * FA_BK, n = bhi > k0 ? (bhi - k0 + FA_BK - 1) / FA_BK : 0;
  const int mid = k0 + n / 2 * FA_BK;  // tiles [k0, mid), [mid, bhi)
  if (sp == 0)
    *hi = min(bhi, mid);
  else
    *lo = max(blo, mid);
}

template <int HD, int QW, bool ASYNC, int STAGES = 2>
__global__ void __launch_bounds__(QW * 32) k_fa_bwd_dq(float *dq, const float *dout, const float *q, const float *k,
                                                          const float *v, const bf16 *kb, const bf16 *vb,
                                                          const float *lse, const float *D,
                                                          const int32_t *kv_lo, const int32_t *kv_hi, int nq, int nk,
                                                          int nh, int nkv, int max_len, float scale, int opt,
                                                          float *dq2) {
  DC_DYNAMIC_SHARED(unsigned char, fa_sh);
  constexpr int LDK = HD + FA_PAD, LDT = FA_BK + FA_PAD, ND = HD / 8, TILE = FA_BK * LDK;
  static_assert(STAGES == 2 || (STAGES == 3 && ASYNC), "two or three stages, three with async tiles");
  // async: Ks, Vs STAGES tiles each; v1: Ks, Vs, Kt one each
  bf16 *Ks = reinterpret_cast<bf16 *>(fa_sh), *Vs = Ks + (ASYNC ? STAGES : 1) * TILE, *Kt = Vs + TILE;
  __shared__ int rng[2 * QW];
  int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  // The last rows of a causal sequence attend the most keys: they start
  // first. Split, two blocks a row tile: each half of its key tiles, the
  // second's dq into dq2.
  const fa_block bl = fa_block_of(opt & FA_HEAVY_FIRST);
  const int splits = opt & FA_SPLIT_DQ ? 2 : 1, sp = bl.tile % splits, tiles = bl.tiles / splits;
  int h = bl.head, kvh = h / (nh / nkv), r0 = (tiles - 1 - bl.tile / splits) * 16 * QW + warp * 16;
  int64_t qs = (int64_t)nh * HD, kvs = (int64_t)nkv * HD;
  fa_rows w = fa_row_ranges(kv_lo, kv_hi, r0, nq, nk, max_len, g);
  int blo, bhi;
  fa_block_range<QW>(w.wlo, w.whi, rng, &blo, &bhi);
  fa_q_split(&blo, &bhi, blo, bhi, splits, sp);
  if (sp) dq = dq2;

  uint32_t qa[HD / 16][4], da[HD / 16][4];
  fa_rows_a<HD>(qa, q, nq, qs, h * HD, r0, g, t);
  fa_rows_a<HD>(da, dout, nq, qs, h * HD, r0, g, t);
  float L[2], Dr[2];
#pragma unroll
  for (int i = 0; i < 2; i++) {
    int r = r0 + g + 8 * i;
    bool in = r < nq && !w.bad[i];
    L[i] = in ? lse[(int64_t)r * nh + h] : 0.f;
    Dr[i] = in ? D[(int64_t)r * nh + h] : 0.f;
  }
  float acc[ND][4];
#pragma unroll
  for (int d = 0; d < ND; d++) acc[d][0] = acc[d][1] = acc[d][2] = acc[d][3] = 0.f;

  if constexpr (ASYNC) {
    fa_key_tiles<STAGES>(
        blo / FA_BK * FA_BK, bhi,
        [&](int k0, int st) {  // rows past nk zero-filled
          fa_stage_kv_async<HD, QW * 32>(Ks + st * TILE, Vs + st * TILE, kb, vb, nk, kvs, kvh * HD, k0);
        },
        [&](int k0, int st) {
          if (fa_full(w, k0, FA_BK))
            fa_dq_tile<HD, false, false>(acc, qa, da, Ks + st * TILE, Vs + st * TILE, nullptr, w, L, Dr, k0, scale);
          else if (!(k0 >= w.whi || k0 + FA_BK <= w.wlo))
            fa_dq_tile<HD, false, true>(acc, qa, da, Ks + st * TILE, Vs + st * TILE, nullptr, w, L, Dr, k0, scale);
        });
  } else {
    for (int k0 = blo / FA_BK * FA_BK; k0 < bhi; k0 += FA_BK) {
      __syncthreads();
      fa_stage<HD, FA_BK, QW * 32>(Ks, LDK, Kt, LDT, k, nk, kvs, kvh * HD, k0);
      fa_stage<HD, FA_BK, QW * 32>(Vs, LDK, nullptr, 0, v, nk, kvs, kvh * HD, k0);
      __syncthreads();
      if (k0 >= w.whi || k0 + FA_BK <= w.wlo) continue;
      if (fa_full(w, k0, FA_BK))
        fa_dq_tile<HD, true, false>(acc, qa, da, Ks, Vs, Kt, w, L, Dr, k0, scale);
      else
        fa_dq_tile<HD, true, true>(acc, qa, da, Ks, Vs, Kt, w, L, Dr, k0, scale);
    }
  }

#pragma unroll
  for (int i = 0; i < 2; i++) {
    int r = r0 + g + 8 * i;
    if (r >= nq) continue;
    float *row = dq + (int64_t)r * qs + h * HD;
#pragma unroll
    for (int d = 0; d < ND; d++)
      *reinterpret_cast<float2 *>(row + d * 8 + 2 * t) =
          w.bad[i] ? make_float2(NAN, NAN) : make_float2(acc[d][2 * i], acc[d][2 * i + 1]);
  }
}

// A 32-row query tile's rows q0.. for head h, by the block's first 32
// threads: each row's key range and its lse and D (a row past nq or with a
// bad range: an empty range).
__device__ __forceinline__ void fa_tile_rows(int *lo_s, int *hi_s, float *Ls, float *Dsh, int q0,
                                             const int32_t *kv_lo, const int32_t *kv_hi, const float *lse,
                                             const float *D, int nq, int nk, int nh, int h, int max_len) {
  if (threadIdx.x >= FA_BQ2) return;
  int r = q0 + threadIdx.x, lo = 0, hi = 0;
  float L = 0.f, Dv = 0.f;
  if (r < nq) {
    int a = kv_lo[r], z = kv_hi[r];
    if (fa_valid(a, z, nk, max_len)) {
      lo = a, hi = z;
      L = lse[(int64_t)r * nh + h], Dv = D[(int64_t)r * nh + h];
    }
  }
  lo_s[threadIdx.x] = lo, hi_s[threadIdx.x] = hi, Ls[threadIdx.x] = L, Dsh[threadIdx.x] = Dv;
}

// One 32-row query tile's share of a warp's dk, dv (its 16 keys kw..):
// Sᵀ = K·Qᵀ and dPᵀ = V·dOᵀ from the row-major tiles, then dV += Pᵀ·dO and
// dK += dSᵀ·Q — their B operands from the transposed tiles Ot, Qt with TR
// (v1 stages them), else from Os, Qs by ldmatrix.trans (the same values in
// the same order). lo_s, hi_s, Ls, Dsh: the tile's rows' ranges, lse and D
// (as fa_tile_rows leaves them, or as prefetched: a bad range judged here).
//
// With DS (the fused dq) the tile's dSᵀ is also stored, rounded to bf16 as
// dK's product rounds it, into DsT: the block's 64 keys by the tile's 32
// queries (rows LDQ apart), this warp's 16 rows.
// MASK false: every row of the tile attends every key of the warp's (the
// tile's [max lo, min hi) covers them) — no range read, the same values.
template <int HD, bool TR, bool DS, bool MASK>
__device__ __forceinline__ void fa_dkv_tile(float gk[HD / 8][4], float gv[HD / 8][4], const bf16 *Ks, const bf16 *Vs,
                                            const bf16 *Qs, const bf16 *Os, const bf16 *Qt, const bf16 *Ot,
                                            const int *lo_s, const int *hi_s, const float *Ls, const float *Dsh,
                                            int kw, float scale, int nk, int max_len, bf16 *DsT = nullptr) {
  constexpr int LDK = HD + FA_PAD, LDQ = FA_BQ2 + FA_PAD, NQ8 = FA_BQ2 / 8, ND = HD / 8;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  float st[NQ8][4], dpt[NQ8][4];
#pragma unroll
  for (int n = 0; n < NQ8; n++)
#pragma unroll
    for (int e = 0; e < 4; e++) st[n][e] = dpt[n][e] = 0.f;
#pragma unroll
  for (int kk = 0; kk < HD / 16; kk++) {
    uint32_t ka[4], va[4];
    fa_frag_a(ka, Ks, LDK, warp * 16, kk * 16, lane);
    fa_frag_a(va, Vs, LDK, warp * 16, kk * 16, lane);
#pragma unroll
    for (int n = 0; n < NQ8; n += 2) {
      fa_mma_rows2(st[n], st[n + 1], ka, Qs, LDK, n * 8, kk * 16, lane);
      fa_mma_rows2(dpt[n], dpt[n + 1], va, Os, LDK, n * 8, kk * 16, lane);
    }
  }
  // Row (key) kw+g (+8 for e ≥ 2), column (query) n·8 + 2t (+1): each
  // column's range and statistics read once, each exponential taken
  // whether or not its key is in range and then selected (no branches).
  const float sl2 = scale * FA_LOG2E;  // base 2 (fa_exp2)
#pragma unroll
  for (int n = 0; n < NQ8; n++)
#pragma unroll
    for (int b = 0; b < 2; b++) {
      const int c = n * 8 + 2 * t + b, lo = MASK ? lo_s[c] : 0, hi = MASK ? hi_s[c] : 0;
      // A bad range reaches no key (fa_tile_rows empties it; prefetched,
      // its raw values arrive and are judged here).
      const bool good = !MASK || fa_valid(lo, hi, nk, max_len);
      const float l2 = Ls[c] * FA_LOG2E, dc = Dsh[c];
#pragma unroll
      for (int i = 0; i < 2; i++) {
        const int e = 2 * i + b, j = kw + g + 8 * i;
        const bool in = !MASK || (good && j >= lo && j < hi);
        const float x = fa_exp2(fmaf(st[n][e], sl2, -l2)), p = in ? x : 0.f;  // out of range: x not kept
        dpt[n][e] = in ? p * (dpt[n][e] - dc) * scale : 0.f;            // dSᵀ
        st[n][e] = p;                                                   // Pᵀ
      }
    }
  if constexpr (DS) {
#pragma unroll
    for (int n = 0; n < NQ8; n++)
#pragma unroll
      for (int i = 0; i < 2; i++)
        *reinterpret_cast<uint32_t *>(DsT + (warp * 16 + g + 8 * i) * LDQ + n * 8 + 2 * t) =
            fa_pack(dpt[n][2 * i], dpt[n][2 * i + 1]);
  }
  if constexpr (TR) {
    fa_mma_scores<FA_BQ2, ND>(gv, st, Ot, LDQ);   // dV += Pᵀ·dO
    fa_mma_scores<FA_BQ2, ND>(gk, dpt, Qt, LDQ);  // dK += dSᵀ·Q
  } else {
    fa_mma_scores_rows<FA_BQ2, ND>(gv, st, Os, LDK, lane);
    fa_mma_scores_rows<FA_BQ2, ND>(gk, dpt, Qs, LDK, lane);
  }
}

// A warp's 16 rows of DsT zero: its keys meet none of the tile's queries
// (the warp skipped the tile), but the block's dq product reads every row.
__device__ __forceinline__ void fa_ds_zero(bf16 *DsT) {
  constexpr int LDQ = FA_BQ2 + FA_PAD, W = FA_BQ2 / 2;  // 32-bit words a row
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
#pragma unroll
  for (int e = lane; e < 16 * W; e += 32)
    *reinterpret_cast<uint32_t *>(DsT + (warp * 16 + e / W) * LDQ + (e % W) * 2) = 0u;
}

// The fused dq: dq += dS·K for one 32-row query tile (rows q0..) of head
// h, dS the block's dSᵀ in DsT read back transposed (ldmatrix.trans: the A
// fragments of dS, queries by keys), K's B fragments from Ks as dq's
// kernel reads them. Warp w takes the tile's queries 16·(w & 1).. and half
// (w >> 1) of the head's 8-column blocks, and adds its 16 rows into dq by
// f32 atomics — each element once a key block, in an order the GPU picks
// (dq's kernel sums a row's key tiles in order: this one differs from it
// by rounding, run to run). Rows past nq add nothing.
template <int HD>
__device__ __forceinline__ void fa_dq_fused(float *dq, const bf16 *DsT, const bf16 *Ks, int q0, int nq, int64_t qs,
                                            int h) {
  constexpr int LDK = HD + FA_PAD, LDQ = FA_BQ2 + FA_PAD, NW = HD / 16;  // 8-column blocks a warp
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const int m = lane >> 3, rr = lane & 7;  // the row this lane names: matrix m's row rr
  const int qr = (warp & 1) * 16, n0 = (warp >> 1) * NW;
  float acc[NW][4];
#pragma unroll
  for (int j = 0; j < NW; j++) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.f;
#pragma unroll
  for (int kk = 0; kk < FA_BK / 16; kk++) {
    // Matrices (queries lo, keys lo), (hi, lo), (lo, hi), (hi, hi): DsT's
    // rows are keys, so .trans gives each lane its two keys of one query.
    uint32_t a[4];
    fa_ldsm_x4<true>(a, DsT + (kk * 16 + (m >> 1) * 8 + rr) * LDQ + qr + (m & 1) * 8);
#pragma unroll
    for (int p = 0; p < (NW + 1) / 2; p++) {  // two 8-column blocks a load (an odd last one loaded twice)
      const int j = n0 + 2 * p, j2 = 2 * p + 1 < NW ? j + 1 : j;
      uint32_t b[4];
      fa_ldsm_x4<true>(b, Ks + (kk * 16 + (m & 1) * 8 + rr) * LDK + ((m >> 1) ? j2 : j) * 8);
      fa_mma(acc[2 * p], a, b[0], b[1]);
      if (2 * p + 1 < NW) fa_mma(acc[2 * p + 1], a, b[2], b[3]);
    }
  }
#pragma unroll
  for (int i = 0; i < 2; i++) {
    const int r = q0 + qr + g + 8 * i;
    if (r >= nq) continue;
    float *row = dq + (int64_t)r * qs + h * HD + n0 * 8 + 2 * t;
#pragma unroll
    for (int j = 0; j < NW; j++) {
      atomicAdd(row + j * 8, acc[j][2 * i]);
      atomicAdd(row + j * 8 + 1, acc[j][2 * i + 1]);
    }
  }
}

// dq before the fused dk/dv kernel adds into it (rows of row_len floats, a
// block a row, the blocks striding): 0 where the row's range is good, NaN
// where it is bad — what dq's kernel writes there.
__global__ void k_fa_dq_init(float *dq, const int32_t *kv_lo, const int32_t *kv_hi, int nq, int nk, int max_len,
                             int row_len) {
  for (int r = blockIdx.x; r < nq; r += gridDim.x) {
    const float v = fa_valid(kv_lo[r], kv_hi[r], nk, max_len) ? 0.f : NAN;
    float *row = dq + (int64_t)r * row_len;
    for (int c = threadIdx.x; c < row_len; c += blockDim.x) row[c] = v;
  }
}

// Whether every row of query tile b attends all 16 of the keys kw.. (its
// [max lo, min hi), tile_range's): dk/dv's products skip their masks.
__device__ __forceinline__ bool fa_tile_full(const int32_t *tiles, int b, int kw) {
  return tiles[4 * b + 2] <= kw && tiles[4 * b + 3] >= kw + 16;
}

// A warp's dk, dv rows (its 16 keys kw..) written once: into dk, dv when a
// KV head has one query head, else head h's share into part (os apart).
template <int HD>
__device__ __forceinline__ void fa_dkv_store(float *dk, float *dv, int64_t os, const float gk[HD / 8][4],
                                             const float gv[HD / 8][4], int kw, int nk, int h, int kvh, int group) {
  const int t = threadIdx.x & 3, g = (threadIdx.x & 31) >> 2;
#pragma unroll
  for (int i = 0; i < 2; i++) {
    int j = kw + g + 8 * i;
    if (j >= nk) continue;
    int col = group == 1 ? kvh * HD : h * HD;
    float *kr = dk + (int64_t)j * os + col, *vr = dv + (int64_t)j * os + col;
#pragma unroll
    for (int d = 0; d < HD / 8; d++) {
      *reinterpret_cast<float2 *>(kr + d * 8 + 2 * t) = make_float2(gk[d][2 * i], gk[d][2 * i + 1]);
      *reinterpret_cast<float2 *>(vr + d * 8 + 2 * t) = make_float2(gv[d][2 * i], gv[d][2 * i + 1]);
    }
  }
}

// The query tiles [*b0, *b1) of key block k0.. that one block takes: with
// splits 1, every tile; with 2 (FA_SPLIT_KV), half of those from the first
// that reaches the keys to the last (split sp, 0 or 1, the first half) —
// at 2,048 causal tokens key block 0 has 64 tiles and the last 2, and a
// GPU holding 2 blocks an SM could not end before the heaviest block did,
// though the average SM's share is three quarters of it. Block-uniform:
// every thread reads the same tile ranges.
__device__ __forceinline__ void fa_kv_split(int *b0, int *b1, const int32_t *tiles, int ntiles, int k0, int splits,
                                            int sp) {
  *b0 = 0, *b1 = ntiles;
  if (splits == 1) return;
  auto reaches = [&](int b) { return !(tiles[4 * b] >= k0 + FA_BK || tiles[4 * b + 1] <= k0); };
  int first = 0, last = ntiles - 1;
  while (first < ntiles && !reaches(first)) first++;
  while (last > first && !reaches(last)) last--;
  const int mid = first + (last - first + 1) / 2;  // [first, mid), [mid, last]
  *b0 = sp == 0 ? first : mid;
  *b1 = sp == 0 ? mid : (first < ntiles ? last + 1 : ntiles);
}

// dk, dv of one query head: grid (⌈nk/64⌉, nh) (or (nh, ⌈nk/64⌉): hf), 16 keys a warp, head h's
// share of its KV head's gradients into dk, dv (rows os apart, head h's
// columns at h·HD, or the KV head's when it is the group's only head:
// fa_bwd sums a group's shares after). Shared: K, V [64][HD+8] (the warps'
// A operands, staged once), then per query tile Q, dO [32][HD+8], Qᵀ, dOᵀ
// [HD][32+8] staged from f32, and the tile's lse, D, lo, hi. With ASYNC
// (qb, ob: bf16 copies of q and dout, made once per backward) each tile's
// Q and dO rows are copied by cp.async into one of two buffers while the
// warps compute on the other, and dV's and dK's B operands are read from
// them by ldmatrix.trans (no transposes) — the same dk, dv bit for bit; at
// HD 128 70 KB of shared memory, within a consumer card's 99 KB a block.
// FUSED (async only; dq given, as k_fa_dq_init leaves it) adds each tile's
// dS·K into dq as well (fa_dq_fused: the block's dSᵀ through 5 KB more of
// shared memory), so dq's kernel — which computes S and dP again — is not
// run: five products a tile pair where the two kernels make seven.
// MINB: the blocks an SM the registers are capped for (ptxas: 65,536 /
// (128·MINB)). At head size 128 the async kernel takes 213 registers, so
// two blocks — 8 warps — share an SM and each warp's ldmatrix → mma →
// exponential chains have few others to hide behind; with MINB 3 (168
// registers, 12 warps an SM where shared memory holds three blocks) ptxas
// spills ~12 accumulators a tile to local memory (188 bytes stored, 204
// loaded a thread, sm_90) — the same instructions otherwise, the same
// results bit for bit. MINB 1 names no minimum (0): ptxas allocates as
// before (an explicit 1 took 218 registers where it takes 213).
// STAGES (async): the query tiles' buffers of Q and dO. With 2, tile b+1
// is copied while tile b is computed, into the buffer tile b−1 was read
// from, so a second barrier each tile keeps the copy from overwriting a
// buffer a slower warp still reads. With 3 (~17 KB more at head size 128),
// tiles b+1 and b+2 are in flight while b is computed — each has two
// tiles' compute to land, not one — and b+2 is issued after the barrier
// that opens tile b, into the buffer of tile b−1, which every warp has
// then left: one barrier a tile (the fused dq's own besides).
template <int HD, bool ASYNC, bool FUSED = false, int MINB = 1, int STAGES = 2>
__global__ void __launch_bounds__(FA_THREADS, MINB == 1 ? 0 : MINB) k_fa_bwd_dkv(float *dk, float *dv, int64_t os, const float *dout,
                                                           const float *q, const float *k, const float *v,
                                                           const bf16 *ob, const bf16 *qb, const float *lse,
                                                           const float *D, const int32_t *kv_lo,
                                                           const int32_t *kv_hi, const int32_t *tiles, int nq, int nk,
                                                           int nh, int nkv, int max_len, float scale, int opt,
                                                           float *dq, int64_t ss) {
  static_assert(ASYNC || !FUSED, "the fused dq reads K by ldmatrix.trans: async tiles only");
  static_assert(STAGES == 2 || (STAGES == 3 && ASYNC), "two or three stages, three with async tiles");
  DC_DYNAMIC_SHARED(unsigned char, fa_sh);
  constexpr int LDK = HD + FA_PAD, LDQ = FA_BQ2 + FA_PAD, ND = HD / 8, TILE = FA_BQ2 * LDK;
  constexpr int NB = ASYNC ? STAGES : 1;  // query tiles' buffers
  bf16 *Ks = reinterpret_cast<bf16 *>(fa_sh), *Vs = Ks + FA_BK * LDK, *Qs = Vs + FA_BK * LDK;
  // v1: Qs, Os one tile each, then Qᵀ, dOᵀ; async: Qs, Os STAGES tiles
  // each (FUSED: then dSᵀ, [64][32+8]).
  bf16 *Os = Qs + NB * TILE, *Qt = Os + TILE, *Ot = Qt + HD * LDQ, *DsT = Os + NB * TILE;
  __shared__ float Ls[NB][FA_BQ2], Dsh[NB][FA_BQ2];
  __shared__ int lo_s[NB][FA_BQ2], hi_s[NB][FA_BQ2];
  int warp = threadIdx.x >> 5;
  // The first keys of a causal sequence are attended by the most rows:
  // their blocks start first.
  // Split, two blocks a key block (its halves of the query tiles, each
  // into its own share, ss floats after the first's).
  const fa_block bl = fa_block_of(opt & FA_HEAVY_FIRST);
  const int splits = opt & FA_SPLIT_KV ? 2 : 1, sp = bl.tile % splits;
  int h = bl.head, group = nh / nkv, kvh = h / group, k0 = bl.tile / splits * FA_BK, kw = k0 + warp * 16;
  int64_t qs = (int64_t)nh * HD, kvs = (int64_t)nkv * HD;
  const int ntiles = (nq + FA_BQ2 - 1) / FA_BQ2;
  int bbeg, bend;
  fa_kv_split(&bbeg, &bend, tiles, ntiles, k0, splits, sp);
  dk += sp * ss, dv += sp * ss;
  fa_stage<HD, FA_BK, FA_THREADS>(Ks, LDK, nullptr, 0, k, nk, kvs, kvh * HD, k0);
  fa_stage<HD, FA_BK, FA_THREADS>(Vs, LDK, nullptr, 0, v, nk, kvs, kvh * HD, k0);

  float gk[ND][4], gv[ND][4];
#pragma unroll
  for (int d = 0; d < ND; d++)
#pragma unroll
    for (int e = 0; e < 4; e++) gk[d][e] = gv[d][e] = 0.f;

  if constexpr (ASYNC) {
    constexpr int CH = HD / 8;
    // The next tile of the block's from b whose rows reach these keys
    // (block-uniform; bend when none).
    auto next = [&](int b) {
      while (b < bend && (tiles[4 * b] >= k0 + FA_BK || tiles[4 * b + 1] <= k0)) b++;
      return b;
    };
    // Tile b into buffer st: its rows of Q and dO in flight (rows past nq
    // zero-filled), its rows' ranges and statistics stored now.
    auto stage = [&](int b, int st) {
      const int q0 = b * FA_BQ2;
      bf16 *qd = Qs + st * TILE, *od = Os + st * TILE;
#pragma unroll
      for (int i = 0; i < (FA_BQ2 * CH + FA_THREADS - 1) / FA_THREADS; i++) {
        const int e = threadIdx.x + i * FA_THREADS;
        if ((FA_BQ2 * CH) % FA_THREADS != 0 && e >= FA_BQ2 * CH) break;
        const int r = e / CH, c = (e % CH) * 8;
        const bool in = q0 + r < nq;
        const int64_t off = in ? (int64_t)(q0 + r) * qs + h * HD + c : 0;  // a valid address when zero-filled
        fa_cp_async16(qd + r * LDK + c, qb + off, in ? 16 : 0);
        fa_cp_async16(od + r * LDK + c, ob + off, in ? 16 : 0);
      }
      if (!(opt & FA_PREFETCH)) {
        fa_tile_rows(lo_s[st], hi_s[st], Ls[st], Dsh[st], q0, kv_lo, kv_hi, lse, D, nq, nk, nh, h, max_len);
      } else if (threadIdx.x < FA_BQ2) {  // in flight with the rows (rows past nq: zeros, an empty range)
        const int r = q0 + threadIdx.x;
        const bool in = r < nq;
        const int64_t ri = in ? r : 0, si = in ? (int64_t)r * nh + h : 0;  // valid addresses when zero-filled
        fa_cp_async4(&lo_s[st][threadIdx.x], kv_lo + ri, in ? 4 : 0);
        fa_cp_async4(&hi_s[st][threadIdx.x], kv_hi + ri, in ? 4 : 0);
        fa_cp_async4(&Ls[st][threadIdx.x], lse + si, in ? 4 : 0);
        fa_cp_async4(&Dsh[st][threadIdx.x], D + si, in ? 4 : 0);
      }
    };

    int b = next(bbeg), st = 0;
    if (b < bend) stage(b, 0);
    fa_cp_commit();
    [[maybe_unused]] int b1 = bend;  // three stages: the tile after b, in flight from the start
    if constexpr (STAGES == 3) {
      b1 = b < bend ? next(b + 1) : bend;
      if (b1 < bend) stage(b1, 1);
      fa_cp_commit();
    }
    while (b < bend) {
      int bn;  // the tile the next iteration computes
      if constexpr (STAGES == 2) {
        // The next tile goes into the other buffer, which the warps
        // finished reading before the barrier that ended the last
        // iteration.
        bn = next(b + 1);
        if (bn < bend) stage(bn, st ^ 1);
        fa_cp_commit();
      }
      fa_cp_wait<1>();  // this thread's copies of tile b have landed (three stages: b1's may not)
      __syncthreads();  // everyone's have (and K, V, and tile b's ranges); every warp has left the last tile
      if constexpr (STAGES == 3) {
        // Two tiles on, into the buffer the last tile was read from.
        bn = b1;
        b1 = b1 < bend ? next(b1 + 1) : bend;
        if (b1 < bend) stage(b1, (st + 2) % 3);
        fa_cp_commit();
      }
      const int tlo = tiles[4 * b], thi = tiles[4 * b + 1];
      const bool reach = !(tlo >= kw + 16 || thi <= kw);  // some row of the tile reaches this warp's keys
      if (fa_tile_full(tiles, b, kw))  // every row reaches all of them
        fa_dkv_tile<HD, false, FUSED, false>(gk, gv, Ks, Vs, Qs + st * TILE, Os + st * TILE, nullptr, nullptr,
                                             lo_s[st], hi_s[st], Ls[st], Dsh[st], kw, scale, nk, max_len, DsT);
      else if (reach)
        fa_dkv_tile<HD, false, FUSED, true>(gk, gv, Ks, Vs, Qs + st * TILE, Os + st * TILE, nullptr, nullptr,
                                            lo_s[st], hi_s[st], Ls[st], Dsh[st], kw, scale, nk, max_len, DsT);
      if constexpr (FUSED) {
        if (!reach) fa_ds_zero(DsT);
        __syncthreads();  // every warp's rows of dSᵀ are stored
        fa_dq_fused<HD>(dq, DsT, Ks, b * FA_BQ2, nq, (int64_t)nh * HD, h);
      }
      // Two stages: buffer st is read (and DsT), the next iteration may
      // refill it. Three: the next iteration's first barrier says so.
      if constexpr (STAGES == 2) __syncthreads();
      b = bn, st = (st + 1) % STAGES;
    }
  } else {
    for (int b = bbeg; b < bend; b++) {
      int tlo = tiles[4 * b], thi = tiles[4 * b + 1];
      if (tlo >= k0 + FA_BK || thi <= k0) continue;  // block-uniform: no row of the tile reaches these keys
      int q0 = b * FA_BQ2;
      __syncthreads();  // the previous tile's reads are done (and, the first time, K and V are staged)
      fa_stage<HD, FA_BQ2, FA_THREADS>(Qs, LDK, Qt, LDQ, q, nq, qs, h * HD, q0);
      fa_stage<HD, FA_BQ2, FA_THREADS>(Os, LDK, Ot, LDQ, dout, nq, qs, h * HD, q0);
      fa_tile_rows(lo_s[0], hi_s[0], Ls[0], Dsh[0], q0, kv_lo, kv_hi, lse, D, nq, nk, nh, h, max_len);
      __syncthreads();
      if (tlo >= kw + 16 || thi <= kw) continue;  // none of the tile's rows reaches this warp's keys
      if (fa_tile_full(tiles, b, kw))  // every row reaches all of this warp's keys
        fa_dkv_tile<HD, true, false, false>(gk, gv, Ks, Vs, Qs, Os, Qt, Ot, lo_s[0], hi_s[0], Ls[0], Dsh[0], kw, scale,
                                            nk, max_len);
      else
        fa_dkv_tile<HD, true, false, true>(gk, gv, Ks, Vs, Qs, Os, Qt, Ot, lo_s[0], hi_s[0], Ls[0], Dsh[0], kw, scale,
                                           nk, max_len);
    }
  }

  fa_dkv_store<HD>(dk, dv, os, gk, gv, kw, nk, h, kvh, group);
}

// dk[j, g·hd + c] = Σ over g's heads h of part[j, h·hd + c] (and dv): the
// group's shares summed, in a fixed order — with splits 2 (FA_SPLIT_KV)
// the second half's shares, ss floats on, after the first's.
__global__ void k_fa_group_sum(float *dk, float *dv, const float *pk, const float *pv, int nk, int nh, int nkv,
                               int hd, int splits, int64_t ss) {
  int64_t n = (int64_t)nk * nkv * hd, kvs = (int64_t)nkv * hd, qs = (int64_t)nh * hd;
  int group = nh / nkv;
  for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += (int64_t)gridDim.x * blockDim.x) {
    int64_t j = e / kvs;
    int gc = (int)(e % kvs), kv = gc / hd, c = gc % hd;
    const float *a = pk + j * qs + (int64_t)kv * group * hd + c, *b = pv + j * qs + (int64_t)kv * group * hd + c;
    float sk = 0.f, sv = 0.f;
    for (int s = 0; s < splits; s++)
      for (int i = 0; i < group; i++) sk += a[s * ss + i * hd], sv += b[s * ss + i * hd];
    dk[e] = sk, dv[e] = sv;
  }
}

template <int HD>
size_t fa_fwd_async_smem(int stages = 2) { return (size_t)(2 * stages * FA_BK * (HD + FA_PAD)) * sizeof(bf16); }
template <int HD>
size_t fa_fwd_smem() { return (size_t)(FA_BK * (HD + FA_PAD) + HD * (FA_BK + FA_PAD)) * sizeof(bf16); }
template <int HD>
size_t fa_dq_smem() { return (size_t)(2 * FA_BK * (HD + FA_PAD) + HD * (FA_BK + FA_PAD)) * sizeof(bf16); }
template <int HD>
size_t fa_dkv_smem() {
  return (size_t)(2 * FA_BK * (HD + FA_PAD) + 2 * FA_BQ2 * (HD + FA_PAD) + 2 * HD * (FA_BQ2 + FA_PAD)) * sizeof(bf16);
}

template <int HD>
size_t fa_dq_async_smem(int stages = 2) { return (size_t)(2 * stages * FA_BK * (HD + FA_PAD)) * sizeof(bf16); }
template <int HD>
size_t fa_dkv_async_smem(int stages = 2) {
  return (size_t)(2 * FA_BK * (HD + FA_PAD) + 2 * stages * FA_BQ2 * (HD + FA_PAD)) * sizeof(bf16);
}
template <int HD>
size_t fa_dkv_fused_smem(int stages = 2) {
  return fa_dkv_async_smem<HD>(stages) + (size_t)(FA_BK * (FA_BQ2 + FA_PAD)) * sizeof(bf16);
}

// One warp a (row, head): (out, lse) and (out2, lse2), attentions of the
// same query over two disjoint key sets, become the attention over their
// union: weights e^lse / (e^lse + e^lse2), in f32 from the larger lse.
__global__ void k_attn_merge(float *out, float *lse, const float *out2, const float *lse2, int64_t rows, int hd) {
  int64_t r = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
  int lane = threadIdx.x & 31;
  if (r >= rows) return;
  float a = lse[r], b = lse2[r], m = fmaxf(a, b);
  float wa = expf(a - m), wb = expf(b - m), inv = 1.f / (wa + wb);
  for (int c = lane; c < hd; c += 32) out[r * hd + c] = (wa * out[r * hd + c] + wb * out2[r * hd + c]) * inv;
  __syncwarp();  // every lane has read lse[r]
  if (lane == 0) lse[r] = m + logf(wa + wb);
}


}  // namespace
