//go:build cuda && cudaemu

package cuda

// The emulated device (build tags cuda,cudaemu): the same kernels/*.cu
// compiled for the host by `make cuda-emu` against cuda/emu/device's CUDA
// runtime and cuBLAS — each CUDA thread a fiber, the GEMMs OpenBLAS's over
// operands widened as the device reads them. Every test of this package
// and of cuda/devnet then runs without a GPU, slowly: it proves the
// launchers, the kernels' results, the device-resident step's bookkeeping
// and its parity with the CPU, not the device's speed, its tensor cores'
// summation order or races. Accesses off their type's alignment stop it
// (UBSan's alignment check, hence libubsan; cp.async, ldmatrix and __ldg
// checked by the shim), as they fault on the hardware.

/*
#cgo LDFLAGS: -L${SRCDIR}/build-emu -ldistillcuda -lopenblas -lstdc++ -lm -lubsan
*/
import "C"

// Emulated says whether the device is the host emulation: tests skip
// what only a GPU can show (benchmarks, memory at full-size shapes).
const Emulated = true
