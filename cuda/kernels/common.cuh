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

// Strided-batched row-major TF32 GEMM (gemm.cu): batch b's operands at
// A + b·sa, B + b·sb, C + b·sc (elements; stride 0 shares one); what names
// the caller's product in an error.
int dc_gemm_tf32_strided(const char *what, int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
                         int lda, int64_t sa, const float *b, int ldb, int64_t sb, float beta, float *c, int ldc,
                         int64_t sc, int batch);
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

// DC_LAUNCH(grid, block, smem, kernel)(args…) launches kernel on the one
// stream: kernel<<<grid, block, smem, dc_stream>>>(args…) for nvcc; under
// the emulated device (cuda/emu/device, DISTILL_CUDA_EMU) the same kernel
// runs on the host, each thread a fiber, or is recorded while a graph
// capture is open. The kernel comes last: its template arguments carry
// commas.
#ifdef DISTILL_CUDA_EMU
#define DC_LAUNCH(grid, block, smem, ...) emu_kernel((grid), (block), (smem), __VA_ARGS__)
#else
#define DC_LAUNCH(grid, block, smem, ...) __VA_ARGS__<<<(grid), (block), (smem), dc_stream>>>
#endif

// Grid sizing for element-wise kernels: a grid-stride loop covers the rest.
static inline int dc_blocks(int64_t n, int threads) {
  int64_t b = (n + threads - 1) / threads;
  if (b > 65535 * 8) b = 65535 * 8;
  return b < 1 ? 1 : (int)b;
}

static inline bool dc_aligned16(const void *p) { return ((uintptr_t)p & 15) == 0; }

#include "devmath.cuh"  // dc_warp_sum, dc_block_sum, dc_rms_scale, dc_sigmoid, …
