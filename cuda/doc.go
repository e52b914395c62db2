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
//
// Status (groundwork for issue 8): everything compiles and links against
// Debian's CUDA 11.8 for sm_80/86/89/90, but nothing here has yet run on a
// GPU. The parity tests (`make cuda-check`) skip where no device is visible;
// the first machine with one must run them before any of this is trusted.
//
// Imports point one way: cuda → core/tensor only. The parity tests are an
// external test package (cuda_test) and may import the CPU references in
// core/train and core/quant.
package cuda
