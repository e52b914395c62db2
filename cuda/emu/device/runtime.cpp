// runtime.cpp: the emulated device's CUDA runtime and cuBLAS (see
// include/cuda_runtime.h). Device memory is host memory; the one stream
// runs each operation when it is enqueued, so every call is synchronous
// and a synchronisation has nothing to wait for. What the device would
// refuse, this refuses too, so the backend's error paths run: a launch
// past the limits (an error for cudaGetLastError, the kernel not run), an
// allocation past the device's memory (DISTILL_CUDA_EMU_MEM bytes, default
// 8 GiB: the user's card; its shared memory: smem_per_sm), a synchronising
// call inside a graph capture (which invalidates it). New allocations are filled with 0xff bytes (NaN
// as f32 and bf16), so a read of memory nothing wrote shows.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <vector>

#include "include/cublas_v2.h"
#include "include/cuda_runtime.h"

namespace {

constexpr int kMajor = 8, kMinor = 6;

cudaError_t last_error = cudaSuccess;
std::map<void *, size_t> allocations;
size_t allocated = 0;
std::map<const void *, size_t> smem_limits;  // kernels whose dynamic shared memory was raised past 48 KB
constexpr size_t kSmemDefault = 48 << 10;

size_t total_memory() {
  static size_t total = [] {
    const char *s = getenv("DISTILL_CUDA_EMU_MEM");
    if (s != nullptr && *s != '\0') return (size_t)strtoull(s, nullptr, 10);
    return (size_t)8 << 30;
  }();
  return total;
}

// Shared memory an SM, DISTILL_CUDA_EMU_SMEM_SM bytes, and a block's limit,
// DISTILL_CUDA_EMU_SMEM_BLOCK: by default a consumer card's (100 KB, 99
// KB; an H100's are 228 KB and 227 KB), read at each call so a test can
// emulate another card.
size_t smem_env(const char *name, size_t def) {
  const char *s = getenv(name);
  return s != nullptr && *s != '\0' ? (size_t)strtoull(s, nullptr, 10) : def;
}
int smem_per_sm() { return (int)smem_env("DISTILL_CUDA_EMU_SMEM_SM", 100 << 10); }
size_t smem_optin() { return smem_env("DISTILL_CUDA_EMU_SMEM_BLOCK", 101376); }

// A graph capture in progress: the operations enqueued since it began.
struct Capture {
  bool open = false, invalid = false;
  std::vector<std::function<void()>> ops;
} capture;

cudaError_t fail(cudaError_t e) {
  last_error = e;
  return e;
}

// device_range says whether bytes at p lie in one allocation; else it
// names what reached past (an out-of-bounds access the device might not
// report, or report far from its op).
bool device_range(const char *what, const void *p, size_t bytes) {
  auto it = allocations.upper_bound(const_cast<void *>(p));
  if (bytes == 0) return true;
  if (it != allocations.begin()) {
    --it;
    const char *base = (const char *)it->first, *q = (const char *)p;
    if (q >= base && q + bytes <= base + it->second) return true;
  }
  fprintf(stderr, "cuda emulation: %s reads or writes %zu bytes at %p, outside any device allocation\n", what, bytes, p);
  return false;
}

}  // namespace

struct EmuStream {};
struct EmuGraph {
  std::vector<std::function<void()>> ops;
};
struct EmuGraphExec {
  std::vector<std::function<void()>> ops;
};
struct EmuBlas {
  cublasMath_t math = CUBLAS_DEFAULT_MATH;
};

void emu_enqueue(std::function<void()> op) {
  if (capture.open) {
    capture.ops.push_back(std::move(op));
    return;
  }
  op();
}

cudaError_t emu_func_set_attribute(const void *kernel, cudaFuncAttribute a, int v) {
  if (a != cudaFuncAttributeMaxDynamicSharedMemorySize || v < 0 || (size_t)v > smem_optin())
    return fail(cudaErrorInvalidValue);
  smem_limits[kernel] = (size_t)v;
  return cudaSuccess;
}

cudaError_t emu_occupancy(int *n, const void *kernel, int threads, size_t smem) {
  if (threads <= 0 || threads > 1024) return fail(cudaErrorInvalidValue);
  auto lim = smem_limits.find(kernel);
  if (smem > (lim == smem_limits.end() ? kSmemDefault : std::max(kSmemDefault, lim->second))) {
    *n = 0;
    return cudaSuccess;
  }
  *n = (int)std::min<size_t>({(size_t)smem_per_sm() / (smem + 2048), (size_t)(2048 / threads), 32});
  return cudaSuccess;
}

void emu_submit(const void *kernel, dim3 grid, dim3 block, size_t smem, std::function<void()> body) {
  // The device's limits, and the emulation's own (one-dimensional blocks of
  // whole warps: every kernel here launches such).
  bool ok = grid.x >= 1 && grid.x <= 2147483647u && grid.y >= 1 && grid.y <= 65535 && grid.z == 1 && block.x >= 1 &&
            block.x <= 1024 && block.y == 1 && block.z == 1;
  if (ok && block.x % 32 != 0) {
    fprintf(stderr, "cuda emulation: a block of %u threads (the emulation runs whole warps)\n", block.x);
    ok = false;
  }
  if (!ok) {
    last_error = cudaErrorInvalidConfiguration;
    if (capture.open) capture.invalid = true;
    return;
  }
  auto lim = smem_limits.find(kernel);
  if (smem > (lim == smem_limits.end() ? kSmemDefault : std::max(kSmemDefault, lim->second))) {
    last_error = cudaErrorInvalidValue;
    if (capture.open) capture.invalid = true;
    return;
  }
  const unsigned gx = grid.x, gy = grid.y, bd = block.x;
  emu_enqueue([gx, gy, bd, smem, body = std::move(body)] { emu_launch(gx, gy, bd, smem, body); });
}

const char *cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInsufficientDriver: return "cudaErrorInsufficientDriver";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorStreamCaptureUnsupported: return "cudaErrorStreamCaptureUnsupported";
    case cudaErrorStreamCaptureInvalidated: return "cudaErrorStreamCaptureInvalidated";
    case cudaErrorStreamCaptureUnmatched: return "cudaErrorStreamCaptureUnmatched";
  }
  return "cudaErrorUnknown";
}

const char *cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated: return "operation failed due to a previous error during capture";
    default: return cudaGetErrorName(e);
  }
}

cudaError_t cudaGetLastError() {
  cudaError_t e = last_error;
  last_error = cudaSuccess;
  return e;
}

cudaError_t cudaGetDeviceCount(int *n) {
  *n = 1;
  return cudaSuccess;
}

cudaError_t cudaSetDevice(int dev) { return dev == 0 ? cudaSuccess : fail(cudaErrorInvalidDevice); }

cudaError_t cudaGetDevice(int *dev) {
  *dev = 0;
  return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int dev) {
  if (dev != 0) return fail(cudaErrorInvalidDevice);
  memset(p, 0, sizeof *p);
  snprintf(p->name, sizeof p->name, "emulated (cuda/emu: the kernels on the host)");
  p->totalGlobalMem = total_memory();
  p->major = kMajor, p->minor = kMinor;
  p->sharedMemPerBlockOptin = smem_optin();
  p->multiProcessorCount = 1;
  return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int *v, cudaDeviceAttr a, int dev) {
  if (dev != 0) return fail(cudaErrorInvalidDevice);
  switch (a) {
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *v = (int)smem_optin(); return cudaSuccess;
    case cudaDevAttrMaxSharedMemoryPerMultiprocessor: *v = smem_per_sm(); return cudaSuccess;
  }
  return fail(cudaErrorInvalidValue);
}

cudaError_t cudaMemGetInfo(size_t *free_b, size_t *total_b) {
  *total_b = total_memory();
  *free_b = *total_b - allocated;
  return cudaSuccess;
}

cudaError_t cudaMalloc(void **p, size_t bytes) {
  *p = nullptr;
  size_t rounded = (bytes + 255) & ~(size_t)255;
  if (rounded == 0) rounded = 256;
  if (allocated + rounded > total_memory()) return fail(cudaErrorMemoryAllocation);
  void *m = aligned_alloc(256, rounded);
  if (m == nullptr) return fail(cudaErrorMemoryAllocation);
  memset(m, 0xff, rounded);
  allocations[m] = rounded;
  allocated += rounded;
  *p = m;
  return cudaSuccess;
}

cudaError_t cudaFree(void *p) {
  if (p == nullptr) return cudaSuccess;
  auto it = allocations.find(p);
  if (it == allocations.end()) return fail(cudaErrorInvalidValue);
  allocated -= it->second;
  allocations.erase(it);
  free(p);
  return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind, cudaStream_t) {
  if (capture.open && kind != cudaMemcpyDeviceToDevice) {  // pageable host memory: not capturable
    capture.invalid = true;
    return fail(cudaErrorStreamCaptureUnsupported);
  }
  bool dev_src = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
  bool dev_dst = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
  if ((dev_src && !device_range("a copy's source", src, bytes)) || (dev_dst && !device_range("a copy's destination", dst, bytes)))
    return fail(cudaErrorInvalidValue);
  emu_enqueue([dst, src, bytes] { memcpy(dst, src, bytes); });
  return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void *dst, int v, size_t bytes, cudaStream_t) {
  if (!device_range("a memset", dst, bytes)) return fail(cudaErrorInvalidValue);
  emu_enqueue([dst, v, bytes] { memset(dst, v, bytes); });
  return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t *s) {
  *s = new EmuStream;
  return cudaSuccess;
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned) { return cudaStreamCreate(s); }

cudaError_t cudaStreamSynchronize(cudaStream_t) {
  if (capture.open) {
    capture.invalid = true;
    return fail(cudaErrorStreamCaptureUnsupported);
  }
  return cudaSuccess;
}

cudaError_t cudaStreamBeginCapture(cudaStream_t, cudaStreamCaptureMode) {
  if (capture.open) return fail(cudaErrorStreamCaptureUnsupported);
  capture = Capture{};
  capture.open = true;
  return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t, cudaGraph_t *g) {
  *g = nullptr;
  if (!capture.open) return fail(cudaErrorStreamCaptureUnmatched);
  bool invalid = capture.invalid;
  auto ops = std::move(capture.ops);
  capture = Capture{};
  if (invalid) return fail(cudaErrorStreamCaptureInvalidated);
  *g = new EmuGraph{std::move(ops)};
  return cudaSuccess;
}

cudaError_t cudaGraphInstantiateWithFlags(cudaGraphExec_t *x, cudaGraph_t g, unsigned long long) {
  if (g == nullptr) return fail(cudaErrorInvalidValue);
  *x = new EmuGraphExec{g->ops};
  return cudaSuccess;
}

cudaError_t cudaGraphLaunch(cudaGraphExec_t x, cudaStream_t) {
  if (x == nullptr) return fail(cudaErrorInvalidResourceHandle);
  for (auto &op : x->ops) emu_enqueue(op);
  return cudaSuccess;
}

cudaError_t cudaGraphDestroy(cudaGraph_t g) {
  delete g;
  return cudaSuccess;
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t x) {
  delete x;
  return cudaSuccess;
}

// ---- cuBLAS ----

namespace {

// f32 cut to TF32: its 10 upper mantissa bits, the rest dropped — what a
// tensor core fed raw f32 reads, and the worse of the two conversions
// cuBLAS may make (cvt.rna rounds to nearest), so a tolerance that holds
// here holds there.
float tf32(float x) {
  uint32_t u;
  memcpy(&u, &x, 4);
  if ((u & 0x7f800000u) == 0x7f800000u) return x;
  u &= ~0x1fffu;
  memcpy(&x, &u, 4);
  return x;
}

size_t elem_size(cudaDataType t) { return t == CUDA_R_32F ? 4 : 2; }

// operand_range: a column-major (rows, cols) operand at ld, in one
// allocation.
bool operand_range(const char *what, const void *p, cudaDataType t, int rows, int cols, int ld) {
  if (rows == 0 || cols == 0) return true;
  return device_range(what, p, ((size_t)(cols - 1) * ld + rows) * elem_size(t));
}

// The bytes from a (rows, cols) operand's first element to its last, and
// those of `batch` of them `stride` elements apart.
size_t operand_bytes(cudaDataType t, int rows, int cols, int ld) {
  return rows == 0 || cols == 0 ? 0 : ((size_t)(cols - 1) * ld + rows) * elem_size(t);
}
size_t batch_bytes(cudaDataType t, int rows, int cols, int ld, long long stride, int batch) {
  const size_t one = operand_bytes(t, rows, cols, ld);
  return one == 0 || batch <= 0 ? 0 : (size_t)(batch - 1) * (size_t)(stride < 0 ? -stride : stride) * elem_size(t) + one;
}

// written_apart: C's bytes share none with an operand the same product
// reads. cuBLAS reads A and B while it writes C, so an overlap races on a
// GPU — silently — where the emulation, which copies its operands first,
// would compute it cleanly.
bool written_apart(const char *what, const void *c, size_t cb, const void *x, size_t xb) {
  const char *p = (const char *)c, *q = (const char *)x;
  if (cb == 0 || xb == 0 || p + cb <= q || q + xb <= p) return true;
  fprintf(stderr, "cuda emulation: a GEMM's C (%zu bytes at %p) overlaps its %s (%zu bytes at %p)\n", cb, c, what, xb, x);
  return false;
}

// One operand, column-major (rows, cols) at ld (as stored, before its
// transpose), widened to f32 as the device reads it.
std::vector<float> widen(const void *p, cudaDataType t, int rows, int cols, int ld, bool round_tf32) {
  std::vector<float> out((size_t)rows * cols);
  for (int j = 0; j < cols; j++)
    for (int i = 0; i < rows; i++) {
      size_t at = (size_t)j * ld + i;
      float v;
      switch (t) {
        case CUDA_R_16BF: v = emu_bf2f(((const uint16_t *)p)[at]); break;
        case CUDA_R_16F: v = __half2float(emu_half{((const uint16_t *)p)[at]}); break;
        default: v = ((const float *)p)[at]; break;
      }
      out[(size_t)j * rows + i] = round_tf32 ? tf32(v) : v;
    }
  return out;
}

// transposed: a column-major (rows, cols) matrix as column-major (cols, rows).
std::vector<float> transposed(const std::vector<float> &x, int rows, int cols) {
  std::vector<float> t((size_t)rows * cols);
  for (int j = 0; j < cols; j++)
    for (int i = 0; i < rows; i++) t[(size_t)i * cols + j] = x[(size_t)j * rows + i];
  return t;
}

// op(A)·op(B), (m, n) column-major, A and B as widen leaves them: each
// element summed over k in order from zero, whatever m and n — so a
// product's rows are the same values in a larger product (a recorded
// step's padded batch against the eager one's), as no BLAS promises
// (OpenBLAS's kernels sum by blocks whose split depends on the shape and
// on the CPU's kernel type: OPENBLAS_CORETYPE=Haswell's moved the step
// graphs' replays off their eager steps by 1e-3). No contraction to FMAs:
// the vector loop and its tail round alike, and so do the AVX2 and the
// baseline clones. Blocked for the host's caches — kRows rows of op(A)
// (all k of them) against kCols columns of C at a time, so each column of
// A's block is read once for kCols columns of C — which changes no
// element's order.
__attribute__((optimize("fp-contract=off", "O3"), no_sanitize("alignment"), target_clones("avx2", "default")))
std::vector<float> product(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                           const std::vector<float> &A, const std::vector<float> &B) {
  std::vector<float> C((size_t)m * n, 0.f);
  // op(A) column-major (m, k) and op(B) column-major (k, n): columns contiguous.
  std::vector<float> At = ta != CUBLAS_OP_N ? transposed(A, k, m) : std::vector<float>{};
  std::vector<float> Bt = tb != CUBLAS_OP_N ? transposed(B, n, k) : std::vector<float>{};
  const float *ap = ta != CUBLAS_OP_N ? At.data() : A.data(), *bp = tb != CUBLAS_OP_N ? Bt.data() : B.data();
  constexpr int kRows = 256, kCols = 4;
  for (int i0 = 0; i0 < m; i0 += kRows) {
    const int rows = m - i0 < kRows ? m - i0 : kRows;
    int j = 0;
    for (; j + kCols <= n; j += kCols) {
      float *__restrict c0 = C.data() + (size_t)j * m + i0, *__restrict c1 = c0 + m, *__restrict c2 = c1 + m,
                        *__restrict c3 = c2 + m;
      const float *b = bp + (size_t)j * k;
      for (int p = 0; p < k; p++) {
        const float b0 = b[p], b1 = b[k + p], b2 = b[2 * k + p], b3 = b[3 * k + p];
        const float *__restrict col = ap + (size_t)p * m + i0;
        for (int i = 0; i < rows; i++) {
          c0[i] += col[i] * b0;
          c1[i] += col[i] * b1;
          c2[i] += col[i] * b2;
          c3[i] += col[i] * b3;
        }
      }
    }
    for (; j < n; j++) {
      float *__restrict cj = C.data() + (size_t)j * m + i0;
      const float *b = bp + (size_t)j * k;
      for (int p = 0; p < k; p++) {
        const float *__restrict col = ap + (size_t)p * m + i0;
        for (int i = 0; i < rows; i++) cj[i] += col[i] * b[p];
      }
    }
  }
  return C;
}

// f32 to bf16, nearest even (NaN kept quiet), as cuBLAS stores a bf16 C.
uint16_t f2bf(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fc0;
  return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1)) >> 16);
}

// C (m, n), column-major at ldc, = alpha·op(A)·op(B) + beta·C, C f32 or
// bf16 (ct: the sum in f32, rounded once as it is stored); argument checks
// as cuBLAS makes them.
cublasStatus_t gemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, float alpha,
                    const void *a, cudaDataType at, int lda, const void *b, cudaDataType bt, int ldb, float beta,
                    void *c, cudaDataType ct, int ldc, bool round_tf32) {
  if (h == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  int ar = ta == CUBLAS_OP_N ? m : k, ac = ta == CUBLAS_OP_N ? k : m;
  int br = tb == CUBLAS_OP_N ? k : n, bc = tb == CUBLAS_OP_N ? n : k;
  if (m < 0 || n < 0 || k < 0 || lda < std::max(1, ar) || ldb < std::max(1, br) || ldc < std::max(1, m))
    return CUBLAS_STATUS_INVALID_VALUE;
  if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
  if ((k > 0 && (!operand_range("a GEMM's A", a, at, ar, ac, lda) || !operand_range("a GEMM's B", b, bt, br, bc, ldb))) ||
      !operand_range("a GEMM's C", c, ct, m, n, ldc))
    return CUBLAS_STATUS_EXECUTION_FAILED;
  const size_t cb = operand_bytes(ct, m, n, ldc);
  if (k > 0 && (!written_apart("A", c, cb, a, operand_bytes(at, ar, ac, lda)) ||
                !written_apart("B", c, cb, b, operand_bytes(bt, br, bc, ldb))))
    return CUBLAS_STATUS_EXECUTION_FAILED;
  emu_enqueue([=] {
    std::vector<float> A = widen(a, at, ar, ac, lda, round_tf32), B = widen(b, bt, br, bc, ldb, round_tf32);
    std::vector<float> C = product(ta, tb, m, n, k, A, B);
    for (int j = 0; j < n; j++)
      for (int i = 0; i < m; i++) {
        const size_t at = (size_t)j * ldc + i;
        float v = alpha * C[(size_t)j * m + i];
        if (ct == CUDA_R_16BF) {
          uint16_t &dst = ((uint16_t *)c)[at];
          dst = f2bf(beta == 0.f ? v : v + beta * emu_bf2f(dst));
          continue;
        }
        float &dst = ((float *)c)[at];
        dst = beta == 0.f ? v : v + beta * dst;  // beta 0: C is not read (NaN there stays out)
      }
  });
  return CUBLAS_STATUS_SUCCESS;
}

}  // namespace

cublasStatus_t cublasCreate(cublasHandle_t *h) {
  *h = new EmuBlas;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t) {
  return h == nullptr ? CUBLAS_STATUS_NOT_INITIALIZED : CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetMathMode(cublasHandle_t h, cublasMath_t mode) {
  if (h == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  h->math = mode;
  return CUBLAS_STATUS_SUCCESS;
}

// The emulated GEMMs need no workspace; the call is checked as cuBLAS
// checks it.
cublasStatus_t cublasSetWorkspace(cublasHandle_t h, void *workspace, size_t bytes) {
  if (h == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (bytes > 0 && !device_range("cuBLAS's workspace", workspace, bytes)) return CUBLAS_STATUS_INVALID_VALUE;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSgemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                           const float *alpha, const float *a, int lda, const float *b, int ldb, const float *beta,
                           float *c, int ldc) {
  bool tf = h != nullptr && h->math == CUBLAS_TF32_TENSOR_OP_MATH;
  return gemm(h, ta, tb, m, n, k, *alpha, a, CUDA_R_32F, lda, b, CUDA_R_32F, ldb, *beta, c, CUDA_R_32F, ldc, tf);
}

cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                            const void *alpha, const void *a, cudaDataType at, int lda, const void *b, cudaDataType bt,
                            int ldb, const void *beta, void *c, cudaDataType ct, int ldc, cublasComputeType_t compute,
                            cublasGemmAlgo_t) {
  // f32 C, or bf16 C from bf16 A and B (cuBLAS's 16BF/16BF/16BF with 32F compute);
  // TF32 compute for f32 operands alone.
  if (at != bt || !(ct == CUDA_R_32F || (ct == CUDA_R_16BF && at == CUDA_R_16BF))) return CUBLAS_STATUS_NOT_SUPPORTED;
  if (compute == CUBLAS_COMPUTE_32F_FAST_TF32 && at != CUDA_R_32F) return CUBLAS_STATUS_NOT_SUPPORTED;
  bool tf = at == CUDA_R_32F && compute == CUBLAS_COMPUTE_32F_FAST_TF32;
  return gemm(h, ta, tb, m, n, k, *(const float *)alpha, a, at, lda, b, bt, ldb, *(const float *)beta, c, ct, ldc, tf);
}

cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                                          int k, const void *alpha, const void *a, cudaDataType at, int lda,
                                          long long sa, const void *b, cudaDataType bt, int ldb, long long sb,
                                          const void *beta, void *c, cudaDataType ct, int ldc, long long sc,
                                          int batch, cublasComputeType_t compute, cublasGemmAlgo_t algo) {
  if (batch < 0) return CUBLAS_STATUS_INVALID_VALUE;
  size_t as = elem_size(at), bs = elem_size(bt), cs = elem_size(ct);
  // Every product's C apart from every product's A and B (each call below
  // checks its own three alone).
  const int ar = ta == CUBLAS_OP_N ? m : k, ac = ta == CUBLAS_OP_N ? k : m;
  const int br = tb == CUBLAS_OP_N ? k : n, bc = tb == CUBLAS_OP_N ? n : k;
  const size_t cb = batch_bytes(ct, m, n, ldc, sc, batch);
  if (m > 0 && n > 0 && k > 0 && sc >= 0 && sa >= 0 && sb >= 0 &&
      (!written_apart("batch's A", c, cb, a, batch_bytes(at, ar, ac, lda, sa, batch)) ||
       !written_apart("batch's B", c, cb, b, batch_bytes(bt, br, bc, ldb, sb, batch))))
    return CUBLAS_STATUS_EXECUTION_FAILED;
  for (int i = 0; i < batch; i++) {
    cublasStatus_t s = cublasGemmEx(h, ta, tb, m, n, k, alpha, (const char *)a + i * sa * as, at, lda,
                                    (const char *)b + i * sb * bs, bt, ldb, beta, (char *)c + i * sc * cs, ct, ldc,
                                    compute, algo);
    if (s != CUBLAS_STATUS_SUCCESS) return s;
  }
  return CUBLAS_STATUS_SUCCESS;
}
