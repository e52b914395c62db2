// nf4.cu: core/quant's NF4 (bitsandbytes' quantize_4bit layout, block 64,
// high nibble first, optional double-quantised absmax) dequantised on the
// device, into bf16 tiles right before a cuBLAS GEMM (the decode
// matrix-vector products dequantise in registers: matvec.cu).
//
// The arithmetic of a dequantised element is core/quant's, operation for
// operation and each rounded (no FMA contraction: __fmul_rn/__fadd_rn), so an
// f32 dequantisation is bit-identical to the CPU's and the bf16 one is its
// round-to-nearest-even.
//
// Layout (core/quant): one flat stream of rows·cols nibbles, element e in
// byte e/2, the high nibble for even e; block b = e/64 has scale absmax[b] or
// map2[qabsmax[b]]·absmax2[b/256] + offset. Rows of an odd column count start
// mid-byte; rows of a column count that is not a multiple of 64 share blocks.
//
// The vector dequantisation (8 codes a step, 8 steps' loads in flight a
// thread, coalesced 16-byte bf16 stores, the table in shared memory): 75–90% of the copy rate (it is a copy that
// reads 0.52 bytes per 2 written), against 12% before.
#include "common.cuh"
#include "nf4_dequant_kernels.cuh"

// ---- Launchers ----

static int nf4_check(const dc_nf4 *w, int r0, int r1, const char *op) {
  if (r0 < 0 || r1 > w->rows || r0 > r1)
    return dc_fail("row range out of bounds", "%s(rows [%d, %d) of %d×%d)", op, r0, r1, w->rows, w->cols);
  if (w->absmax == nullptr && (w->qabsmax == nullptr || w->absmax2 == nullptr || w->map2 == nullptr))
    return dc_fail("no absmax and no double-quant statistics", "%s(%d×%d)", op, w->rows, w->cols);
  return 0;
}

// ld == cols: the rows back to back; else each row starts ld elements after
// the last (the columns past cols untouched).
template <typename T, bool LD>
static void nf4_dequant_launch(T *dst, const dc_nf4 *w, int64_t e0, int64_t n, int64_t ld) {
  nf4_args a = nf4_of(w);
  if (e0 % 8 == 0 && dc_aligned16(dst) && dc_aligned16(w->codes) && (!LD || (w->cols % 8 == 0 && ld % 8 == 0))) {
    int64_t tiles = (e0 + n + DQ_TILE - 1) / DQ_TILE - e0 / DQ_TILE;  // one warp each, 8 a block
    int blocks = dc_blocks(tiles, 8);
    if (w->absmax == nullptr)
      DC_LAUNCH(blocks, 256, 0, k_nf4_dequant_vec<T, true, LD>)(dst, a, e0, n, ld);
    else
      DC_LAUNCH(blocks, 256, 0, k_nf4_dequant_vec<T, false, LD>)(dst, a, e0, n, ld);
  } else {
    DC_LAUNCH(dc_blocks(n, 256), 256, 0, k_nf4_dequant<T, LD>)(dst, a, e0, n, ld);
  }
}

extern "C" int dc_nf4_dequant_bf16(uint16_t *dst, const dc_nf4 *w, int r0, int r1, int64_t ld) {
  if (nf4_check(w, r0, r1, "nf4_dequant_bf16")) return -1;
  if (ld < w->cols) return dc_fail("row stride below the columns", "nf4_dequant_bf16(%d×%d, ld %lld)", w->rows, w->cols, (long long)ld);
  int64_t n = (int64_t)(r1 - r0) * w->cols;
  if (n == 0) return 0;
  if (ld == w->cols)
    nf4_dequant_launch<__nv_bfloat16, false>((__nv_bfloat16 *)dst, w, (int64_t)r0 * w->cols, n, ld);
  else
    nf4_dequant_launch<__nv_bfloat16, true>((__nv_bfloat16 *)dst, w, (int64_t)r0 * w->cols, n, ld);
  DC_LAUNCHED("nf4_dequant_bf16(rows [%d, %d) of %d×%d, ld %lld)", r0, r1, w->rows, w->cols, (long long)ld);
  return 0;
}

extern "C" int dc_nf4_stage(uint16_t *tile, const dc_nf4 *w, int64_t ld, const dc_bf16_rows *jobs, int njobs) {
  if (nf4_check(w, 0, w->rows, "nf4_stage")) return -1;
  if (ld < w->cols) return dc_fail("row stride below the columns", "nf4_stage(%d×%d, ld %lld)", w->rows, w->cols, (long long)ld);
  if (njobs < 0 || njobs > 3) return dc_fail("0 to 3 conversions", "nf4_stage(%d×%d, %d jobs)", w->rows, w->cols, njobs);
  nf4_stage_jobs js{};
  int64_t conv = 0;  // the conversions' blocks: enough for the largest
  for (int k = 0; k < njobs; k++) {
    const dc_bf16_rows &j = jobs[k];
    if (j.ldd < j.cols || j.lds < j.cols)
      return dc_fail("row stride below the columns", "nf4_stage(%d×%d) job %d (%lld×%lld, ldd %lld, lds %lld)", w->rows,
                     w->cols, k, (long long)j.rows, (long long)j.cols, (long long)j.ldd, (long long)j.lds);
    if (j.rows <= 0 || j.cols <= 0) continue;
    js.j[js.n++] = j;
    const int64_t units = dc_bf16_rows_by4(j.dst, j.ldd, j.src, j.lds, j.cols) ? j.rows * j.cols / 4 : j.rows * j.cols;
    if (dc_blocks(units, 256) > conv) conv = dc_blocks(units, 256);
  }
  const int64_t n = (int64_t)w->rows * w->cols;
  const bool vec = dc_aligned16(tile) && dc_aligned16(w->codes) && (ld == w->cols || (w->cols % 8 == 0 && ld % 8 == 0));
  if (!vec || n == 0) {  // the generic dequantisation, and each conversion its own launch
    if (dc_nf4_dequant_bf16(tile, w, 0, w->rows, ld)) return -1;
    for (int k = 0; k < js.n; k++) {
      const dc_bf16_rows &j = js.j[k];
      if (dc_f32_to_bf16_2d(j.dst, j.ldd, j.src, j.lds, j.rows, j.cols, j.scale)) return -1;
    }
    return 0;
  }
  const int64_t dqb = dc_blocks((n + DQ_TILE - 1) / DQ_TILE, 8);  // a warp a tile of 2,048, 8 a block
  const unsigned grid = (unsigned)(dqb + conv);
  nf4_args a = nf4_of(w);
  auto *t = (__nv_bfloat16 *)tile;
  if (w->absmax == nullptr) {
    if (ld == w->cols)
      DC_LAUNCH(grid, 256, 0, k_nf4_stage<true, false>)(t, a, ld, dqb, js);
    else
      DC_LAUNCH(grid, 256, 0, k_nf4_stage<true, true>)(t, a, ld, dqb, js);
  } else {
    if (ld == w->cols)
      DC_LAUNCH(grid, 256, 0, k_nf4_stage<false, false>)(t, a, ld, dqb, js);
    else
      DC_LAUNCH(grid, 256, 0, k_nf4_stage<false, true>)(t, a, ld, dqb, js);
  }
  DC_LAUNCHED("nf4_stage(%d×%d, ld %lld, %d conversions)", w->rows, w->cols, (long long)ld, js.n);
  return 0;
}

extern "C" int dc_nf4_dequant_f32(float *dst, const dc_nf4 *w, int r0, int r1) {
  if (nf4_check(w, r0, r1, "nf4_dequant_f32")) return -1;
  int64_t n = (int64_t)(r1 - r0) * w->cols;
  if (n == 0) return 0;
  nf4_dequant_launch<float, false>(dst, w, (int64_t)r0 * w->cols, n, w->cols);
  DC_LAUNCHED("nf4_dequant_f32(rows [%d, %d) of %d×%d)", r0, r1, w->rows, w->cols);
  return 0;
}

