// vexp.h: the vector exp of the element-wise kernels (ops.c, ops_train.c),
// Cephes-style, accurate to about 1 ulp. It defines the target attributes
// T512 and T256 unless the including file has (identically).
#ifndef DISTILL_VEXP_H
#define DISTILL_VEXP_H

#if (defined(__x86_64__) || defined(__i386__)) && !defined(DT_NO_X86)
#define DT_VEXP 1
#include <immintrin.h>

#ifndef T512
#define T512 __attribute__((target("avx512f,avx512bw,fma,f16c")))
#endif
#ifndef T256
#define T256 __attribute__((target("avx2,fma,f16c")))
#endif

// exp512: Cephes expf. n = round(x·log2 e), r = x − n·ln2 in two parts,
// e^r by a degree-7 polynomial, scaled by 2^n with vscalefps, which rounds
// to inf and 0 as exp does. NaN stays NaN (max/min return their second
// operand on NaN).
T512 static inline __m512 exp512(__m512 x) {
	x = _mm512_max_ps(_mm512_set1_ps(-104.0f), x);
	x = _mm512_min_ps(_mm512_set1_ps(89.0f), x);
	__m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
	                                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
	__m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
	r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
	__m512 p = _mm512_set1_ps(1.9875691500e-4f);
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
	p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
	return _mm512_scalef_ps(p, n);
}

// exp256: as exp512; 2^n is applied as two exact power-of-two factors
// 2^(n>>1) · 2^(n−(n>>1)), each a normal float over the clamped range.
T256 static inline __m256 exp256(__m256 x) {
	x = _mm256_max_ps(_mm256_set1_ps(-104.0f), x);
	x = _mm256_min_ps(_mm256_set1_ps(89.0f), x);
	__m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
	                           _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
	__m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
	r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
	__m256 p = _mm256_set1_ps(1.9875691500e-4f);
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
	p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
	__m256i ni = _mm256_cvtps_epi32(n);
	__m256i h = _mm256_srai_epi32(ni, 1), l = _mm256_sub_epi32(ni, h);
	__m256 sh = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(h, _mm256_set1_epi32(127)), 23));
	__m256 sl = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(l, _mm256_set1_epi32(127)), 23));
	return _mm256_mul_ps(_mm256_mul_ps(p, sh), sl);
}

#endif

#endif
