// cuda_runtime.h of the emulated device: what cuda/kernels/*.cu use of the
// CUDA runtime, served on the host (runtime.cpp), with the kernels' device
// code run by ../host/shim.h (each CUDA thread a fiber). `make cuda-emu`
// compiles the real kernels' files against these headers into a library
// the `cuda` Go package links instead of cudart and cuBLAS (build tags
// cuda,cudaemu): so the whole backend — launchers, cuBLAS calls, graphs,
// the device-resident step — runs, slowly, where there is no GPU.
#pragma once
#include "../../host/shim.h"

#include <cstddef>
#include <functional>
#include <tuple>
#include <type_traits>
#include <utility>

typedef enum cudaError {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInsufficientDriver = 35,
  cudaErrorNoDevice = 100,
  cudaErrorInvalidDevice = 101,
  cudaErrorInvalidResourceHandle = 400,
  cudaErrorStreamCaptureUnsupported = 900,
  cudaErrorStreamCaptureInvalidated = 901,
  cudaErrorStreamCaptureUnmatched = 903,
} cudaError_t;

struct EmuStream;
struct EmuGraph;
struct EmuGraphExec;
typedef EmuStream *cudaStream_t;
typedef EmuGraph *cudaGraph_t;
typedef EmuGraphExec *cudaGraphExec_t;

enum cudaMemcpyKind { cudaMemcpyHostToHost = 0, cudaMemcpyHostToDevice = 1, cudaMemcpyDeviceToHost = 2, cudaMemcpyDeviceToDevice = 3 };
enum cudaStreamCaptureMode { cudaStreamCaptureModeGlobal = 0, cudaStreamCaptureModeThreadLocal = 1, cudaStreamCaptureModeRelaxed = 2 };
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
enum cudaDeviceAttr { cudaDevAttrMaxSharedMemoryPerMultiprocessor = 81, cudaDevAttrMaxSharedMemoryPerBlockOptin = 97 };
#define cudaStreamNonBlocking 0x01

struct cudaDeviceProp {
  char name[256];
  size_t totalGlobalMem;
  int major, minor;
  size_t sharedMemPerBlockOptin;
  int multiProcessorCount;
  int pciDomainID, pciBusID, pciDeviceID;
};

typedef enum cudaDataType_t { CUDA_R_32F = 0, CUDA_R_16F = 2, CUDA_R_16BF = 14 } cudaDataType;

struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

const char *cudaGetErrorName(cudaError_t e);
const char *cudaGetErrorString(cudaError_t e);
cudaError_t cudaGetLastError();
cudaError_t cudaGetDeviceCount(int *n);
cudaError_t cudaSetDevice(int dev);
cudaError_t cudaGetDevice(int *dev);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int dev);
cudaError_t cudaDeviceGetAttribute(int *v, cudaDeviceAttr a, int dev);
cudaError_t cudaMemGetInfo(size_t *free_b, size_t *total_b);
cudaError_t cudaMalloc(void **p, size_t bytes);
cudaError_t cudaFree(void *p);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind, cudaStream_t s);
cudaError_t cudaMemsetAsync(void *dst, int v, size_t bytes, cudaStream_t s);
cudaError_t cudaStreamCreate(cudaStream_t *s);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode mode);
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t *g);
cudaError_t cudaGraphInstantiateWithFlags(cudaGraphExec_t *x, cudaGraph_t g, unsigned long long flags);
cudaError_t cudaGraphLaunch(cudaGraphExec_t x, cudaStream_t s);
cudaError_t cudaGraphDestroy(cudaGraph_t g);
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t x);

// A kernel's dynamic shared memory limit: 48 KB until raised (up to the
// device's opt-in limit) by cudaFuncSetAttribute, checked at each launch.
cudaError_t emu_func_set_attribute(const void *kernel, cudaFuncAttribute a, int v);
template <class F>
cudaError_t cudaFuncSetAttribute(F kernel, cudaFuncAttribute a, int v) {
  return emu_func_set_attribute((const void *)kernel, a, v);
}

// Blocks of kernel (threads each, smem bytes of dynamic shared memory) an
// SM holds at once — by shared memory alone (the emulation knows no
// registers): the SM's (DISTILL_CUDA_EMU_SMEM_SM) over each block's
// dynamic bytes, 1 KB for its static arrays and the 1 KB the runtime
// reserves; 0 past the kernel's dynamic limit, as a launch would fail.
cudaError_t emu_occupancy(int *n, const void *kernel, int threads, size_t smem);
template <class F>
cudaError_t cudaOccupancyMaxActiveBlocksPerMultiprocessor(int *n, F kernel, int threads, size_t smem) {
  return emu_occupancy(n, (const void *)kernel, threads, smem);
}

// emu_enqueue runs op now, on the host, or records it while a graph
// capture is open (the stream is the one stream: everything is in order).
void emu_enqueue(std::function<void()> op);
// emu_submit checks a launch of kernel's configuration as the device would
// (an error for cudaGetLastError, the kernel not run) and enqueues its
// grid.
void emu_submit(const void *kernel, dim3 grid, dim3 block, size_t smem, std::function<void()> body);

// DC_LAUNCH's target under the emulation: emu_kernel(grid, block, smem,
// kernel)(args…) converts the arguments to the kernel's parameter types as
// a call would (implicitly: a void * for a float * is refused, as nvcc
// refuses it), keeps them by value (a recorded launch replays with them)
// and submits the grid.
template <class... P>
struct EmuLauncher {
  dim3 grid, block;
  size_t smem;
  void (*kernel)(P...);
  template <class... A>
  void operator()(A &&...a) const {
    static_assert(sizeof...(A) == sizeof...(P), "a launch's arguments must match its kernel's parameters");
    static_assert((std::is_convertible_v<A &&, std::decay_t<P>> && ...),
                  "a launch's argument does not convert implicitly to its kernel's parameter");
    std::tuple<std::decay_t<P>...> args(std::forward<A>(a)...);
    auto k = kernel;
    emu_submit((const void *)k, grid, block, smem, [k, args] { std::apply(k, args); });
  }
};
template <class... P>
EmuLauncher<P...> emu_kernel(dim3 grid, dim3 block, size_t smem, void (*kernel)(P...)) {
  return {grid, block, smem, kernel};
}
