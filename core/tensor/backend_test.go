package tensor

import (
	"strings"
	"testing"
)

// core/tensor never imports the cuda package, so here "cuda" is never
// registered: asking for it must say how to get a CUDA build.
func TestOpenCUDAWithoutSupport(t *testing.T) {
	_, err := Open("cuda")
	if err == nil || !strings.Contains(err.Error(), "built without CUDA support") || !strings.Contains(err.Error(), "make cuda") {
		t.Fatalf("Open(\"cuda\") = %v, want the built-without-CUDA error", err)
	}
	if _, err := Open("cpu"); err != nil {
		t.Fatalf("Open(\"cpu\"): %v", err)
	}
	if _, err := Open("tpu"); err == nil || !strings.Contains(err.Error(), "unknown device") {
		t.Fatalf("Open(\"tpu\") = %v", err)
	}
}
