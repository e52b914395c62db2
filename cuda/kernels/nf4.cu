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
      k_nf4_dequant_vec<T, true, LD><<<blocks, 256, 0, dc_stream>>>(dst, a, e0, n, ld);
    else
      k_nf4_dequant_vec<T, false, LD><<<blocks, 256, 0, dc_stream>>>(dst, a, e0, n, ld);
  } else {
    k_nf4_dequant<T, LD><<<dc_blocks(n, 256), 256, 0, dc_stream>>>(dst, a, e0, n, ld);
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

extern "C" int dc_nf4_dequant_f32(float *dst, const dc_nf4 *w, int r0, int r1) {
  if (nf4_check(w, r0, r1, "nf4_dequant_f32")) return -1;
  int64_t n = (int64_t)(r1 - r0) * w->cols;
  if (n == 0) return 0;
  nf4_dequant_launch<float, false>(dst, w, (int64_t)r0 * w->cols, n, w->cols);
  DC_LAUNCHED("nf4_dequant_f32(rows [%d, %d) of %d×%d)", r0, r1, w->rows, w->cols);
  return 0;
}

