//go:build cuda && !cudaemu

package cuda

// The library `make cuda` builds from kernels/*.cu with nvcc, and the
// toolkit's shared cudart, cuBLAS and cuBLASLt (Debian installs them in the
// default library path; elsewhere set CGO_LDFLAGS=-L/usr/local/cuda/lib64).

/*
#cgo LDFLAGS: -L${SRCDIR}/build -ldistillcuda -lcublas -lcublasLt -lcudart -lstdc++ -lm
*/
import "C"

// Emulated says whether the device is the host emulation (link_emu.go):
// this build runs on a real GPU.
const Emulated = false
