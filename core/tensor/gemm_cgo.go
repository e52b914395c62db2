//go:build cgo

package tensor

/*
#cgo LDFLAGS: -lopenblas
#include <cblas.h>
*/
import "C"

// sgemm is cblas_sgemm on the calling goroutine's thread (OpenBLAS runs
// single-threaded; callers split work across cores themselves).
func sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	ta, tb := uint32(C.CblasNoTrans), uint32(C.CblasNoTrans)
	if transA {
		ta = C.CblasTrans
	}
	if transB {
		tb = C.CblasTrans
	}
	C.cblas_sgemm(C.CblasRowMajor, ta, tb, C.blasint(m), C.blasint(n), C.blasint(k),
		C.float(alpha), f32p(a), C.blasint(lda), f32p(b), C.blasint(ldb), C.float(beta), f32p(c), C.blasint(ldc))
}
