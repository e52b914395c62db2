//go:build cgo

package tensor

/*
#cgo CFLAGS: -O3 -std=gnu11
#cgo LDFLAGS: -lopenblas -lm
#include "kernels.h"
#include <cblas.h>

void openblas_set_num_threads(int num_threads);
char *openblas_get_corename(void);
*/
import "C"

import (
	"unsafe"
)

// haveBLAS says whether prefill may call cblas_sgemm.
const haveBLAS = true

func init() {
	C.dt_init()
	C.openblas_set_num_threads(1)
}

// Kernel levels, best first available on this CPU at init.
const (
	levelScalar = C.DT_SCALAR
	levelAVX2   = C.DT_AVX2
	levelAVX512 = C.DT_AVX512
)

// kernelLevel reports the kernels in use; setKernelLevel forces a lower level
// (capped at what the CPU has) and returns the one in effect. For tests and
// benchmarks: not safe while kernels run.
func kernelLevel() int          { return int(C.dt_get_level()) }
func setKernelLevel(l int) int  { return int(C.dt_set_level(C.int(l))) }
func blasCoreName() string      { return C.GoString(C.openblas_get_corename()) }
func setBLASThreads(n int)      { C.openblas_set_num_threads(C.int(n)) }
func f32p(s []float32) *C.float { return (*C.float)(unsafe.Pointer(unsafe.SliceData(s))) }

// xpLen is the length of the scratch that matvecPrep fills from x (len K).
func xpLen(K int) int { return int(C.dt_xp_len(C.int64_t(K))) }

func matvecPrep(xp, x []float32, dt DType) {
	C.dt_matvec_prep(f32p(xp), f32p(x), C.int64_t(len(x)), C.int(dt))
}

// matvecRows sets out[n] = W[n,:]·x for n in [n0, n1); out is indexed by row
// (len ≥ n1), xp was prepared by matvecPrep.
func matvecRows(out []float32, w *Tensor, x, xp []float32, n0, n1 int) {
	if n1 <= n0 {
		return
	}
	K := w.Cols()
	_ = out[n1-1]
	_ = w.Data[n1*K*w.DType.Size()-1]
	C.dt_matvec(f32p(out), unsafe.Pointer(unsafe.SliceData(w.Data)), f32p(x), f32p(xp),
		C.int64_t(n0), C.int64_t(n1), C.int64_t(K), C.int(w.DType))
}

// widen sets dst[i] = f32(src[i]) for i < len(dst); src is at dtype dt.
func widen(dst []float32, dt DType, src []byte) {
	if dt > BF16 {
		panic("tensor: widen of unsupported dtype " + dt.String())
	}
	if len(dst) == 0 {
		return
	}
	_ = src[len(dst)*dt.Size()-1]
	C.dt_widen(f32p(dst), unsafe.Pointer(unsafe.SliceData(src)), C.int64_t(len(dst)), C.int(dt))
}

// sgemmNT computes c(m, n) = a(m, k) · b(n, k)ᵀ, row-major with leading
// dimensions lda, ldb, ldc, on the calling thread's OpenBLAS.
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

func rmsNormRows(out, x, weight []float32, eps float32) {
	d := len(weight)
	rows := len(x) / d
	if rows == 0 {
		return
	}
	_ = out[rows*d-1]
	C.dt_rmsnorm(f32p(out), f32p(x), f32p(weight), C.int64_t(rows), C.int64_t(d), C.float(eps))
}

func swiGLUKernel(gate, up []float32) {
	if len(gate) == 0 {
		return
	}
	_ = up[len(gate)-1]
	C.dt_swiglu(f32p(gate), f32p(up), C.int64_t(len(gate)))
}

func addKernel(dst, src []float32) {
	if len(dst) == 0 {
		return
	}
	_ = src[len(dst)-1]
	C.dt_add(f32p(dst), f32p(src), C.int64_t(len(dst)))
}

// attnKernel runs attention for g query heads (rows of q and out, qStride
// apart) over the n keys and values (rows of k and v, kvStride apart) of one
// KV head; scores is a scratch of g*n floats. roundP rounds the softmax's
// weights to bf16 before they multiply v (CPU.BF16Attention).
func attnKernel(out, q, k, v []float32, g, qStride, n, kvStride, hd int, scale float32, scores []float32, roundP bool) {
	_ = out[(g-1)*qStride+hd-1]
	_ = q[(g-1)*qStride+hd-1]
	_ = k[(n-1)*kvStride+hd-1]
	_ = v[(n-1)*kvStride+hd-1]
	_ = scores[g*n-1]
	C.dt_attn(f32p(out), f32p(q), unsafe.Pointer(unsafe.SliceData(k)), unsafe.Pointer(unsafe.SliceData(v)), C.int64_t(g), C.int64_t(qStride),
		C.int64_t(n), C.int64_t(kvStride), C.int64_t(hd), C.float(scale), f32p(scores), cbool(roundP), 0)
}

// attnKernel16 is attnKernel over a bf16 cache: k and v's values are
// widened exactly as they are read; scores holds attnWide(hd) floats
// more, for the widened rows.
func attnKernel16(out, q []float32, k, v []uint16, g, qStride, n, kvStride, hd int, scale float32, scores []float32, roundP bool) {
	_ = out[(g-1)*qStride+hd-1]
	_ = q[(g-1)*qStride+hd-1]
	_ = k[(n-1)*kvStride+hd-1]
	_ = v[(n-1)*kvStride+hd-1]
	_ = scores[g*n+attnWide(hd)-1]
	C.dt_attn(f32p(out), f32p(q), unsafe.Pointer(unsafe.SliceData(k)), unsafe.Pointer(unsafe.SliceData(v)), C.int64_t(g), C.int64_t(qStride),
		C.int64_t(n), C.int64_t(kvStride), C.int64_t(hd), C.float(scale), f32p(scores), cbool(roundP), 1)
}

// attnWide is the scratch attnKernel16 widens a bf16 cache's rows into
// (a few blocks of rows at a time, whatever the keys).
func attnWide(hd int) int { return int(C.dt_attn_wide(C.int64_t(hd))) }

// sumBytes reads b (len a multiple of 64) and returns a checksum.
func sumBytes(b []byte) uint64 {
	return uint64(C.dt_sum_bytes(unsafe.Pointer(unsafe.SliceData(b)), C.int64_t(len(b))))
}

func swiGLUFwdKernel(a, g, u []float32) {
	if len(a) > 0 {
		C.dt_swiglu_fwd(f32p(a), f32p(g), f32p(u), C.int64_t(len(a)))
	}
}

func swiGLUBwdKernel(dg, du, da, g, u []float32) {
	if len(da) > 0 {
		C.dt_swiglu_bwd(f32p(dg), f32p(du), f32p(da), f32p(g), f32p(u), C.int64_t(len(da)))
	}
}

func softmaxKernel(row []float32) float64 {
	return float64(C.dt_softmax(f32p(row), C.int64_t(len(row))))
}

// softmaxCausalKernel is dt_softmax_causal: rows of s (ld apart) with
// n0 + r%m keys each, scaled by scale first.
func softmaxCausalKernel(s []float32, rows, ld, n0, m int, scale float32) {
	if rows == 0 {
		return
	}
	if n0 < 1 || n0+m-1 > ld {
		panic("tensor: softmaxCausalKernel's rows exceed their length")
	}
	_ = s[rows*ld-1]
	C.dt_softmax_causal(f32p(s), C.int64_t(rows), C.int64_t(ld), C.int64_t(n0), C.int64_t(m), C.float(scale))
}

// softmaxCausalBF16Kernel is softmaxCausalKernel with the weights written
// to p in bf16 (rows ldp apart, zero-padded), and with lse (nil: none) each
// row's log-sum-exp to lse[r·lseStride]; s is left as scratch.
func softmaxCausalBF16Kernel(s []float32, p []uint16, rows, ld, ldp, n0, m int, scale float32, lse []float32, lseStride int) {
	if rows == 0 {
		return
	}
	if n0 < 1 || n0+m-1 > ld || ldp < ld {
		panic("tensor: softmaxCausalBF16Kernel's rows exceed their length")
	}
	_, _ = s[rows*ld-1], p[rows*ldp-1]
	var lp *C.float
	if lse != nil {
		_ = lse[(rows-1)*lseStride]
		lp = f32p(lse)
	}
	C.dt_softmax_causal_bf16(f32p(s), u16p(p), C.int64_t(rows), C.int64_t(ld), C.int64_t(ldp), C.int64_t(n0),
		C.int64_t(m), C.float(scale), lp, C.int64_t(lseStride))
}

func attnBwdRowKernel(p, ds []float32, l, d, scale, pscale float32) {
	C.dt_attn_bwd_row(f32p(p), f32p(ds), C.int64_t(len(p)), C.float(l), C.float(d), C.float(scale), C.float(pscale))
}

func rmsNormFwdKernel(out, rstd, x, w []float32, eps float32) {
	if len(rstd) > 0 && len(w) > 0 {
		C.dt_rmsnorm_fwd(f32p(out), f32p(rstd), f32p(x), f32p(w), C.int64_t(len(rstd)), C.int64_t(len(w)), C.float(eps))
	}
}

func rmsNormBwdKernel(dx, dy, x, w, rstd []float32) {
	if len(rstd) > 0 && len(w) > 0 {
		C.dt_rmsnorm_bwd(f32p(dx), f32p(dy), f32p(x), f32p(w), f32p(rstd), C.int64_t(len(rstd)), C.int64_t(len(w)))
	}
}

func loraWidth(r int) int { return int(C.dt_lora_width(C.int64_t(r))) }

func loraU(u, x, at []float32, n, in, r int) {
	C.dt_lora_u(f32p(u), f32p(x), C.int64_t(in), f32p(at), C.int64_t(n), C.int64_t(in), C.int64_t(r))
}

func loraOut(du, dB, dy, B, u []float32, s float32, n, out, o0, o1, r int) {
	C.dt_lora_out(f32p(du), f32p(dB), f32p(dy), C.int64_t(out), f32p(B), f32p(u), C.float(s), C.int64_t(n),
		C.int64_t(o0), C.int64_t(o1), C.int64_t(r))
}

func loraIn(dA, out []float32, add bool, du, x, A []float32, n, in, k0, k1, r int) {
	C.dt_lora_in(f32p(dA), f32p(out), cbool(add), f32p(du), f32p(x), C.int64_t(in), f32p(A), C.int64_t(n),
		C.int64_t(in), C.int64_t(k0), C.int64_t(k1), C.int64_t(r))
}

func transposeF32(dst, src []float32, rows, cols int) {
	C.dt_transpose(f32p(dst), f32p(src), C.int64_t(rows), C.int64_t(cols))
}
