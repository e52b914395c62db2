// swiglu_kernels.cuh: the device code of swiglu.cu (SwiGLU forward (f32,
// optionally bf16 too, by 1 or by 4) and backward), apart from its launchers
// so that cuda/emu compiles it on the host too (DISTILL_CUDA_EMU,
// cuda/emu/host/shim.h first; checked by host/train_emu.cpp). The kernels keep
// their names and linkage (no anonymous namespace): swiglu.cu alone includes
// this, and its device build is instruction for instruction what it was.
#pragma once
#include "bf16_rows.cuh"
#include "devmath.cuh"
#include "lora_sums.cuh"

// ab (optional): a rounded to bf16 as well, for the next GEMM's operand.
// gb, ub (optional, together): g and u rounded to bf16, the copies a layer
// keeps for its backward when it keeps its activations (k_swiglu_bwd_b16).
__global__ void k_swiglu_fwd(float *a, __nv_bfloat16 *ab, __nv_bfloat16 *gb, __nv_bfloat16 *ub, const float *g,
                             const float *u, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    float gi = g[i], ui = u[i];
    float v = gi * dc_sigmoid(gi) * ui;
    a[i] = v;
    if (ab) ab[i] = __float2bfloat16_rn(v);
    if (gb) gb[i] = __float2bfloat16_rn(gi), ub[i] = __float2bfloat16_rn(ui);
  }
}

// The same by groups of 4 (a, g, u 16-byte aligned, ab, gb, ub 8-byte): the
// element-wise kernels are bound by memory, and 16-byte accesses reach more
// of it. n4 = n/4.
__global__ void k_swiglu_fwd_x4(float4 *a, uint2 *ab, uint2 *gb, uint2 *ub, const float4 *g, const float4 *u,
                                int64_t n4) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n4; i += (int64_t)gridDim.x * blockDim.x) {
    float4 gi = g[i], ui = u[i], v;
    v.x = gi.x * dc_sigmoid(gi.x) * ui.x;
    v.y = gi.y * dc_sigmoid(gi.y) * ui.y;
    v.z = gi.z * dc_sigmoid(gi.z) * ui.z;
    v.w = gi.w * dc_sigmoid(gi.w) * ui.w;
    a[i] = v;
    if (ab) ab[i] = dc_pack_bf16x4(v);
    if (gb) gb[i] = dc_pack_bf16x4(gi), ub[i] = dc_pack_bf16x4(ui);
  }
}

// a = silu(g)·u from g and u in bf16 (the gate and up GEMMs' own output):
// a (optional) in f32, ab (optional) in bf16 — k_swiglu_fwd's formula on
// the widened values. By 4 (n4 groups: a 16-byte, the rest 8-byte aligned)
// or, V4 false, by 1 over n.
template <bool V4>
__global__ void k_swiglu_fwd_b16(float *a, __nv_bfloat16 *ab, const __nv_bfloat16 *gb, const __nv_bfloat16 *ub,
                                 int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    if (V4) {
      const float4 g = dc_unpack_bf16x4(reinterpret_cast<const uint2 *>(gb)[i]),
                   u = dc_unpack_bf16x4(reinterpret_cast<const uint2 *>(ub)[i]);
      float4 v;
      v.x = g.x * dc_sigmoid(g.x) * u.x;
      v.y = g.y * dc_sigmoid(g.y) * u.y;
      v.z = g.z * dc_sigmoid(g.z) * u.z;
      v.w = g.w * dc_sigmoid(g.w) * u.w;
      if (a) reinterpret_cast<float4 *>(a)[i] = v;
      if (ab) reinterpret_cast<uint2 *>(ab)[i] = dc_pack_bf16x4(v);
    } else {
      const float g = __bfloat162float(gb[i]), u = __bfloat162float(ub[i]), v = g * dc_sigmoid(g) * u;
      if (a) a[i] = v;
      if (ab) ab[i] = __float2bfloat16_rn(v);
    }
  }
}

// du = da·silu(g); dg = da·u·σ(g)·(1 + g·(1 − σ(g))).
__global__ void k_swiglu_bwd(float *dg, float *du, const float *da, const float *g, const float *u, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    float gi = g[i], s = dc_sigmoid(gi), d = da[i], ui = u[i];
    du[i] = d * gi * s;
    dg[i] = d * ui * s * (1.f + gi * (1.f - s));
  }
}

// k_swiglu_bwd from the kept bf16 g and u; a (optional) gets silu(g)·u as
// well, the down projection's input again for its adapter's gradient.
__global__ void k_swiglu_bwd_b16(float *dg, float *du, float *a, const float *da, const __nv_bfloat16 *gb,
                                 const __nv_bfloat16 *ub, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    float gi = __bfloat162float(gb[i]), s = dc_sigmoid(gi), d = da[i], ui = __bfloat162float(ub[i]);
    du[i] = d * gi * s;
    dg[i] = d * ui * s * (1.f + gi * (1.f - s));
    if (a) a[i] = gi * s * ui;
  }
}

// k_swiglu_bwd's formulas, in its order, on 4 elements: du = da·silu(g),
// dg = da·u·σ(g)·(1 + g·(1 − σ(g))), and a = silu(g)·u.
__device__ __forceinline__ void swiglu_bwd4(float4 d, float4 g, float4 u, float4 &rg, float4 &ru, float4 &ra) {
  float s;
  s = dc_sigmoid(g.x), ru.x = d.x * g.x * s, rg.x = d.x * u.x * s * (1.f + g.x * (1.f - s)), ra.x = g.x * s * u.x;
  s = dc_sigmoid(g.y), ru.y = d.y * g.y * s, rg.y = d.y * u.y * s * (1.f + g.y * (1.f - s)), ra.y = g.y * s * u.y;
  s = dc_sigmoid(g.z), ru.z = d.z * g.z * s, rg.z = d.z * u.z * s * (1.f + g.z * (1.f - s)), ra.z = g.z * s * u.z;
  s = dc_sigmoid(g.w), ru.w = d.w * g.w * s, rg.w = d.w * u.w * s * (1.f + g.w * (1.f - s)), ra.w = g.w * s * u.w;
}

// g's and u's 4 elements of group i (the float4 index): bf16 (B16) or f32.
template <bool B16>
__device__ __forceinline__ void swiglu_load4(const void *g, const void *u, int64_t i, float4 &gv, float4 &uv) {
  if (B16)
    gv = dc_unpack_bf16x4(reinterpret_cast<const uint2 *>(g)[i]), uv = dc_unpack_bf16x4(reinterpret_cast<const uint2 *>(u)[i]);
  else
    gv = reinterpret_cast<const float4 *>(g)[i], uv = reinterpret_cast<const float4 *>(u)[i];
}

// By groups of 4 (dg, du, a, da 16-byte aligned, gb, ub 8-byte).
__global__ void k_swiglu_bwd_b16_x4(float4 *dg, float4 *du, float4 *a, const float4 *da, const uint2 *gb,
                                    const uint2 *ub, int64_t n4) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n4; i += (int64_t)gridDim.x * blockDim.x) {
    float4 rg, ru, ra;
    swiglu_bwd4(da[i], dc_unpack_bf16x4(gb[i]), dc_unpack_bf16x4(ub[i]), rg, ru, ra);
    du[i] = ru, dg[i] = rg;
    if (a) a[i] = ra;
  }
}

// ---- The backward into the adapter's bf16 operands ----

// Up to 4 conversions (bf16_rows.cuh) run by the blocks past the SwiGLU's.
struct swiglu_jobs {
  dc_bf16_rows j[4];
  int n;
};

// dg and du of rows × cols elements (k_swiglu_bwd's formulas, in its order)
// rounded to bf16 into dgb's and dub's rows, ld apart — the gate and up
// projections' GEMM operands, with room beside each row for the adapter's
// du — instead of f32 that a conversion reads again. B16: g and u are the
// kept bf16 copies, and a (optional) gets silu(g)·u in f32 as in
// k_swiglu_bwd_b16. V4: cols and ld multiples of 4 and the pointers
// aligned for 16-byte f32 and 8-byte bf16 groups. Blocks [0, sw_blocks) do
// the SwiGLU, the rest the jobs (the adapter's B and u in bf16): one launch.
template <bool B16, bool V4>
__global__ void __launch_bounds__(256) k_swiglu_bwd_rows(__nv_bfloat16 *dgb, __nv_bfloat16 *dub, int64_t ld, float *a,
                                                         const float *da, const void *g, const void *u, int64_t rows,
                                                         int64_t cols, int64_t sw_blocks, swiglu_jobs jobs) {
  if (blockIdx.x >= sw_blocks) {
    const int64_t threads = (int64_t)(gridDim.x - sw_blocks) * blockDim.x;
    const int64_t i0 = (int64_t)(blockIdx.x - sw_blocks) * blockDim.x + threadIdx.x;
    for (int k = 0; k < jobs.n; k++) bf16_rows_run(jobs.j[k], i0, threads);
    return;
  }
  const int64_t w = V4 ? cols / 4 : cols, n = rows * w, step = sw_blocks * (int64_t)blockDim.x;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += step) {
    const int64_t r = i / w, c = i - r * w;
    if (V4) {
      float4 gv, uv, rg, ru, ra;
      swiglu_load4<B16>(g, u, i, gv, uv);
      swiglu_bwd4(reinterpret_cast<const float4 *>(da)[i], gv, uv, rg, ru, ra);
      const int64_t o = r * (ld / 4) + c;
      reinterpret_cast<uint2 *>(dgb)[o] = dc_pack_bf16x4(rg);
      reinterpret_cast<uint2 *>(dub)[o] = dc_pack_bf16x4(ru);
      if (B16 && a) reinterpret_cast<float4 *>(a)[i] = ra;
    } else {
      float gi, ui, d = da[i];
      if (B16)
        gi = __bfloat162float(reinterpret_cast<const __nv_bfloat16 *>(g)[i]), ui = __bfloat162float(reinterpret_cast<const __nv_bfloat16 *>(u)[i]);
      else
        gi = reinterpret_cast<const float *>(g)[i], ui = reinterpret_cast<const float *>(u)[i];
      const float s = dc_sigmoid(gi);
      dub[r * ld + c] = __float2bfloat16_rn(d * gi * s);
      dgb[r * ld + c] = __float2bfloat16_rn(d * ui * s * (1.f + gi * (1.f - s)));
      if (B16 && a) a[i] = gi * s * ui;
    }
  }
}

// ---- The forward with the down projection's adapter input ----

// SwiGLU's forward that also takes the down adapter's u = ã·Aᵀ (A: r × cols
// f32, r ≤ R; ã = a, or under LoRA dropout a∘mask·keep: M, lora_sums.cuh) while a is in
// registers, where a GEMM would read all of a (or its masked copy) again: a warp takes RW rows over one chunk of columns ([c0, c1), chunk
// blockIdx.x of width cw, a multiple of 128: each lane 4 columns at a time),
// writes what the SwiGLU writes (a f32, ab bf16, gb and ub the f32 g and u
// rounded — each optional; B16: g and u are bf16), and leaves each row's
// sums over its chunk in part[blockIdx.x][row][k] — each lane's in column
// order, then the warp's by a butterfly, the same order every run
// (dc_lora_sums_add adds the chunks in order). cols a multiple of 4; a, A,
// g and u 16-byte aligned (bf16 ones 8-byte).
template <bool B16, int R, int RW>
__global__ void __launch_bounds__(256) k_swiglu_u(float *a, __nv_bfloat16 *ab, __nv_bfloat16 *gb, __nv_bfloat16 *ub,
                                                  const void *g, const void *u, const float *A, float *part,
                                                  int64_t rows, int64_t cols, int r, int64_t cw, lora_mask M) {
  const int lane = threadIdx.x & 31;
  const int64_t row0 = ((int64_t)blockIdx.y * (blockDim.x >> 5) + (threadIdx.x >> 5)) * RW;
  if (row0 >= rows) return;  // the whole warp: no collective below is left waiting
  const int64_t c0 = blockIdx.x * cw, c1 = c0 + cw < cols ? c0 + cw : cols;
  const uint64_t key = lora_mask_key(M);
  auto load = [&](int64_t row, int64_t j) {
    const int64_t e = (row * cols + j) / 4;  // float4 (or 4 × bf16) index
    float4 gv, uv, v;
    swiglu_load4<B16>(g, u, e, gv, uv);
    v.x = gv.x * dc_sigmoid(gv.x) * uv.x;  // k_swiglu_fwd's formula
    v.y = gv.y * dc_sigmoid(gv.y) * uv.y;
    v.z = gv.z * dc_sigmoid(gv.z) * uv.z;
    v.w = gv.w * dc_sigmoid(gv.w) * uv.w;
    if (a) reinterpret_cast<float4 *>(a)[e] = v;
    if (ab) reinterpret_cast<uint2 *>(ab)[e] = dc_pack_bf16x4(v);
    if (gb) reinterpret_cast<uint2 *>(gb)[e] = dc_pack_bf16x4(gv), reinterpret_cast<uint2 *>(ub)[e] = dc_pack_bf16x4(uv);
    return M.on ? lora_masked(v, key + (uint64_t)(row * cols + j), M) : v;  // the adapter's input alone
  };
  auto dot = [&](float(&acc)[RW][R], const float4(&v)[RW], int64_t j) { lora_rows_dot<R, RW>(acc, v, A, cols, j, r); };
  float acc[RW][R];
  lora_rows_pass<R, RW>(acc, row0, rows, c0, c1, lane, load, dot);
  lora_rows_reduce<R, RW>(acc, r, [&](int i, int k, float s) {
    if (lane == 0 && row0 + i < rows) part[((int64_t)blockIdx.x * rows + row0 + i) * r + k] = s;
  });
}

// ---- The backward with the down projection's adapter gradient ----

// The down adapter's dA += duᵀ·ã, ã = a or under LoRA dropout a∘mask·keep
// (lora_mask), a = silu(g)·u made again from the
// SwiGLU backward's own operands where a GEMM read all of a (f32, n·F: the
// layer's widest activation) — and, kept compact, where a was written for it.
// du (rows, r; r a multiple of 4, 16-byte aligned) is the adapter's s·dy·B.
// The sums over rows go by chunks of rc rows: one chunk adds into gA
// (r × cols) itself, more leave theirs in part[chunk][r][cols] for
// dc_lora_sums_add to add in order (lora_sums.cuh).
struct swiglu_da {
  float *gA, *part;
  const float *du;
  int r;
  int64_t rc, cblocks;  // rows a chunk; blocks across the columns (4·blockDim.x columns each)
  lora_mask mask;
};

// A row's operands of k_swiglu_bwd_da at a thread's 4 columns: g, u and da.
struct swiglu_row {
  float4 g, u, d;
};

// k_swiglu_bwd_rows by 4 (its formulas, in its order, into the same rows)
// taking swiglu_da's gradient: blocks [0, sw_blocks) are (column block,
// row chunk) tiles, a thread 4 columns down rc rows with R sums for each
// (R ≥ r: 16 or 32), the rest of the grid the conversions.
template <bool B16, int R>
__global__ void __launch_bounds__(128) k_swiglu_bwd_da(__nv_bfloat16 *dgb, __nv_bfloat16 *dub, int64_t ld,
                                                       const float *da, const void *g, const void *u, int64_t rows,
                                                       int64_t cols, int64_t sw_blocks, swiglu_da D,
                                                       swiglu_jobs jobs) {
  if (blockIdx.x >= sw_blocks) {
    const int64_t threads = (int64_t)(gridDim.x - sw_blocks) * blockDim.x;
    const int64_t i0 = (int64_t)(blockIdx.x - sw_blocks) * blockDim.x + threadIdx.x;
    for (int k = 0; k < jobs.n; k++) bf16_rows_run(jobs.j[k], i0, threads);
    return;
  }
  const int64_t cb = blockIdx.x % D.cblocks, chunk = blockIdx.x / D.cblocks;
  const int64_t j = (cb * blockDim.x + threadIdx.x) * 4;  // this thread's first column
  if (j >= cols) return;                                  // no collective below
  const int64_t r0 = chunk * D.rc, r1 = r0 + D.rc < rows ? r0 + D.rc : rows;
  const uint64_t key = lora_mask_key(D.mask);
  auto load = [&](int64_t row) {
    swiglu_row x;
    const int64_t i = (row * cols + j) / 4;  // float4 (or 4 × bf16) index
    swiglu_load4<B16>(g, u, i, x.g, x.u);
    x.d = reinterpret_cast<const float4 *>(da)[i];
    return x;
  };
  auto use = [&](int64_t row, const swiglu_row &x) {
    float4 rg, ru, ra;
    swiglu_bwd4(x.d, x.g, x.u, rg, ru, ra);
    const int64_t o = row * (ld / 4) + j / 4;
    reinterpret_cast<uint2 *>(dgb)[o] = dc_pack_bf16x4(rg);
    reinterpret_cast<uint2 *>(dub)[o] = dc_pack_bf16x4(ru);
    return D.mask.on ? lora_masked(ra, key + (uint64_t)(row * cols + j), D.mask) : ra;
  };
  lora_col_pass<R>(r0, r1, load, use, D.du, D.r, [&](const float(&acc)[4][R]) {
    if (D.part)
      lora_sums_store<R, false>(acc, D.part + chunk * (int64_t)D.r * cols, true, 1.f, j, cols, D.r);
    else
      lora_sums_store<R, false>(acc, D.gA, false, 1.f, j, cols, D.r);
  });
}
