// decode.cu: one decoded token's q, k and v from the projections to the
// attention in one launch (decode_kernels.cuh): Qwen3's per-head norms,
// RoPE, and the new key and value row into the device's cache and the
// host's staging — where op by op it took up to six launches.
#include "common.cuh"
#include "decode_kernels.cuh"

extern "C" int dc_decode_qkv(const dc_decode_qkv_args *g) {
  if (g->hd <= 0 || g->hd % 2 != 0 || g->nh <= 0 || g->nkv <= 0 || g->nh % g->nkv != 0)
    return dc_fail("heads must divide and head size be even", "decode_qkv(heads %d/%d, hd %d)", g->nh, g->nkv, g->hd);
  dq_args a{g->q, g->k, g->v, g->q_norm, g->k_norm, g->eps, g->pos, g->cos_t, g->sin_t, g->tables,
            g->k_cache, g->v_cache, g->k_stage, g->v_stage, g->cap, g->nh, g->nkv, g->hd};
  k_decode_qkv<<<g->nh + 2 * g->nkv, 32, 0, dc_stream>>>(a);
  DC_LAUNCHED("decode_qkv(heads %d/%d, hd %d, cap %d)", g->nh, g->nkv, g->hd, g->cap);
  return 0;
}
