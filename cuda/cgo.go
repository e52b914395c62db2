//go:build cuda

package cuda

// The C calls into the kernels' library: link_device.go links it (`make
// cuda`) with the toolkit's cudart and cuBLAS, link_emu.go the emulated
// device's (`make cuda-emu`, build tag cudaemu).

/*
#cgo CFLAGS: -I${SRCDIR}/kernels
#include <stdlib.h>
#include "distill_cuda.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
)

// ErrCUDA is wrapped by every error a CUDA call returns.
var ErrCUDA = errors.New("cuda")

// ErrDeviceLost is wrapped by the error of a call that met a fault which
// leaves the process's CUDA context unusable (a kernel's illegal address,
// a device-side assert, …) and by every call's after it: they fail at once,
// naming the first, rather than each name itself as the op that failed.
var ErrDeviceLost = errors.New("the CUDA context is lost")

// lost is the first such fault's message, once there was one.
var lost atomic.Pointer[string]

// stickyErrors are the runtime's errors after which the context is gone
// (CUDA's documentation: "the process must be terminated and relaunched").
var stickyErrors = []string{"cudaErrorIllegalAddress", "cudaErrorLaunchFailure", "cudaErrorMisalignedAddress",
	"cudaErrorIllegalInstruction", "cudaErrorInvalidAddressSpace", "cudaErrorInvalidPc", "cudaErrorHardwareStackError",
	"cudaErrorAssert", "cudaErrorLaunchTimeout", "cudaErrorECCUncorrectable", "cudaErrorDevicesUnavailable"}

// losesContext says whether a failed call's message names a sticky error.
func losesContext(msg string) bool {
	for _, s := range stickyErrors {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// lostError is the error of every call once the context is lost.
func lostError(first string) error {
	return errors.Join(ErrCUDA, ErrDeviceLost, fmt.Errorf("%s: the device cannot run anything more in this process: restart it "+
		"(a kernel's fault is reported by a later call: DISTILL_CUDA_SYNC=1 names the kernel)", first))
}

// callMu serialises the C calls: the library keeps one error buffer and one
// stream for the process, and a goroutine may change OS threads between a
// call and reading its error.
var callMu sync.Mutex

// call runs f (one C call returning 0 or -1) and turns a failure into an
// error carrying the library's "op(shapes): cudaErrorName: description".
func call(f func() C.int) error {
	callMu.Lock()
	defer callMu.Unlock()
	if capG.Load() != 0 { // a graph capture is open: only its goroutine's calls go on (graph.go)
		waitCapture()
	}
	return callLocked(f)
}

// callLocked is call with callMu held by the caller.
func callLocked(f func() C.int) error {
	if first := lost.Load(); first != nil {
		return lostError(*first)
	}
	if f() == 0 {
		return nil
	}
	msg := C.GoString(C.dc_last_error())
	if losesContext(msg) {
		lost.CompareAndSwap(nil, &msg)
		return lostError(*lost.Load())
	}
	// cuBLAS out of memory for its workspace is the device's too.
	if strings.Contains(msg, "cudaErrorMemoryAllocation") || strings.Contains(msg, "CUBLAS_STATUS_ALLOC_FAILED") {
		return errors.Join(ErrCUDA, ErrOutOfMemory, errors.New(msg))
	}
	return errors.Join(ErrCUDA, errors.New(msg))
}

func cbool(b bool) C.int {
	if b {
		return 1
	}
	return 0
}
