// Package cuda is the CUDA implementation of tensor.Backend, compiled only
// with the `cuda` build tag; without it the binary is CPU-only and says so
// when --device cuda is asked for (tensor.Open).
//
// Layout:
//
//	kernels/*.cu, kernels/distill_cuda.h  the kernels and their C API, built by
//	                                      `make cuda` into build/libdistillcuda.a
//	cgo.go                                the one cgo file: link flags, errors
//	device.go, buffer.go                  device, memory (pool.go), uploads
//	ops_*.go                              Go wrappers of the kernels on Buffers
//	backend.go                            tensor.Backend over host slices
//	devcheck.sh                           the checks on a GPU machine without Go
//	devnet/                               the device-resident LoRA step
//
// Status: everything compiles and links against Debian's CUDA 11.8 for
// sm_80/86/89/90 (CI), and every parity test passed on an NVIDIA H200 with
// CUDA 13.0 (2026-11-26; BENCHMARKS.md). The parity tests (`make
// cuda-check`, or cuda/devcheck.sh on a GPU machine without Go) skip where
// no device is visible. Training's fast path is cuda/devnet, which keeps
// activations on the device; Backend here is the op-by-op path the rest
// (inference, KD, DPO, full fine-tuning) takes on a GPU.
//
// Imports point one way: cuda → core/tensor only. The parity tests are an
// external test package (cuda_test) and may import the CPU references in
// core/train and core/quant.
package cuda
