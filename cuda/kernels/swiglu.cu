// swiglu.cu: a = silu(g)·u and its backward (σ: dc_sigmoid, devmath.cuh).
#include "common.cuh"
#include "swiglu_kernels.cuh"

// gb, ub: both or neither (the kept bf16 copies of g and u).
extern "C" int dc_swiglu_fwd(float *a, uint16_t *ab, uint16_t *gb, uint16_t *ub, const float *g, const float *u,
                             int64_t n) {
  if (n <= 0) return 0;
  if ((gb == nullptr) != (ub == nullptr)) return dc_fail("gb and ub go together", "swiglu_fwd(n=%lld)", (long long)n);
  bool a16 = (((uintptr_t)a | (uintptr_t)g | (uintptr_t)u) & 15) == 0 &&
             (((uintptr_t)ab | (uintptr_t)gb | (uintptr_t)ub) & 7) == 0;
  if (a16 && n >= 4) {
    int64_t n4 = n / 4;
    DC_LAUNCH(dc_blocks(n4, 256), 256, 0, k_swiglu_fwd_x4)((float4 *)a, (uint2 *)ab, (uint2 *)gb, (uint2 *)ub,
                                                                (const float4 *)g, (const float4 *)u, n4);
    DC_LAUNCHED("swiglu_fwd(n=%lld, by 4)", (long long)n);
    a += 4 * n4, g += 4 * n4, u += 4 * n4, n -= 4 * n4;
    if (ab) ab += 4 * n4;
    if (gb) gb += 4 * n4, ub += 4 * n4;
    if (n == 0) return 0;
  }
  DC_LAUNCH(dc_blocks(n, 256), 256, 0, k_swiglu_fwd)(a, (__nv_bfloat16 *)ab, (__nv_bfloat16 *)gb,
                                                     (__nv_bfloat16 *)ub, g, u, n);
  DC_LAUNCHED("swiglu_fwd(n=%lld)", (long long)n);
  return 0;
}

// a (f32) and ab (bf16), each optional, from g and u in bf16; by 4 where
// the pointers allow.
extern "C" int dc_swiglu_fwd_b16(float *a, uint16_t *ab, const uint16_t *gb, const uint16_t *ub, int64_t n) {
  if (n <= 0) return 0;
  auto *o = (__nv_bfloat16 *)ab;
  auto *g = (const __nv_bfloat16 *)gb, *u = (const __nv_bfloat16 *)ub;
  if (((uintptr_t)a & 15) == 0 && (((uintptr_t)ab | (uintptr_t)gb | (uintptr_t)ub) & 7) == 0 && n >= 4) {
    const int64_t n4 = n / 4;
    DC_LAUNCH(dc_blocks(n4, 256), 256, 0, k_swiglu_fwd_b16<true>)(a, o, g, u, n4);
    DC_LAUNCHED("swiglu_fwd_b16(n=%lld, by 4)", (long long)n);
    if (a) a += 4 * n4;
    if (o) o += 4 * n4;
    g += 4 * n4, u += 4 * n4, n -= 4 * n4;
    if (n == 0) return 0;
  }
  DC_LAUNCH(dc_blocks(n, 256), 256, 0, k_swiglu_fwd_b16<false>)(a, o, g, u, n);
  DC_LAUNCHED("swiglu_fwd_b16(n=%lld)", (long long)n);
  return 0;
}

extern "C" int dc_swiglu_bwd(float *dg, float *du, const float *da, const float *g, const float *u, int64_t n) {
  if (n <= 0) return 0;
  DC_LAUNCH(dc_blocks(n, 256), 256, 0, k_swiglu_bwd)(dg, du, da, g, u, n);
  DC_LAUNCHED("swiglu_bwd(n=%lld)", (long long)n);
  return 0;
}

// From the kept bf16 g and u, and a (the down projection's input again)
// with it; by 4 where the pointers allow.
extern "C" int dc_swiglu_bwd_b16(float *dg, float *du, float *a, const float *da, const uint16_t *gb,
                                 const uint16_t *ub, int64_t n) {
  if (n <= 0) return 0;
  if ((((uintptr_t)dg | (uintptr_t)du | (uintptr_t)a | (uintptr_t)da) & 15) == 0 &&
      (((uintptr_t)gb | (uintptr_t)ub) & 7) == 0 && n >= 4) {
    int64_t n4 = n / 4;
    DC_LAUNCH(dc_blocks(n4, 256), 256, 0, k_swiglu_bwd_b16_x4)((float4 *)dg, (float4 *)du, (float4 *)a,
                                                                    (const float4 *)da, (const uint2 *)gb,
                                                                    (const uint2 *)ub, n4);
    DC_LAUNCHED("swiglu_bwd_b16(n=%lld, by 4)", (long long)n);
    dg += 4 * n4, du += 4 * n4, da += 4 * n4, gb += 4 * n4, ub += 4 * n4, n -= 4 * n4;
    if (a) a += 4 * n4;
    if (n == 0) return 0;
  }
  DC_LAUNCH(dc_blocks(n, 256), 256, 0, k_swiglu_bwd_b16)(dg, du, a, da, (const __nv_bfloat16 *)gb,
                                                         (const __nv_bfloat16 *)ub, n);
  DC_LAUNCHED("swiglu_bwd_b16(n=%lld)", (long long)n);
  return 0;
}

// The backward's conversions (0 to 4) into js, and in conv the blocks of
// `threads` the largest needs; non-zero (the error set) on a bad job.
static int swiglu_take_jobs(swiglu_jobs &js, int64_t &conv, const dc_bf16_rows *jobs, int njobs, int threads,
                            const char *op) {
  if (njobs < 0 || njobs > 4) return dc_fail("0 to 4 conversions", "%s(%d jobs)", op, njobs);
  for (int k = 0; k < njobs; k++) {
    const dc_bf16_rows &j = jobs[k];
    if (j.ldd < j.cols || j.lds < j.cols)
      return dc_fail("row stride below the columns", "%s job %d (%lld×%lld, ldd %lld, lds %lld)", op, k,
                     (long long)j.rows, (long long)j.cols, (long long)j.ldd, (long long)j.lds);
    if (j.rows <= 0 || j.cols <= 0) continue;
    js.j[js.n++] = j;
    const int64_t units = dc_bf16_rows_by4(j.dst, j.ldd, j.src, j.lds, j.cols) ? j.rows * j.cols / 4 : j.rows * j.cols;
    if (dc_blocks(units, threads) > conv) conv = dc_blocks(units, threads);
  }
  return 0;
}

// dg and du rounded to bf16 into rows ld apart, from f32 g and u or (b16)
// the kept bf16 ones, a (b16 only, optional) silu(g)·u; up to 4 bf16 row
// conversions in the same launch. By 4 where cols, ld and the pointers allow.
extern "C" int dc_swiglu_bwd_rows(uint16_t *dgb, uint16_t *dub, int64_t ld, float *a, const float *da, const void *g,
                                  const void *u, int b16, int64_t rows, int64_t cols, const dc_bf16_rows *jobs,
                                  int njobs) {
  if (rows < 0 || cols < 0 || ld < cols)
    return dc_fail("rows, columns or stride out of range", "swiglu_bwd_rows(%lld×%lld, ld %lld)", (long long)rows,
                   (long long)cols, (long long)ld);
  if (a && !b16) return dc_fail("a only from the bf16 g and u", "swiglu_bwd_rows(%lld×%lld)", (long long)rows, (long long)cols);
  swiglu_jobs js{};
  int64_t conv = 0;  // the conversions' blocks: enough for the largest
  if (swiglu_take_jobs(js, conv, jobs, njobs, 256, "swiglu_bwd_rows")) return 1;
  const bool v4 = cols % 4 == 0 && ld % 4 == 0 && (((uintptr_t)da | (uintptr_t)a) & 15) == 0 &&
                  (((uintptr_t)dgb | (uintptr_t)dub) & 7) == 0 &&
                  (((uintptr_t)g | (uintptr_t)u) & (b16 ? 7 : 15)) == 0;
  const int64_t sw = rows * cols == 0 ? 0 : dc_blocks(v4 ? rows * cols / 4 : rows * cols, 256);
  if (sw + conv == 0) return 0;
  auto *gd = (__nv_bfloat16 *)dgb, *ud = (__nv_bfloat16 *)dub;
  const unsigned grid = (unsigned)(sw + conv);
  if (b16 && v4)
    DC_LAUNCH(grid, 256, 0, k_swiglu_bwd_rows<true, true>)(gd, ud, ld, a, da, g, u, rows, cols, sw, js);
  else if (b16)
    DC_LAUNCH(grid, 256, 0, k_swiglu_bwd_rows<true, false>)(gd, ud, ld, a, da, g, u, rows, cols, sw, js);
  else if (v4)
    DC_LAUNCH(grid, 256, 0, k_swiglu_bwd_rows<false, true>)(gd, ud, ld, a, da, g, u, rows, cols, sw, js);
  else
    DC_LAUNCH(grid, 256, 0, k_swiglu_bwd_rows<false, false>)(gd, ud, ld, a, da, g, u, rows, cols, sw, js);
  DC_LAUNCHED("swiglu_bwd_rows(%lld×%lld, ld %lld, %d conversions)", (long long)rows, (long long)cols, (long long)ld, js.n);
  return 0;
}

// The forward with the down adapter's u = ã·Aᵀ (k_swiglu_u; ã: a under
// LoRA dropout's mask when drop, its key base or *base_at): chunks of
// columns enough for ~4,096 warps, as many as part (part_len floats) holds
// — one writes u itself — then the chunks summed in order.
extern "C" int dc_swiglu_u(float *a, uint16_t *ab, uint16_t *gb, uint16_t *ub, const void *g, const void *u, int b16,
                           const float *A, int r, float *uout, float *part, int64_t part_len, int64_t rows,
                           int64_t cols, int drop, uint64_t base, const uint64_t *base_at, uint64_t thresh,
                           float keep) {
  if (rows <= 0 || cols <= 0) return 0;
  const bool aligned = ((((uintptr_t)a | (uintptr_t)A) & 15) == 0) &&  // u and part take single floats
                       ((((uintptr_t)ab | (uintptr_t)gb | (uintptr_t)ub) & 7) == 0) &&
                       ((((uintptr_t)g | (uintptr_t)u) & (b16 ? 7 : 15)) == 0);
  if (cols % 4 != 0 || !aligned || r < 1 || r > 32 || (gb == nullptr) != (ub == nullptr) || (b16 && gb))
    return dc_fail("columns a multiple of 4, aligned rows, 1 ≤ r ≤ 32, gb and ub together (from f32 g, u only)",
                   "swiglu_u(%lld×%lld, r %d)", (long long)rows, (long long)cols, r);
  int64_t chunks, cw, groups;
  lora_row_chunks(rows, cols, r, rows * r, part_len, chunks, cw, groups);
  float *out = chunks == 1 ? uout : part;
  if (groups > 65535) return dc_fail("too many rows", "swiglu_u(%lld×%lld)", (long long)rows, (long long)cols);
  dim3 grid((unsigned)chunks, (unsigned)groups);
  auto *o = (__nv_bfloat16 *)ab, *go = (__nv_bfloat16 *)gb, *uo = (__nv_bfloat16 *)ub;
  const lora_mask M{drop, base, thresh, base_at, keep};
  if (b16 && r <= 16)
    DC_LAUNCH(grid, 256, 0, k_swiglu_u<true, 16, 4>)(a, o, go, uo, g, u, A, out, rows, cols, r, cw, M);
  else if (b16)
    DC_LAUNCH(grid, 256, 0, k_swiglu_u<true, 32, 2>)(a, o, go, uo, g, u, A, out, rows, cols, r, cw, M);
  else if (r <= 16)
    DC_LAUNCH(grid, 256, 0, k_swiglu_u<false, 16, 4>)(a, o, go, uo, g, u, A, out, rows, cols, r, cw, M);
  else
    DC_LAUNCH(grid, 256, 0, k_swiglu_u<false, 32, 2>)(a, o, go, uo, g, u, A, out, rows, cols, r, cw, M);
  DC_LAUNCHED("swiglu_u(%lld×%lld, r %d, %lld chunks)", (long long)rows, (long long)cols, r, (long long)chunks);
  if (chunks == 1) return 0;
  return dc_lora_sums_add(uout, part, rows * r, (int)chunks, 1.f, 1);
}

// The backward into bf16 rows (k_swiglu_bwd_rows by 4) with the down
// adapter's dA += duᵀ·ã (k_swiglu_bwd_da): 128-thread blocks across the
// columns by chunks of ~64 rows, as many chunks as part (part_len floats)
// holds — one adds into gA itself — then the chunks summed in order.
extern "C" int dc_swiglu_bwd_da(uint16_t *dgb, uint16_t *dub, int64_t ld, const float *da, const void *g,
                                const void *u, int b16, int64_t rows, int64_t cols, float *gA, const float *du, int r,
                                float *part, int64_t part_len, int drop, uint64_t base, const uint64_t *base_at,
                                uint64_t thresh, float keep, const dc_bf16_rows *jobs, int njobs) {
  const bool v4 = cols % 4 == 0 && ld % 4 == 0 && ((uintptr_t)da & 15) == 0 &&
                  (((uintptr_t)dgb | (uintptr_t)dub) & 7) == 0 && (((uintptr_t)g | (uintptr_t)u) & (b16 ? 7 : 15)) == 0 &&
                  (((uintptr_t)gA | (uintptr_t)du | (uintptr_t)part) & 15) == 0;
  if (rows < 0 || cols < 0 || ld < cols || !v4 || r < 4 || r > 32 || r % 4 != 0)
    return dc_fail("columns and stride multiples of 4, aligned rows, r a multiple of 4 up to 32",
                   "swiglu_bwd_da(%lld×%lld, ld %lld, r %d)", (long long)rows, (long long)cols, (long long)ld, r);
  swiglu_jobs js{};
  int64_t conv = 0;
  if (swiglu_take_jobs(js, conv, jobs, njobs, 128, "swiglu_bwd_da")) return 1;
  const int64_t cblocks = (cols + 511) / 512;
  int64_t chunks, rc;
  lora_col_chunks(rows, (int64_t)r * cols, part_len, chunks, rc);
  const int64_t sw = chunks * cblocks;
  if (sw + conv == 0) return 0;
  if (sw + conv > INT32_MAX) return dc_fail("too many blocks", "swiglu_bwd_da(%lld×%lld)", (long long)rows, (long long)cols);
  swiglu_da D{gA, chunks > 1 ? part : nullptr, du, r, rc, cblocks, {drop, base, thresh, base_at, keep}};
  auto *gd = (__nv_bfloat16 *)dgb, *ud = (__nv_bfloat16 *)dub;
  const unsigned grid = (unsigned)(sw + conv);
  if (b16 && r <= 16)
    DC_LAUNCH(grid, 128, 0, k_swiglu_bwd_da<true, 16>)(gd, ud, ld, da, g, u, rows, cols, sw, D, js);
  else if (b16)
    DC_LAUNCH(grid, 128, 0, k_swiglu_bwd_da<true, 32>)(gd, ud, ld, da, g, u, rows, cols, sw, D, js);
  else if (r <= 16)
    DC_LAUNCH(grid, 128, 0, k_swiglu_bwd_da<false, 16>)(gd, ud, ld, da, g, u, rows, cols, sw, D, js);
  else
    DC_LAUNCH(grid, 128, 0, k_swiglu_bwd_da<false, 32>)(gd, ud, ld, da, g, u, rows, cols, sw, D, js);
  DC_LAUNCHED("swiglu_bwd_da(%lld×%lld, ld %lld, r %d, %lld chunks, %d conversions)", (long long)rows, (long long)cols,
              (long long)ld, r, (long long)chunks, js.n);
  if (chunks <= 1) return 0;
  return dc_lora_sums_add(gA, part, r * cols, (int)chunks, 1.f, 0);
}
