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
	"strings"
	"sync"
)

// ErrCUDA is wrapped by every error a CUDA call returns.
var ErrCUDA = errors.New("cuda")

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
	if f() == 0 {
		return nil
	}
	msg := C.GoString(C.dc_last_error())
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
