//go:build cgo

// Decode matvec: out(n) = W(n, K) · x(K) with W at BF16, F16 or F32, read
// once from memory, each product and sum in f32. Four rows share each load
// of x; two accumulators per row hide the FMA latency. The kernels are
// memory-bound on matrices larger than L2: they exist to keep the load
// ports streaming while widening costs a shift (BF16) or a vcvtph2ps (F16).
#include "kernels.h"
#include "halfconv.h"

#include <string.h>

#if (defined(__x86_64__) || defined(__i386__)) && !defined(DT_NO_X86)
#define DT_X86 1
#include <immintrin.h>
#endif

static int dt_level_best = DT_SCALAR;
int dt_level = DT_SCALAR;

int dt_init(void) {
#if DT_X86
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw"))
		dt_level_best = DT_AVX512;
	else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
	         __builtin_cpu_supports("f16c"))
		dt_level_best = DT_AVX2;
#endif
	dt_level = dt_level_best;
	return dt_level;
}

int dt_set_level(int level) {
	if (level > dt_level_best) level = dt_level_best;
	if (level < DT_SCALAR) level = DT_SCALAR;
	dt_level = level;
	return dt_level;
}

int dt_get_level(void) { return dt_level; }

// ---- scalar ----------------------------------------------------------------


static float dot_row_scalar(const void *w, int64_t n, const float *x, int64_t k0, int64_t K, int dt) {
	float s = 0;
	switch (dt) {
	case DT_F32: {
		const float *r = (const float *)w + n * K;
		for (int64_t k = k0; k < K; k++) s += r[k] * x[k];
		break;
	}
	case DT_BF16: {
		const uint16_t *r = (const uint16_t *)w + n * K;
		for (int64_t k = k0; k < K; k++) s += bf16_f32(r[k]) * x[k];
		break;
	}
	case DT_F16: {
		const uint16_t *r = (const uint16_t *)w + n * K;
		for (int64_t k = k0; k < K; k++) s += f16_f32(r[k]) * x[k];
		break;
	}
	}
	return s;
}

static void widen_scalar(float *dst, const void *src, int64_t n, int dt) {
	const uint16_t *h = (const uint16_t *)src;
	switch (dt) {
	case DT_F32:
		memcpy(dst, src, (size_t)n * 4);
		break;
	case DT_BF16:
		for (int64_t i = 0; i < n; i++) dst[i] = bf16_f32(h[i]);
		break;
	case DT_F16:
		for (int64_t i = 0; i < n; i++) dst[i] = f16_f32(h[i]);
		break;
	}
}

#if DT_X86

// ---- AVX-512 ---------------------------------------------------------------

#define T512 __attribute__((target("avx512f,avx512bw,fma,f16c")))

// The four-row kernels read four streams 2K bytes apart, which the hardware
// prefetchers follow poorly (half the read bandwidth from DRAM on Zen 4);
// prefetching each line into L2 eight rows (two blocks) ahead restores it.
// Measured: 8 to 16 rows ahead are equal; into L1 (T0) does not help.
#define PF_ROWS 8
#define PF(p) _mm_prefetch((const char *)(p), _MM_HINT_T1)
#define PF4(k)                          \
	do {                                \
		PF(r0 + (k) + PF_ROWS * K); \
		PF(r1 + (k) + PF_ROWS * K); \
		PF(r2 + (k) + PF_ROWS * K); \
		PF(r3 + (k) + PF_ROWS * K); \
	} while (0)

// BF16 rows are consumed 32 elements (one zmm) at a time: a 32-bit lane holds
// bf16 k=2i in its low half and k=2i+1 in its high half, so a shift left by 16
// widens the even elements and masking the low half widens the odd ones,
// exactly. xp holds x de-interleaved to match: per block of 32, the 16 even
// elements then the 16 odd ones.
T512 static void prep_bf16_512(float *xp, const float *x, int64_t K) {
	int64_t kb = K & ~(int64_t)31;
	for (int64_t b = 0; b < kb; b += 32)
		for (int i = 0; i < 16; i++) {
			xp[b + i] = x[b + 2 * i];
			xp[b + 16 + i] = x[b + 2 * i + 1];
		}
}

T512 static inline __m512 bf16_even(__m512i v) { return _mm512_castsi512_ps(_mm512_slli_epi32(v, 16)); }
T512 static inline __m512 bf16_odd(__m512i v) {
	return _mm512_castsi512_ps(_mm512_and_si512(v, _mm512_set1_epi32((int)0xffff0000u)));
}

T512 static void matvec_bf16_512(float *out, const uint16_t *w, const float *x, const float *xp,
                                 int64_t n0, int64_t n1, int64_t K) {
	int64_t kb = K & ~(int64_t)31;
	int64_t n = n0;
	for (; n + 4 <= n1; n += 4) {
		const uint16_t *r0 = w + n * K, *r1 = r0 + K, *r2 = r1 + K, *r3 = r2 + K;
		__m512 a0 = _mm512_setzero_ps(), b0 = _mm512_setzero_ps();
		__m512 a1 = _mm512_setzero_ps(), b1 = _mm512_setzero_ps();
		__m512 a2 = _mm512_setzero_ps(), b2 = _mm512_setzero_ps();
		__m512 a3 = _mm512_setzero_ps(), b3 = _mm512_setzero_ps();
		for (int64_t k = 0; k < kb; k += 32) {
			__m512 xe = _mm512_loadu_ps(xp + k), xo = _mm512_loadu_ps(xp + k + 16);
			PF4(k);
			__m512i v0 = _mm512_loadu_si512(r0 + k);
			__m512i v1 = _mm512_loadu_si512(r1 + k);
			__m512i v2 = _mm512_loadu_si512(r2 + k);
			__m512i v3 = _mm512_loadu_si512(r3 + k);
			a0 = _mm512_fmadd_ps(bf16_even(v0), xe, a0);
			b0 = _mm512_fmadd_ps(bf16_odd(v0), xo, b0);
			a1 = _mm512_fmadd_ps(bf16_even(v1), xe, a1);
			b1 = _mm512_fmadd_ps(bf16_odd(v1), xo, b1);
			a2 = _mm512_fmadd_ps(bf16_even(v2), xe, a2);
			b2 = _mm512_fmadd_ps(bf16_odd(v2), xo, b2);
			a3 = _mm512_fmadd_ps(bf16_even(v3), xe, a3);
			b3 = _mm512_fmadd_ps(bf16_odd(v3), xo, b3);
		}
		out[n] = _mm512_reduce_add_ps(_mm512_add_ps(a0, b0)) + dot_row_scalar(w, n, x, kb, K, DT_BF16);
		out[n + 1] = _mm512_reduce_add_ps(_mm512_add_ps(a1, b1)) + dot_row_scalar(w, n + 1, x, kb, K, DT_BF16);
		out[n + 2] = _mm512_reduce_add_ps(_mm512_add_ps(a2, b2)) + dot_row_scalar(w, n + 2, x, kb, K, DT_BF16);
		out[n + 3] = _mm512_reduce_add_ps(_mm512_add_ps(a3, b3)) + dot_row_scalar(w, n + 3, x, kb, K, DT_BF16);
	}
	for (; n < n1; n++) {
		const uint16_t *r0 = w + n * K;
		__m512 a0 = _mm512_setzero_ps(), b0 = _mm512_setzero_ps();
		for (int64_t k = 0; k < kb; k += 32) {
			__m512i v0 = _mm512_loadu_si512(r0 + k);
			a0 = _mm512_fmadd_ps(bf16_even(v0), _mm512_loadu_ps(xp + k), a0);
			b0 = _mm512_fmadd_ps(bf16_odd(v0), _mm512_loadu_ps(xp + k + 16), b0);
		}
		out[n] = _mm512_reduce_add_ps(_mm512_add_ps(a0, b0)) + dot_row_scalar(w, n, x, kb, K, DT_BF16);
	}
}

T512 static inline __m512 f16_load(const uint16_t *p) {
	return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
}

T512 static void matvec_f16_512(float *out, const uint16_t *w, const float *x, int64_t n0, int64_t n1, int64_t K) {
	int64_t kb = K & ~(int64_t)31;
	int64_t n = n0;
	for (; n + 4 <= n1; n += 4) {
		const uint16_t *r0 = w + n * K, *r1 = r0 + K, *r2 = r1 + K, *r3 = r2 + K;
		__m512 a0 = _mm512_setzero_ps(), b0 = _mm512_setzero_ps();
		__m512 a1 = _mm512_setzero_ps(), b1 = _mm512_setzero_ps();
		__m512 a2 = _mm512_setzero_ps(), b2 = _mm512_setzero_ps();
		__m512 a3 = _mm512_setzero_ps(), b3 = _mm512_setzero_ps();
		for (int64_t k = 0; k < kb; k += 32) {
			__m512 xl = _mm512_loadu_ps(x + k), xh = _mm512_loadu_ps(x + k + 16);
			PF4(k);
			a0 = _mm512_fmadd_ps(f16_load(r0 + k), xl, a0);
			b0 = _mm512_fmadd_ps(f16_load(r0 + k + 16), xh, b0);
			a1 = _mm512_fmadd_ps(f16_load(r1 + k), xl, a1);
			b1 = _mm512_fmadd_ps(f16_load(r1 + k + 16), xh, b1);
			a2 = _mm512_fmadd_ps(f16_load(r2 + k), xl, a2);
			b2 = _mm512_fmadd_ps(f16_load(r2 + k + 16), xh, b2);
			a3 = _mm512_fmadd_ps(f16_load(r3 + k), xl, a3);
			b3 = _mm512_fmadd_ps(f16_load(r3 + k + 16), xh, b3);
		}
		out[n] = _mm512_reduce_add_ps(_mm512_add_ps(a0, b0)) + dot_row_scalar(w, n, x, kb, K, DT_F16);
		out[n + 1] = _mm512_reduce_add_ps(_mm512_add_ps(a1, b1)) + dot_row_scalar(w, n + 1, x, kb, K, DT_F16);
		out[n + 2] = _mm512_reduce_add_ps(_mm512_add_ps(a2, b2)) + dot_row_scalar(w, n + 2, x, kb, K, DT_F16);
		out[n + 3] = _mm512_reduce_add_ps(_mm512_add_ps(a3, b3)) + dot_row_scalar(w, n + 3, x, kb, K, DT_F16);
	}
	for (; n < n1; n++) {
		const uint16_t *r0 = w + n * K;
		__m512 a0 = _mm512_setzero_ps(), b0 = _mm512_setzero_ps();
		for (int64_t k = 0; k < kb; k += 32) {
			a0 = _mm512_fmadd_ps(f16_load(r0 + k), _mm512_loadu_ps(x + k), a0);
			b0 = _mm512_fmadd_ps(f16_load(r0 + k + 16), _mm512_loadu_ps(x + k + 16), b0);
		}
		out[n] = _mm512_reduce_add_ps(_mm512_add_ps(a0, b0)) + dot_row_scalar(w, n, x, kb, K, DT_F16);
	}
}

T512 static void matvec_f32_512(float *out, const float *w, const float *x, int64_t n0, int64_t n1, int64_t K) {
	int64_t kb = K & ~(int64_t)31;
	int64_t n = n0;
	for (; n + 4 <= n1; n += 4) {
		const float *r0 = w + n * K, *r1 = r0 + K, *r2 = r1 + K, *r3 = r2 + K;
		__m512 a0 = _mm512_setzero_ps(), b0 = _mm512_setzero_ps();
		__m512 a1 = _mm512_setzero_ps(), b1 = _mm512_setzero_ps();
		__m512 a2 = _mm512_setzero_ps(), b2 = _mm512_setzero_ps();
		__m512 a3 = _mm512_setzero_ps(), b3 = _mm512_setzero_ps();
		for (int64_t k = 0; k < kb; k += 32) {
			__m512 xl = _mm512_loadu_ps(x + k), xh = _mm512_loadu_ps(x + k + 16);
			PF4(k);
			PF4(k + 16);
			a0 = _mm512_fmadd_ps(_mm512_loadu_ps(r0 + k), xl, a0);
			b0 = _mm512_fmadd_ps(_mm512_loadu_ps(r0 + k + 16), xh, b0);
			a1 = _mm512_fmadd_ps(_mm512_loadu_ps(r1 + k), xl, a1);
			b1 = _mm512_fmadd_ps(_mm512_loadu_ps(r1 + k + 16), xh, b1);
			a2 = _mm512_fmadd_ps(_mm512_loadu_ps(r2 + k), xl, a2);
			b2 = _mm512_fmadd_ps(_mm512_loadu_ps(r2 + k + 16), xh, b2);
			a3 = _mm512_fmadd_ps(_mm512_loadu_ps(r3 + k), xl, a3);
			b3 = _mm512_fmadd_ps(_mm512_loadu_ps(r3 + k + 16), xh, b3);
		}
		out[n] = _mm512_reduce_add_ps(_mm512_add_ps(a0, b0)) + dot_row_scalar(w, n, x, kb, K, DT_F32);
		out[n + 1] = _mm512_reduce_add_ps(_mm512_add_ps(a1, b1)) + dot_row_scalar(w, n + 1, x, kb, K, DT_F32);
		out[n + 2] = _mm512_reduce_add_ps(_mm512_add_ps(a2, b2)) + dot_row_scalar(w, n + 2, x, kb, K, DT_F32);
		out[n + 3] = _mm512_reduce_add_ps(_mm512_add_ps(a3, b3)) + dot_row_scalar(w, n + 3, x, kb, K, DT_F32);
	}
	for (; n < n1; n++) {
		const float *r0 = w + n * K;
		__m512 a0 = _mm512_setzero_ps(), b0 = _mm512_setzero_ps();
		for (int64_t k = 0; k < kb; k += 32) {
			a0 = _mm512_fmadd_ps(_mm512_loadu_ps(r0 + k), _mm512_loadu_ps(x + k), a0);
			b0 = _mm512_fmadd_ps(_mm512_loadu_ps(r0 + k + 16), _mm512_loadu_ps(x + k + 16), b0);
		}
		out[n] = _mm512_reduce_add_ps(_mm512_add_ps(a0, b0)) + dot_row_scalar(w, n, x, kb, K, DT_F32);
	}
}

T512 static void widen_512(float *dst, const void *src, int64_t n, int dt) {
	const uint16_t *h = (const uint16_t *)src;
	int64_t i = 0;
	switch (dt) {
	case DT_BF16:
		for (; i + 16 <= n; i += 16) {
			__m512i v = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(h + i)));
			_mm512_storeu_ps(dst + i, _mm512_castsi512_ps(_mm512_slli_epi32(v, 16)));
		}
		break;
	case DT_F16:
		for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, f16_load(h + i));
		break;
	default:
		memcpy(dst, src, (size_t)n * 4);
		return;
	}
	widen_scalar(dst + i, h + i, n - i, dt);
}

// ---- AVX2 + FMA + F16C -----------------------------------------------------

#define T256 __attribute__((target("avx2,fma,f16c")))

// As the AVX-512 BF16 kernel, in blocks of 16: per block the 8 even elements
// of x, then the 8 odd ones.
T256 static void prep_bf16_256(float *xp, const float *x, int64_t K) {
	int64_t kb = K & ~(int64_t)15;
	for (int64_t b = 0; b < kb; b += 16)
		for (int i = 0; i < 8; i++) {
			xp[b + i] = x[b + 2 * i];
			xp[b + 8 + i] = x[b + 2 * i + 1];
		}
}

T256 static inline float hsum256(__m256 v) {
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

T256 static inline __m256 bf16_even256(__m256i v) { return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16)); }
T256 static inline __m256 bf16_odd256(__m256i v) {
	return _mm256_castsi256_ps(_mm256_and_si256(v, _mm256_set1_epi32((int)0xffff0000u)));
}

T256 static void matvec_bf16_256(float *out, const uint16_t *w, const float *x, const float *xp,
                                 int64_t n0, int64_t n1, int64_t K) {
	int64_t kb = K & ~(int64_t)15;
	int64_t n = n0;
	for (; n + 4 <= n1; n += 4) {
		const uint16_t *r0 = w + n * K, *r1 = r0 + K, *r2 = r1 + K, *r3 = r2 + K;
		__m256 a0 = _mm256_setzero_ps(), b0 = _mm256_setzero_ps();
		__m256 a1 = _mm256_setzero_ps(), b1 = _mm256_setzero_ps();
		__m256 a2 = _mm256_setzero_ps(), b2 = _mm256_setzero_ps();
		__m256 a3 = _mm256_setzero_ps(), b3 = _mm256_setzero_ps();
		for (int64_t k = 0; k < kb; k += 16) {
			__m256 xe = _mm256_loadu_ps(xp + k), xo = _mm256_loadu_ps(xp + k + 8);
			if ((k & 31) == 0) PF4(k);
			__m256i v0 = _mm256_loadu_si256((const __m256i *)(r0 + k));
			__m256i v1 = _mm256_loadu_si256((const __m256i *)(r1 + k));
			__m256i v2 = _mm256_loadu_si256((const __m256i *)(r2 + k));
			__m256i v3 = _mm256_loadu_si256((const __m256i *)(r3 + k));
			a0 = _mm256_fmadd_ps(bf16_even256(v0), xe, a0);
			b0 = _mm256_fmadd_ps(bf16_odd256(v0), xo, b0);
			a1 = _mm256_fmadd_ps(bf16_even256(v1), xe, a1);
			b1 = _mm256_fmadd_ps(bf16_odd256(v1), xo, b1);
			a2 = _mm256_fmadd_ps(bf16_even256(v2), xe, a2);
			b2 = _mm256_fmadd_ps(bf16_odd256(v2), xo, b2);
			a3 = _mm256_fmadd_ps(bf16_even256(v3), xe, a3);
			b3 = _mm256_fmadd_ps(bf16_odd256(v3), xo, b3);
		}
		out[n] = hsum256(_mm256_add_ps(a0, b0)) + dot_row_scalar(w, n, x, kb, K, DT_BF16);
		out[n + 1] = hsum256(_mm256_add_ps(a1, b1)) + dot_row_scalar(w, n + 1, x, kb, K, DT_BF16);
		out[n + 2] = hsum256(_mm256_add_ps(a2, b2)) + dot_row_scalar(w, n + 2, x, kb, K, DT_BF16);
		out[n + 3] = hsum256(_mm256_add_ps(a3, b3)) + dot_row_scalar(w, n + 3, x, kb, K, DT_BF16);
	}
	for (; n < n1; n++) {
		const uint16_t *r0 = w + n * K;
		__m256 a0 = _mm256_setzero_ps(), b0 = _mm256_setzero_ps();
		for (int64_t k = 0; k < kb; k += 16) {
			__m256i v0 = _mm256_loadu_si256((const __m256i *)(r0 + k));
			a0 = _mm256_fmadd_ps(bf16_even256(v0), _mm256_loadu_ps(xp + k), a0);
			b0 = _mm256_fmadd_ps(bf16_odd256(v0), _mm256_loadu_ps(xp + k + 8), b0);
		}
		out[n] = hsum256(_mm256_add_ps(a0, b0)) + dot_row_scalar(w, n, x, kb, K, DT_BF16);
	}
}

T256 static inline __m256 f16_load256(const uint16_t *p) {
	return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

T256 static void matvec_f16_256(float *out, const uint16_t *w, const float *x, int64_t n0, int64_t n1, int64_t K) {
	int64_t kb = K & ~(int64_t)15;
	int64_t n = n0;
	for (; n + 4 <= n1; n += 4) {
		const uint16_t *r0 = w + n * K, *r1 = r0 + K, *r2 = r1 + K, *r3 = r2 + K;
		__m256 a0 = _mm256_setzero_ps(), b0 = _mm256_setzero_ps();
		__m256 a1 = _mm256_setzero_ps(), b1 = _mm256_setzero_ps();
		__m256 a2 = _mm256_setzero_ps(), b2 = _mm256_setzero_ps();
		__m256 a3 = _mm256_setzero_ps(), b3 = _mm256_setzero_ps();
		for (int64_t k = 0; k < kb; k += 16) {
			__m256 xl = _mm256_loadu_ps(x + k), xh = _mm256_loadu_ps(x + k + 8);
			if ((k & 31) == 0) PF4(k);
			a0 = _mm256_fmadd_ps(f16_load256(r0 + k), xl, a0);
			b0 = _mm256_fmadd_ps(f16_load256(r0 + k + 8), xh, b0);
			a1 = _mm256_fmadd_ps(f16_load256(r1 + k), xl, a1);
			b1 = _mm256_fmadd_ps(f16_load256(r1 + k + 8), xh, b1);
			a2 = _mm256_fmadd_ps(f16_load256(r2 + k), xl, a2);
			b2 = _mm256_fmadd_ps(f16_load256(r2 + k + 8), xh, b2);
			a3 = _mm256_fmadd_ps(f16_load256(r3 + k), xl, a3);
			b3 = _mm256_fmadd_ps(f16_load256(r3 + k + 8), xh, b3);
		}
		out[n] = hsum256(_mm256_add_ps(a0, b0)) + dot_row_scalar(w, n, x, kb, K, DT_F16);
		out[n + 1] = hsum256(_mm256_add_ps(a1, b1)) + dot_row_scalar(w, n + 1, x, kb, K, DT_F16);
		out[n + 2] = hsum256(_mm256_add_ps(a2, b2)) + dot_row_scalar(w, n + 2, x, kb, K, DT_F16);
		out[n + 3] = hsum256(_mm256_add_ps(a3, b3)) + dot_row_scalar(w, n + 3, x, kb, K, DT_F16);
	}
	for (; n < n1; n++) {
		const uint16_t *r0 = w + n * K;
		__m256 a0 = _mm256_setzero_ps(), b0 = _mm256_setzero_ps();
		for (int64_t k = 0; k < kb; k += 16) {
			a0 = _mm256_fmadd_ps(f16_load256(r0 + k), _mm256_loadu_ps(x + k), a0);
			b0 = _mm256_fmadd_ps(f16_load256(r0 + k + 8), _mm256_loadu_ps(x + k + 8), b0);
		}
		out[n] = hsum256(_mm256_add_ps(a0, b0)) + dot_row_scalar(w, n, x, kb, K, DT_F16);
	}
}

T256 static void matvec_f32_256(float *out, const float *w, const float *x, int64_t n0, int64_t n1, int64_t K) {
	int64_t kb = K & ~(int64_t)15;
	int64_t n = n0;
	for (; n + 4 <= n1; n += 4) {
		const float *r0 = w + n * K, *r1 = r0 + K, *r2 = r1 + K, *r3 = r2 + K;
		__m256 a0 = _mm256_setzero_ps(), b0 = _mm256_setzero_ps();
		__m256 a1 = _mm256_setzero_ps(), b1 = _mm256_setzero_ps();
		__m256 a2 = _mm256_setzero_ps(), b2 = _mm256_setzero_ps();
		__m256 a3 = _mm256_setzero_ps(), b3 = _mm256_setzero_ps();
		for (int64_t k = 0; k < kb; k += 16) {
			__m256 xl = _mm256_loadu_ps(x + k), xh = _mm256_loadu_ps(x + k + 8);
			PF4(k);
			a0 = _mm256_fmadd_ps(_mm256_loadu_ps(r0 + k), xl, a0);
			b0 = _mm256_fmadd_ps(_mm256_loadu_ps(r0 + k + 8), xh, b0);
			a1 = _mm256_fmadd_ps(_mm256_loadu_ps(r1 + k), xl, a1);
			b1 = _mm256_fmadd_ps(_mm256_loadu_ps(r1 + k + 8), xh, b1);
			a2 = _mm256_fmadd_ps(_mm256_loadu_ps(r2 + k), xl, a2);
			b2 = _mm256_fmadd_ps(_mm256_loadu_ps(r2 + k + 8), xh, b2);
			a3 = _mm256_fmadd_ps(_mm256_loadu_ps(r3 + k), xl, a3);
			b3 = _mm256_fmadd_ps(_mm256_loadu_ps(r3 + k + 8), xh, b3);
		}
		out[n] = hsum256(_mm256_add_ps(a0, b0)) + dot_row_scalar(w, n, x, kb, K, DT_F32);
		out[n + 1] = hsum256(_mm256_add_ps(a1, b1)) + dot_row_scalar(w, n + 1, x, kb, K, DT_F32);
		out[n + 2] = hsum256(_mm256_add_ps(a2, b2)) + dot_row_scalar(w, n + 2, x, kb, K, DT_F32);
		out[n + 3] = hsum256(_mm256_add_ps(a3, b3)) + dot_row_scalar(w, n + 3, x, kb, K, DT_F32);
	}
	for (; n < n1; n++) {
		const float *r0 = w + n * K;
		__m256 a0 = _mm256_setzero_ps(), b0 = _mm256_setzero_ps();
		for (int64_t k = 0; k < kb; k += 16) {
			a0 = _mm256_fmadd_ps(_mm256_loadu_ps(r0 + k), _mm256_loadu_ps(x + k), a0);
			b0 = _mm256_fmadd_ps(_mm256_loadu_ps(r0 + k + 8), _mm256_loadu_ps(x + k + 8), b0);
		}
		out[n] = hsum256(_mm256_add_ps(a0, b0)) + dot_row_scalar(w, n, x, kb, K, DT_F32);
	}
}

T256 static void widen_256(float *dst, const void *src, int64_t n, int dt) {
	const uint16_t *h = (const uint16_t *)src;
	int64_t i = 0;
	switch (dt) {
	case DT_BF16:
		for (; i + 8 <= n; i += 8) {
			__m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(h + i)));
			_mm256_storeu_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(v, 16)));
		}
		break;
	case DT_F16:
		for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, f16_load256(h + i));
		break;
	default:
		memcpy(dst, src, (size_t)n * 4);
		return;
	}
	widen_scalar(dst + i, h + i, n - i, dt);
}

T512 static uint64_t sum_bytes_512(const void *p, int64_t n) {
	const char *c = (const char *)p;
	__m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
	int64_t i = 0;
	for (; i + 256 <= n; i += 256) {
		a0 = _mm512_add_epi64(a0, _mm512_loadu_si512(c + i));
		a1 = _mm512_add_epi64(a1, _mm512_loadu_si512(c + i + 64));
		a2 = _mm512_add_epi64(a2, _mm512_loadu_si512(c + i + 128));
		a3 = _mm512_add_epi64(a3, _mm512_loadu_si512(c + i + 192));
	}
	for (; i + 64 <= n; i += 64) a0 = _mm512_add_epi64(a0, _mm512_loadu_si512(c + i));
	a0 = _mm512_add_epi64(_mm512_add_epi64(a0, a1), _mm512_add_epi64(a2, a3));
	return (uint64_t)_mm512_reduce_add_epi64(a0);
}

T256 static uint64_t sum_bytes_256(const void *p, int64_t n) {
	const char *c = (const char *)p;
	__m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
	int64_t i = 0;
	for (; i + 128 <= n; i += 128) {
		a0 = _mm256_add_epi64(a0, _mm256_loadu_si256((const __m256i *)(c + i)));
		a1 = _mm256_add_epi64(a1, _mm256_loadu_si256((const __m256i *)(c + i + 32)));
		a2 = _mm256_add_epi64(a2, _mm256_loadu_si256((const __m256i *)(c + i + 64)));
		a3 = _mm256_add_epi64(a3, _mm256_loadu_si256((const __m256i *)(c + i + 96)));
	}
	for (; i + 32 <= n; i += 32) a0 = _mm256_add_epi64(a0, _mm256_loadu_si256((const __m256i *)(c + i)));
	a0 = _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3));
	uint64_t l[4];
	_mm256_storeu_si256((__m256i *)l, a0);
	return l[0] + l[1] + l[2] + l[3];
}

#endif // DT_X86

// ---- dispatch --------------------------------------------------------------

size_t dt_xp_len(int64_t K) { return (size_t)(K + 32); }

void dt_matvec_prep(float *xp, const float *x, int64_t K, int dt) {
	if (dt != DT_BF16) return;
#if DT_X86
	if (dt_level == DT_AVX512) {
		prep_bf16_512(xp, x, K);
		return;
	}
	if (dt_level == DT_AVX2) {
		prep_bf16_256(xp, x, K);
		return;
	}
#endif
	(void)xp, (void)x, (void)K;
}

void dt_matvec(float *out, const void *w, const float *x, const float *xp,
               int64_t n0, int64_t n1, int64_t K, int dt) {
#if DT_X86
	if (dt_level == DT_AVX512) {
		switch (dt) {
		case DT_BF16: matvec_bf16_512(out, (const uint16_t *)w, x, xp, n0, n1, K); return;
		case DT_F16: matvec_f16_512(out, (const uint16_t *)w, x, n0, n1, K); return;
		case DT_F32: matvec_f32_512(out, (const float *)w, x, n0, n1, K); return;
		}
	}
	if (dt_level == DT_AVX2) {
		switch (dt) {
		case DT_BF16: matvec_bf16_256(out, (const uint16_t *)w, x, xp, n0, n1, K); return;
		case DT_F16: matvec_f16_256(out, (const uint16_t *)w, x, n0, n1, K); return;
		case DT_F32: matvec_f32_256(out, (const float *)w, x, n0, n1, K); return;
		}
	}
#endif
	(void)xp;
	for (int64_t n = n0; n < n1; n++) out[n] = dot_row_scalar(w, n, x, 0, K, dt);
}

void dt_widen(float *dst, const void *src, int64_t n, int dt) {
#if DT_X86
	if (dt_level == DT_AVX512) {
		widen_512(dst, src, n, dt);
		return;
	}
	if (dt_level == DT_AVX2) {
		widen_256(dst, src, n, dt);
		return;
	}
#endif
	widen_scalar(dst, src, n, dt);
}

uint64_t dt_sum_bytes(const void *p, int64_t n) {
#if DT_X86
	if (dt_level == DT_AVX512) return sum_bytes_512(p, n);
	if (dt_level == DT_AVX2) return sum_bytes_256(p, n);
#endif
	const uint64_t *u = (const uint64_t *)p;
	uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
	for (int64_t i = 0; i + 4 <= n / 8; i += 4) {
		s0 += u[i];
		s1 += u[i + 1];
		s2 += u[i + 2];
		s3 += u[i + 3];
	}
	return s0 + s1 + s2 + s3;
}
