// devmath.cuh: warp and block reductions, RMSNorm's scale, the sigmoid,
// LoRA dropout's mask hash —
// device code with no CUDA runtime includes, so cuda/emu compiles it on the host too
// (DISTILL_CUDA_EMU, cuda/emu/host/shim.h first).
#pragma once

// A kernel's dynamic shared memory as an array of T (16-byte aligned); under
// the emulation, the block's buffer emu_launch allocates.
#ifdef DISTILL_CUDA_EMU
#define DC_DYNAMIC_SHARED(T, name) T *name = reinterpret_cast<T *>(emu_smem)
#else
#define DC_DYNAMIC_SHARED(T, name) extern __shared__ __align__(16) T name[]
#endif

// Sum of v over the warp's 32 lanes; every lane gets it. float or double
// (kd.cu sums in double where f32 would cancel).
template <typename T>
__device__ __forceinline__ T dc_warp_sum(T v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float dc_warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Block-wide sum of v over a block of blockDim.x (a multiple of 32, ≤ 1024)
// threads; every thread gets the result. Uses 33 values of shared scratch.
template <typename T>
__device__ __forceinline__ T dc_block_sum(T v, T *sh) {
  int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = dc_warp_sum(v);
  __syncthreads();  // sh may still be read by a previous call
  if (lane == 0) sh[w] = v;
  __syncthreads();
  v = lane < nw ? sh[lane] : T(0);
  if (w == 0) {
    v = dc_warp_sum(v);
    if (lane == 0) sh[32] = v;
  }
  __syncthreads();
  return sh[32];
}
__device__ __forceinline__ float dc_block_max(float v, float *sh) {
  int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = dc_warp_max(v);
  __syncthreads();
  if (lane == 0) sh[w] = v;
  __syncthreads();
  v = lane < nw ? sh[lane] : -INFINITY;
  if (w == 0) {
    v = dc_warp_max(v);
    if (lane == 0) sh[32] = v;
  }
  __syncthreads();
  return sh[32];
}

// RMSNorm's scale 1/√(ss/d + eps) for a row of d values whose squares sum
// to ss: rsqrtf is within 2 ulp; one Newton step brings it to about 1 ulp.
__device__ __forceinline__ float dc_rms_scale(float ss, int d, float eps) {
  float m = ss / d + eps, s = rsqrtf(m);
  return s * (1.5f - 0.5f * m * s * s);
}

// σ in f32 with expf (the CPU reference takes it in f64 and rounds: within a
// few ulp of each other).
__device__ __forceinline__ float dc_sigmoid(float x) { return 1.f / (1.f + expf(-x)); }

// LoRA dropout's counter-based mask (splitmix64's finaliser): element i of
// a site keyed base is dropped where dc_mix(base + i) < thresh — in
// dropout.cu's kernels and in those that make the masked input again
// (swiglu.cu's backward with the down adapter's dA).
__device__ __forceinline__ uint64_t dc_mix(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
