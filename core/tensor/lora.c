//go:build cgo

// The LoRA adapter's products in training (core/train's linear layers),
// whose one side is the rank r (8–64): u = x·Aᵀ, and in the backward du =
// s·dy·B with dB += s·dyᵀ·u, dA += duᵀ·x with dx += du·A. OpenBLAS runs
// these skinny shapes at a third of its square GEMMs' rate (85–110 GFLOP/s
// on both cores here against 280–370), and each backward pair reads the
// same (n, out) or (n, in) operand twice; here each pair is one pass that
// reads it once, the rank's vectors in registers. Sums are f32, in another
// order than BLAS's.
#include "kernels.h"
#include "vexp.h"

#include <stddef.h>

// Tokens a chunk (lora_kern.h): fewer for lora_in, whose blocks stream two
// rows a token (x, and out read and written) where lora_out's stream one.
#define LORA_TC_OUT 32
#define LORA_TC_IN 16

// lora_in_tail is lora_in's columns past the last whole vector.
static void lora_in_tail(float *dA, float *out, int add, const float *du, const float *x, int64_t ldx,
                         const float *A, int64_t n, int64_t in, int64_t k0, int64_t k1, int64_t r) {
	for (int64_t t = 0; t < n; t++)
		for (int64_t k = k0; k < k1; k++) {
			float o = add ? out[t * in + k] : 0;
			for (int64_t j = 0; j < r; j++) {
				dA[j * in + k] += du[t * r + j] * x[t * ldx + k];
				o += du[t * r + j] * A[j * in + k];
			}
			out[t * in + k] = o;
		}
}

#if DT_VEXP
#define LV 16
#define LACC 16
#define LATTR T512
#define LNAME(x) x##_512
#include "lora_kern.h"
#undef LV
#undef LACC
#undef LATTR
#undef LNAME

#define LV 8
#define LACC 8
#define LATTR T256
#define LNAME(x) x##_256
#include "lora_kern.h"
#undef LV
#undef LACC
#undef LATTR
#undef LNAME
#endif

// The width that takes rank r: AVX-512 for multiples of 16 up to 64, AVX2
// for multiples of 8 up to 32; 0 (none: the caller uses BLAS) otherwise.
int dt_lora_width(int64_t r) {
#if DT_VEXP
	if (r <= 0) return 0;
	if (dt_level >= DT_AVX512 && r % 16 == 0 && r <= 64) return 16;
	if (dt_level >= DT_AVX2 && r % 8 == 0 && r <= 32) return 8;
#endif
	(void)r;
	return 0;
}

void dt_lora_u(float *u, const float *x, int64_t ldx, const float *at, int64_t n, int64_t in, int64_t r) {
#if DT_VEXP
	switch (dt_lora_width(r)) {
	case 16: lora_u_512(u, x, ldx, at, n, in, r); return;
	case 8: lora_u_256(u, x, ldx, at, n, in, r); return;
	}
#endif
	(void)u, (void)x, (void)ldx, (void)at, (void)n, (void)in, (void)r;
}

void dt_lora_out(float *du, float *dB, const float *dy, int64_t ldy, const float *B, const float *u, float s,
                 int64_t n, int64_t o0, int64_t o1, int64_t r) {
#if DT_VEXP
	switch (dt_lora_width(r)) {
	case 16: lora_out_512(du, dB, dy, ldy, B, u, s, n, o0, o1, r); return;
	case 8: lora_out_256(du, dB, dy, ldy, B, u, s, n, o0, o1, r); return;
	}
#endif
	(void)du, (void)dB, (void)dy, (void)ldy, (void)B, (void)u, (void)s, (void)n, (void)o0, (void)o1, (void)r;
}

void dt_lora_in(float *dA, float *out, int add, const float *du, const float *x, int64_t ldx, const float *A,
                int64_t n, int64_t in, int64_t k0, int64_t k1, int64_t r) {
#if DT_VEXP
	switch (dt_lora_width(r)) {
	case 16: lora_in_512(dA, out, add, du, x, ldx, A, n, in, k0, k1, r); return;
	case 8: lora_in_256(dA, out, add, du, x, ldx, A, n, in, k0, k1, r); return;
	}
#endif
	lora_in_tail(dA, out, add, du, x, ldx, A, n, in, k0, k1, r);
}

// dt_transpose: dst (cols, rows) = src (rows, cols)ᵀ, in 8×8 blocks.
void dt_transpose(float *dst, const float *src, int64_t rows, int64_t cols) {
	for (int64_t i0 = 0; i0 < rows; i0 += 8)
		for (int64_t j0 = 0; j0 < cols; j0 += 8) {
			int64_t i1 = i0 + 8 < rows ? i0 + 8 : rows, j1 = j0 + 8 < cols ? j0 + 8 : cols;
			for (int64_t j = j0; j < j1; j++)
				for (int64_t i = i0; i < i1; i++) dst[j * rows + i] = src[i * cols + j];
		}
}
