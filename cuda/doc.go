// Package cuda is the CUDA implementation of tensor.Backend, compiled only
// with the `cuda` build tag; without it the binary is CPU-only and says so
// when --device cuda is asked for.
package cuda
