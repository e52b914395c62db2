// common.cuh: error reporting and the shared state of the kernels' files.
#pragma once
#include <cuda_runtime.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>
#include <stdio.h>
#include "distill_cuda.h"

// The one stream and cuBLAS handle (runtime.cu).
extern cudaStream_t dc_stream;
extern cublasHandle_t dc_blas;

// dc_fail records "op: err" (op formatted printf-style with its shapes) and
// returns -1.
int dc_fail(const char *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int dc_fail_cuda(cudaError_t e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
// dc_launched checks the launch just made (and, with DISTILL_CUDA_SYNC=1 in
// the environment, waits for it so an asynchronous fault names this op).
int dc_launched(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *dc_cublas_status(cublasStatus_t s);

// DC_CHECK returns from the calling function with the op and shapes when a
// CUDA runtime call fails.
#define DC_CHECK(call, ...)                                   \
  do {                                                        \
    cudaError_t e_ = (call);                                  \
    if (e_ != cudaSuccess) return dc_fail_cuda(e_, __VA_ARGS__); \
  } while (0)

#define DC_BLAS(call, ...)                                                   \
  do {                                                                       \
    cublasStatus_t s_ = (call);                                              \
    if (s_ != CUBLAS_STATUS_SUCCESS) return dc_fail(dc_cublas_status(s_), __VA_ARGS__); \
  } while (0)

#define DC_LAUNCHED(...)                               \
  do {                                                 \
    if (dc_launched(__VA_ARGS__) != 0) return -1;      \
  } while (0)

// Grid sizing for element-wise kernels: a grid-stride loop covers the rest.
static inline int dc_blocks(int64_t n, int threads) {
  int64_t b = (n + threads - 1) / threads;
  if (b > 65535 * 8) b = 65535 * 8;
  return b < 1 ? 1 : (int)b;
}

// Block-wide sum of v over a block of blockDim.x (a multiple of 32, ≤ 1024)
// threads; every thread gets the result. Uses 33 values of shared scratch.
// float or double (kd.cu sums in double where f32 would cancel).
template <typename T>
__device__ __forceinline__ T dc_warp_sum(T v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float dc_warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
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
