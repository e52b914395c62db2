//go:build cuda

package cuda

import "testing"

// The faults that lose the context are told from those a call recovers
// from (out of memory, a bad argument).
func TestLosesContext(t *testing.T) {
	for msg, want := range map[string]bool{
		"add(n=16): cudaErrorIllegalAddress: an illegal memory access was encountered": true,
		"gemm(…): cudaErrorLaunchFailure: unspecified launch failure":                  true,
		"xent(…): cudaErrorAssert: device-side assert triggered":                       true,
		"device alloc of 4096 bytes: cudaErrorMemoryAllocation: out of memory":         false,
		"attn_flash(…): cudaErrorInvalidValue: invalid argument":                       false,
		"cublasGemmEx(…): CUBLAS_STATUS_EXECUTION_FAILED":                              false,
	} {
		if got := losesContext(msg); got != want {
			t.Errorf("%q: loses the context %v, want %v", msg, got, want)
		}
	}
}
