// rope_kernels.cuh: the device code of rope.cu (rotary embeddings at explicit
// positions), apart from its launchers so that cuda/emu compiles it on the
// host too (DISTILL_CUDA_EMU, cuda/emu/host/shim.h first; checked by
// host/train_emu.cpp). The kernels keep their names and linkage (no anonymous
// namespace): rope.cu alone includes this, and its device build is instruction
// for instruction what it was.
#pragma once
#include "devmath.cuh"

// One thread per (row, head, j < hd/2). A position outside the tables'
// [0, max_pos) makes its row NaN (never a read past them), as the other
// kernels do with an index out of range.
__global__ void k_rope(float *x, const int32_t *pos, const float *cs, const float *sn, int n, int nh, int hd, int max_pos,
                       float sign) {
  int half = hd / 2;
  int64_t total = (int64_t)n * nh * half;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
    int j = (int)(i % half);
    int64_t rh = i / half;  // row·nh + head
    int p = pos[rh / nh];
    float *h = x + rh * hd;
    if (p < 0 || p >= max_pos) {
      h[j] = h[j + half] = NAN;
      continue;
    }
    float c = cs[(int64_t)p * half + j], s = sign * sn[(int64_t)p * half + j];
    float a = h[j], b = h[j + half];
    h[j] = a * c - b * s;
    h[j + half] = b * c + a * s;
  }
}
