//go:build cgo

package quant

/*
#cgo CFLAGS: -O3 -std=c11 -I${SRCDIR}/../tensor
#cgo LDFLAGS: -lopenblas -lm
#include "quant.h"
#include <cblas.h>
*/
import "C"

import (
	"unsafe"

	"distill/core/tensor"
)

// OpenBLAS runs single-threaded: package tensor sets it in its init (which
// runs before ours, as we import it), and each worker goroutine calls sgemm
// on its own tile.
const haveBLAS = true

func init() { C.q_init() }

// Kernel levels, best first available on this CPU at init.
const (
	levelScalar = C.Q_SCALAR
	levelAVX2   = C.Q_AVX2
	levelAVX512 = C.Q_AVX512
)

// kernelLevel reports the kernels in use; setKernelLevel forces a lower level
// (capped at what the CPU has) and returns the one in effect. For tests and
// benchmarks: not safe while kernels run.
func kernelLevel() int         { return int(C.q_get_level()) }
func setKernelLevel(l int) int { return int(C.q_set_level(C.int(l))) }

func f32p(s []float32) *C.float { return (*C.float)(unsafe.Pointer(unsafe.SliceData(s))) }
func u8p(s []byte) *C.uint8_t   { return (*C.uint8_t)(unsafe.Pointer(unsafe.SliceData(s))) }

func kernelTables() (code, mid [16]float32) {
	C.q_nf4_tables(f32p(code[:]), f32p(mid[:]))
	return
}

// nf4Quantize quantises blocks [b0, b1) of src (n elements at dtype dt) into
// codes and absmax; it returns the index of the first non-finite element, or
// -1.
func nf4Quantize(codes []byte, absmax []float32, src []byte, dt tensor.DType, n, b0, b1 int) int {
	_ = codes[(min(64*b1, n)+1)/2-1]
	_ = absmax[b1-1]
	_ = src[n*dt.Size()-1]
	return int(C.q_nf4_quantize(u8p(codes), f32p(absmax), unsafe.Pointer(unsafe.SliceData(src)), C.int(dt),
		C.int64_t(n), C.int64_t(b0), C.int64_t(b1)))
}

// nf4Args are one weight's pointers in C's NF4_ARGS order; absmax is NULL
// when DoubleQuant, which is how the kernels choose the scale.
func nf4Args(q *NF4) (*C.uint8_t, *C.float, *C.uint8_t, *C.float, *C.float, C.float) {
	if !q.DoubleQuant {
		return u8p(q.Codes), f32p(q.Absmax), nil, nil, nil, 0
	}
	return u8p(q.Codes), nil, u8p(q.QAbsmax), f32p(q.Absmax2), (*C.float)(unsafe.Pointer(&q.Map2[0])), C.float(q.Offset)
}

// nf4Dequant sets dst[i] to element e0+i for e0+i < e1.
func nf4Dequant(dst []float32, q *NF4, e0, e1 int) {
	if e1 <= e0 {
		return
	}
	_ = dst[e1-e0-1]
	c, a, qa, a2, m, off := nf4Args(q)
	C.q_nf4_dequant(f32p(dst), c, a, qa, a2, m, off, C.int64_t(e0), C.int64_t(e1), 0)
}

func cbool(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

// nf4DequantTile sets dst[(n-n0)*ldd + k-k0] for rows [n0, n1) and columns
// [k0, k1) (vectorised for whole blocks, any alignment allowed), each value
// rounded to bf16 with bw.
func nf4DequantTile(dst []float32, ldd int, q *NF4, n0, n1, k0, k1 int, bw bool) {
	if n1 <= n0 || k1 <= k0 {
		return
	}
	_ = dst[(n1-n0-1)*ldd+k1-k0-1]
	c, a, qa, a2, m, off := nf4Args(q)
	C.q_nf4_dequant_tile(f32p(dst), C.int64_t(ldd), c, a, qa, a2, m, off, C.int64_t(q.Cols),
		C.int64_t(n0), C.int64_t(n1), C.int64_t(k0), C.int64_t(k1), cbool(bw))
}

// nf4DequantTileBF16 is nf4DequantTile with bw into bf16.
func nf4DequantTileBF16(dst []uint16, ldd int, q *NF4, n0, n1, k0, k1 int) {
	if n1 <= n0 || k1 <= k0 {
		return
	}
	_ = dst[(n1-n0-1)*ldd+k1-k0-1]
	c, a, qa, a2, m, off := nf4Args(q)
	C.q_nf4_dequant_tile_bf16((*C.uint16_t)(unsafe.Pointer(&dst[0])), C.int64_t(ldd), c, a, qa, a2, m, off,
		C.int64_t(q.Cols), C.int64_t(n0), C.int64_t(n1), C.int64_t(k0), C.int64_t(k1))
}

func nf4XPLen(K int) int { return int(C.q_nf4_xp_len(C.int64_t(K))) }

func nf4Prep(xp, x []float32) {
	if len(x) == 0 {
		return
	}
	_ = xp[nf4XPLen(len(x))-1]
	C.q_nf4_prep(f32p(xp), f32p(x), C.int64_t(len(x)))
}

// nf4Matvec sets out[n] = W[n, :]·x for n in [n0, n1); Cols % 64 == 0, xp
// prepared by nf4Prep; with bw each weight is rounded to bf16 first.
func nf4Matvec(out []float32, q *NF4, xp []float32, n0, n1 int, bw bool) {
	if n1 <= n0 {
		return
	}
	_ = out[n1-1]
	_ = xp[q.Cols-1]
	c, a, qa, a2, m, off := nf4Args(q)
	C.q_nf4_matvec(f32p(out), c, a, qa, a2, m, off, f32p(xp), C.int64_t(q.Cols), C.int64_t(n0), C.int64_t(n1), cbool(bw))
}

func q8Quantize(qs []int8, scales []float32, src []byte, dt tensor.DType, n, b0, b1 int) int {
	_ = qs[n-1]
	_ = scales[b1-1]
	_ = src[n*dt.Size()-1]
	return int(C.q_q8_quantize((*C.int8_t)(unsafe.Pointer(unsafe.SliceData(qs))),
		f32p(scales), unsafe.Pointer(unsafe.SliceData(src)),
		C.int(dt), C.int64_t(n), C.int64_t(b0), C.int64_t(b1)))
}

func q8Args(q *Q8) (*C.int8_t, *C.float) {
	return (*C.int8_t)(unsafe.Pointer(unsafe.SliceData(q.Qs))), f32p(q.Scales)
}

func q8Dequant(dst []float32, q *Q8, e0, e1 int) {
	if e1 <= e0 {
		return
	}
	_ = dst[e1-e0-1]
	qs, sc := q8Args(q)
	C.q_q8_dequant(f32p(dst), qs, sc, C.int64_t(e0), C.int64_t(e1))
}

func q8DequantTile(dst []float32, ldd int, q *Q8, n0, n1, k0, k1 int) {
	if n1 <= n0 || k1 <= k0 {
		return
	}
	_ = dst[(n1-n0-1)*ldd+k1-k0-1]
	qs, sc := q8Args(q)
	C.q_q8_dequant_tile(f32p(dst), C.int64_t(ldd), qs, sc, C.int64_t(q.Cols),
		C.int64_t(n0), C.int64_t(n1), C.int64_t(k0), C.int64_t(k1))
}

func q8Matvec(out []float32, q *Q8, x []float32, n0, n1 int) {
	if n1 <= n0 {
		return
	}
	_ = out[n1-1]
	_ = x[q.Cols-1]
	qs, sc := q8Args(q)
	C.q_q8_matvec(f32p(out), qs, sc, f32p(x), C.int64_t(q.Cols), C.int64_t(n0), C.int64_t(n1))
}

// sgemmNT computes c(m, n) = a(m, k) · b(n, k)ᵀ, row-major with leading
// dimensions lda, ldb, ldc, on the calling thread.
func sgemmNT(m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	_ = a[(m-1)*lda+k-1]
	_ = b[(n-1)*ldb+k-1]
	_ = c[(m-1)*ldc+n-1]
	C.cblas_sgemm(C.CblasRowMajor, C.CblasNoTrans, C.CblasTrans, C.blasint(m), C.blasint(n), C.blasint(k),
		1, f32p(a), C.blasint(lda), f32p(b), C.blasint(ldb), 0, f32p(c), C.blasint(ldc))
}

// sgemmNN computes c(m, n) = a(m, k) · b(k, n) + beta·c.
func sgemmNN(m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int, beta float32) {
	if m == 0 || n == 0 {
		return
	}
	_ = a[(m-1)*lda+k-1]
	_ = b[(k-1)*ldb+n-1]
	_ = c[(m-1)*ldc+n-1]
	C.cblas_sgemm(C.CblasRowMajor, C.CblasNoTrans, C.CblasNoTrans, C.blasint(m), C.blasint(n), C.blasint(k),
		1, f32p(a), C.blasint(lda), f32p(b), C.blasint(ldb), C.float(beta), f32p(c), C.blasint(ldc))
}
