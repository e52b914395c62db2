// decode_kernels.cuh: the device code of decode.cu — what one decoded
// token's attention inputs need between the projections and the attention,
// in one launch. Apart so that cuda/emu compiles it on the host and checks
// it against an f64 reference (DISTILL_CUDA_EMU, shim.h first).
#pragma once
#include "devmath.cuh"

namespace {

// One token's q (nh heads), k and v (nkv heads each) of head size hd, after
// the projections. qn, kn: the per-head RMSNorm weights (hd; Qwen3), or
// null. RoPE at position pos[0] from the tables cs, sn ((tables, hd/2), as
// rope.cu's). kc, vc: the layer's cache rows (cap, nkv·hd); sk, sv: where
// the host's copy of the new row is gathered (nkv·hd each), or null.
struct dq_args {
  float *q;
  const float *k, *v, *qn, *kn;
  float eps;
  const int32_t *pos;
  const float *cs, *sn;
  int tables;
  float *kc, *vc, *sk, *sv;
  int cap, nh, nkv, hd;
};

// One warp per head: block b < nh is q's head b, normalised and rotated in
// place; then k's heads, normalised, rotated and written to row pos of kc
// (and sk); then v's, copied to vc (and sv). The arithmetic is
// k_rmsnorm_fwd's ((x·s)·w, the scale by dc_rms_scale; the sum of squares
// in another order) and k_rope's (HF's rotate-half pairs (j, j + hd/2)).
// A position outside the tables or the cache writes nothing (the host
// checks it before the launch).
__global__ void __launch_bounds__(32) k_decode_qkv(dq_args a) {
  const int b = blockIdx.x, lane = threadIdx.x, hd = a.hd, half = hd / 2, kvO = a.nkv * hd;
  const int p = a.pos[0];
  if (p < 0 || p >= a.cap || p >= a.tables) return;
  if (b >= a.nh + a.nkv) {  // v
    const int h = b - a.nh - a.nkv;
    for (int j = lane; j < hd; j += 32) {
      const float x = a.v[h * hd + j];
      a.vc[(int64_t)p * kvO + h * hd + j] = x;
      if (a.sv != nullptr) a.sv[h * hd + j] = x;
    }
    return;
  }
  const bool isq = b < a.nh;
  const int h = isq ? b : b - a.nh;
  const float *x = isq ? a.q + h * hd : a.k + h * hd, *w = isq ? a.qn : a.kn;
  float s = 0.f;
  if (w != nullptr) {
    float ss = 0.f;
    for (int j = lane; j < hd; j += 32) ss += x[j] * x[j];
    s = dc_rms_scale(dc_warp_sum(ss), hd, a.eps);  // every lane has read its x before any writes
  }
  for (int j = lane; j < half; j += 32) {
    float x0 = x[j], x1 = x[j + half];
    if (w != nullptr) x0 = x0 * s * w[j], x1 = x1 * s * w[j + half];
    const float c = a.cs[(int64_t)p * half + j], sn = a.sn[(int64_t)p * half + j];
    const float r0 = x0 * c - x1 * sn, r1 = x1 * c + x0 * sn;
    if (isq) {
      a.q[h * hd + j] = r0, a.q[h * hd + j + half] = r1;
      continue;
    }
    float *kr = a.kc + (int64_t)p * kvO + h * hd;
    kr[j] = r0, kr[j + half] = r1;
    if (a.sk != nullptr) a.sk[h * hd + j] = r0, a.sk[h * hd + j + half] = r1;
  }
}

}  // namespace
