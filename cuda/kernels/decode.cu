// decode.cu: one decoded token's q, k and v from the projections to the
// attention in one launch (decode_kernels.cuh): Qwen3's per-head norms,
// RoPE, and the new key and value row into the device's cache (f32 or
// bf16) and the host's staging — where op by op it took up to six launches.
#include "common.cuh"
#include "decode_kernels.cuh"

extern "C" int dc_decode_qkv(const dc_decode_qkv_args *g) {
  if (g->hd <= 0 || g->hd % 2 != 0 || g->nh <= 0 || g->nkv <= 0 || g->nh % g->nkv != 0)
    return dc_fail("heads must divide and head size be even", "decode_qkv(heads %d/%d, hd %d)", g->nh, g->nkv, g->hd);
  if (g->kv_bf16)
    DC_LAUNCH(g->nh + 2 * g->nkv, 32, 0, k_decode_qkv<__nv_bfloat16>)(*g);
  else
    DC_LAUNCH(g->nh + 2 * g->nkv, 32, 0, k_decode_qkv<float>)(*g);
  DC_LAUNCHED("decode_qkv(heads %d/%d, hd %d, cap %d)", g->nh, g->nkv, g->hd, g->cap);
  return 0;
}

extern "C" int dc_kv_rows(const dc_kv_rows_args *g) {
  if (g->nr <= 0) return 0;
  if (g->kv_bf16)
    DC_LAUNCH(g->nr, 128, 0, k_kv_rows<__nv_bfloat16>)(*g);
  else
    DC_LAUNCH(g->nr, 128, 0, k_kv_rows<float>)(*g);
  DC_LAUNCHED("kv_rows(rows %d, kv width %d)", g->nr, g->kvo);
  return 0;
}

extern "C" int dc_attn_rows(const dc_attn_rows_args *g) {
  if (g->nh <= 0 || g->nkv <= 0 || g->nh % g->nkv != 0 || g->hd <= 0 || g->hd > 32 * AR_DIMS)
    return dc_fail("heads must divide, head size in [1, 128]", "attn_rows(rows %d, heads %d/%d, hd %d)", g->nr, g->nh, g->nkv, g->hd);
  if (g->nr <= 0) return 0;
  if (g->kv_bf16)
    DC_LAUNCH(dim3(g->nr, g->nh), AR_WARPS * 32, 0, k_attn_rows<__nv_bfloat16>)(*g);
  else
    DC_LAUNCH(dim3(g->nr, g->nh), AR_WARPS * 32, 0, k_attn_rows<float>)(*g);
  DC_LAUNCHED("attn_rows(rows %d, heads %d/%d, hd %d)", g->nr, g->nh, g->nkv, g->hd);
  return 0;
}

extern "C" int dc_attn_rows_split(const dc_attn_rows_args *g, float *part, int splits, int chunk) {
  if (g->nh <= 0 || g->nkv <= 0 || g->nh % g->nkv != 0 || g->hd <= 0 || g->hd > 32 * AR_DIMS || splits <= 0 || chunk <= 0 ||
      (int64_t)g->nr * splits > 0x7fffffff)
    return dc_fail("heads must divide, head size in [1, 128], splits and chunk positive",
                   "attn_rows_split(rows %d, heads %d/%d, hd %d, %d splits of %d)", g->nr, g->nh, g->nkv, g->hd, splits, chunk);
  if (g->nr <= 0) return 0;
  // NG: the group's heads a block attends, its size rounded up to a power
  // of two up to AR_GROUP (larger groups take several blocks).
  const int group = g->nh / g->nkv, ng = group <= 1 ? 1 : group <= 2 ? 2 : group <= 4 ? 4 : AR_GROUP;
  const dim3 grid(g->nr * splits, g->nkv * ((group + ng - 1) / ng));
  switch (ng * 2 + (g->kv_bf16 ? 1 : 0)) {
#define AR_SPLIT(NG)                                                                             \
  case NG * 2:                                                                                   \
    DC_LAUNCH(grid, AR_WARPS * 32, 0, k_attn_rows_split<float, NG>)(*g, part, splits, chunk);    \
    break;                                                                                       \
  case NG * 2 + 1:                                                                               \
    DC_LAUNCH(grid, AR_WARPS * 32, 0, k_attn_rows_split<__nv_bfloat16, NG>)(*g, part, splits, chunk); \
    break;
    AR_SPLIT(1)
    AR_SPLIT(2)
    AR_SPLIT(4)
    AR_SPLIT(AR_GROUP)
#undef AR_SPLIT
  }
  DC_LAUNCHED("attn_rows_split(rows %d, heads %d/%d, hd %d, %d splits of %d)", g->nr, g->nh, g->nkv, g->hd, splits, chunk);
  DC_LAUNCH(dim3(g->nr, g->nh), AR_WARPS * 32, 0, k_attn_rows_merge)(*g, part, splits, chunk);
  DC_LAUNCHED("attn_rows_merge(rows %d, heads %d/%d, hd %d, %d splits of %d)", g->nr, g->nh, g->nkv, g->hd, splits, chunk);
  return 0;
}
