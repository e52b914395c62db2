// runtime.cu: errors, device selection, the stream, memory and cuBLAS.
// Memory is plain cudaMalloc (never managed memory); the caching pool over
// it is Go (cuda/pool.go), so its size classes are tested without a GPU.
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common.cuh"

cudaStream_t dc_stream = nullptr;
cublasHandle_t dc_blas = nullptr;
static char dc_err[1024];
static int dc_sync_each = -1;
static bool dc_capturing = false;  // a graph capture is open on dc_stream

extern "C" const char *dc_last_error(void) { return dc_err; }

static int dc_vfail(const char *err, const char *fmt, va_list ap) {
  int n = vsnprintf(dc_err, sizeof dc_err, fmt, ap);
  if (n < 0) n = 0;
  if (n < (int)sizeof dc_err) snprintf(dc_err + n, sizeof dc_err - n, ": %s", err);
  return -1;
}

int dc_fail(const char *err, const char *fmt, ...) {
  cudaGetLastError();  // as dc_fail_cuda: a cuBLAS failure's allocation error is reported here, not by the next launch
  va_list ap;
  va_start(ap, fmt);
  dc_vfail(err, fmt, ap);
  va_end(ap);
  return -1;
}

int dc_fail_cuda(cudaError_t e, const char *fmt, ...) {
  // The runtime also keeps e as the thread's last error, which the next
  // launch's check (dc_launched: cudaGetLastError) would report as that
  // kernel's failure — after a cudaMalloc the pool recovered from by
  // freeing its cache, a kernel that ran fine. e is returned here: clear it
  // (a sticky error stays: the context is lost either way).
  cudaGetLastError();
  char err[256];
  snprintf(err, sizeof err, "%s: %s", cudaGetErrorName(e), cudaGetErrorString(e));
  va_list ap;
  va_start(ap, fmt);
  dc_vfail(err, fmt, ap);
  va_end(ap);
  return -1;
}

int dc_launched(const char *fmt, ...) {
  cudaError_t e = cudaGetLastError();
  if (e == cudaSuccess) {
    if (dc_sync_each < 0) {
      const char *s = getenv("DISTILL_CUDA_SYNC");
      dc_sync_each = s != nullptr && strcmp(s, "1") == 0;
    }
    if (dc_sync_each && !dc_capturing) e = cudaStreamSynchronize(dc_stream);  // no synchronising inside a capture
  }
  if (e == cudaSuccess) return 0;
  char err[256];
  snprintf(err, sizeof err, "%s: %s", cudaGetErrorName(e), cudaGetErrorString(e));
  va_list ap;
  va_start(ap, fmt);
  dc_vfail(err, fmt, ap);
  va_end(ap);
  return -1;
}

const char *dc_cublas_status(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    default: return "CUBLAS_STATUS_UNKNOWN";
  }
}

extern "C" int dc_device_count(int *n) {
  *n = 0;
  cudaError_t e = cudaGetDeviceCount(n);
  // No driver or no device is an answer (zero devices), not a failure.
  if (e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver) {
    cudaGetLastError();
    *n = 0;
    return 0;
  }
  DC_CHECK(e, "cudaGetDeviceCount");
  return 0;
}

extern "C" int dc_init(int dev) {
  DC_CHECK(cudaSetDevice(dev), "cudaSetDevice(%d)", dev);
  if (dc_stream == nullptr)
    DC_CHECK(cudaStreamCreateWithFlags(&dc_stream, cudaStreamNonBlocking), "cudaStreamCreate(device %d)", dev);
  if (dc_blas == nullptr) {
    DC_BLAS(cublasCreate(&dc_blas), "cublasCreate(device %d)", dev);
    DC_BLAS(cublasSetStream(dc_blas, dc_stream), "cublasSetStream");
    // The f32 GEMM is the parity reference: no TF32 unless a caller asks.
    DC_BLAS(cublasSetMathMode(dc_blas, CUBLAS_DEFAULT_MATH), "cublasSetMathMode");
  }
  return 0;
}

extern "C" int dc_device_info(int dev, char *name, int len, size_t *total_mem, int *major, int *minor, int *smem_optin, int pci[3]) {
  cudaDeviceProp p;
  DC_CHECK(cudaGetDeviceProperties(&p, dev), "cudaGetDeviceProperties(%d)", dev);
  snprintf(name, len, "%s", p.name);
  *total_mem = p.totalGlobalMem;
  *major = p.major;
  *minor = p.minor;
  *smem_optin = (int)p.sharedMemPerBlockOptin;
  pci[0] = p.pciDomainID, pci[1] = p.pciBusID, pci[2] = p.pciDeviceID;
  return 0;
}

extern "C" int dc_mem_info(size_t *free_b, size_t *total_b) {
  DC_CHECK(cudaMemGetInfo(free_b, total_b), "cudaMemGetInfo");
  return 0;
}

extern "C" int dc_malloc(void **p, size_t bytes) {
  *p = nullptr;
  DC_CHECK(cudaMalloc(p, bytes), "cudaMalloc(%zu bytes)", bytes);
  return 0;
}

extern "C" int dc_free(void *p) {
  DC_CHECK(cudaFree(p), "cudaFree(%p)", p);
  return 0;
}

extern "C" int dc_h2d(void *dst, const void *src, size_t bytes) {
  // From pageable memory the copy has been staged when this returns; the
  // synchronise makes that hold for pinned memory too.
  DC_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, dc_stream), "upload(%zu bytes)", bytes);
  DC_CHECK(cudaStreamSynchronize(dc_stream), "upload(%zu bytes): synchronise", bytes);
  return 0;
}

extern "C" int dc_d2h(void *dst, const void *src, size_t bytes) {
  DC_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, dc_stream), "download(%zu bytes)", bytes);
  DC_CHECK(cudaStreamSynchronize(dc_stream), "download(%zu bytes): synchronise", bytes);
  return 0;
}

extern "C" int dc_d2d(void *dst, const void *src, size_t bytes) {
  DC_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, dc_stream), "copy(%zu bytes)", bytes);
  return 0;
}

extern "C" int dc_memset0(void *dst, size_t bytes) {
  DC_CHECK(cudaMemsetAsync(dst, 0, bytes, dc_stream), "memset(%zu bytes)", bytes);
  return 0;
}

extern "C" int dc_sync(void) {
  DC_CHECK(cudaStreamSynchronize(dc_stream), "synchronise");
  return 0;
}

// ---- CUDA graphs: a sequence of launches recorded once, replayed in one ----

extern "C" int dc_graph_begin(void) {
  // Relaxed: the launchers' own checks (cudaFuncSetAttribute, error
  // queries) stay legal while the stream records.
  DC_CHECK(cudaStreamBeginCapture(dc_stream, cudaStreamCaptureModeRelaxed), "graph capture: begin");
  dc_capturing = true;
  return 0;
}

extern "C" int dc_graph_end(void **exec, int keep) {
  cudaGraph_t g = nullptr;
  cudaError_t e = cudaStreamEndCapture(dc_stream, &g);
  dc_capturing = false;
  *exec = nullptr;
  if (e == cudaSuccess && keep) {
    cudaGraphExec_t x = nullptr;
    e = cudaGraphInstantiateWithFlags(&x, g, 0);
    if (e == cudaSuccess) *exec = (void *)x;
  }
  if (g != nullptr) cudaGraphDestroy(g);
  if (e != cudaSuccess) {
    cudaGetLastError();  // a failed capture leaves its error pending: clear it for the next call
    return dc_fail_cuda(e, "graph capture: end");
  }
  return 0;
}

extern "C" int dc_blas_workspace(void *ws, size_t bytes) {
  DC_BLAS(cublasSetWorkspace(dc_blas, ws, bytes), "cublasSetWorkspace(%zu bytes)", bytes);
  return 0;
}

extern "C" int dc_graph_launch(void *exec) {
  DC_CHECK(cudaGraphLaunch((cudaGraphExec_t)exec, dc_stream), "graph launch");
  return 0;
}

extern "C" int dc_graph_free(void *exec) {
  if (exec != nullptr) DC_CHECK(cudaGraphExecDestroy((cudaGraphExec_t)exec), "graph free");
  return 0;
}
