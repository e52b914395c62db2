//go:build cgo

// NF4 and Q8 kernels (see quant.h for the formats and contracts).
//
// Decode reads each packed byte once: a 64-element NF4 block is 32 bytes;
// the 16 code values times the block's scale form a 16-float table (one zmm
// on AVX-512, two ymm on AVX2) that a permute indexes with the nibbles, so
// each 16 weights cost a permute and an FMA (the permutes bound the AVX-512
// kernel: about 26 G weights/s per Zen 4 core from L2). The nibbles come out
// of the bytes in an order other than the elements', so the kernels read x
// rearranged to match (q_nf4_prep; see nf4_prep_512 and nf4_prep_256).
#include "quant.h"
#include "halfconv.h"

#include <float.h>
#include <math.h>
#include <string.h>

#if (defined(__x86_64__) || defined(__i386__)) && !defined(Q_NO_X86)
#define Q_X86 1
#include <immintrin.h>
#endif

static int q_level_best = Q_SCALAR;
static int q_level = Q_SCALAR;

int q_init(void) {
#if Q_X86
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw"))
		q_level_best = Q_AVX512;
	else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
	         __builtin_cpu_supports("f16c"))
		q_level_best = Q_AVX2;
#endif
	q_level = q_level_best;
	return q_level;
}

int q_set_level(int level) {
	if (level > q_level_best) level = q_level_best;
	if (level < Q_SCALAR) level = Q_SCALAR;
	q_level = level;
	return q_level;
}

int q_get_level(void) { return q_level; }

// The 16 NF4 code values of QLoRA / bitsandbytes, as f32.
static const float nf4_code[16] = {
	-1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
	-0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
	0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
	0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f,
};

// nf4_mid[i] is bitsandbytes' decision threshold between codes i and i+1:
// the literals of its dQuantizeNF4 tree (the f64 midpoints of the code
// values, as decimals, rounded to f32 by the compiler; see nf4.go). The 16th
// entry pads the table to a vector; it is never indexed.
static const float nf4_mid[16] = {
	-0.8480964004993439f, -0.6106329262256622f, -0.4599952697753906f, -0.33967943489551544f,
	-0.23460740596055984f, -0.13791173323988914f, -0.045525018125772476f, 0.03979014977812767f,
	0.1202552504837513f, 0.2035212516784668f, 0.2920137718319893f, 0.3893125355243683f,
	0.5016634166240692f, 0.6427869200706482f, 0.8614784181118011f, 2.0f,
};

void q_nf4_tables(float *code, float *mid) {
	memcpy(code, nf4_code, sizeof nf4_code);
	memcpy(mid, nf4_mid, sizeof nf4_mid);
}

// ---- scalar ----------------------------------------------------------------


static inline int nonfinite(float f) {
	uint32_t u;
	memcpy(&u, &f, 4);
	return (u & 0x7f800000u) == 0x7f800000u;
}

// widen_scalar sets dst[i] = f32(element e0+i of src) for i < cnt.
static void widen_scalar(float *dst, const void *src, int dt, int64_t e0, int64_t cnt) {
	switch (dt) {
	case Q_F32:
		memcpy(dst, (const float *)src + e0, (size_t)cnt * 4);
		break;
	case Q_BF16: {
		const uint16_t *h = (const uint16_t *)src + e0;
		for (int64_t i = 0; i < cnt; i++) dst[i] = bf16_f32(h[i]);
		break;
	}
	case Q_F16: {
		const uint16_t *h = (const uint16_t *)src + e0;
		for (int64_t i = 0; i < cnt; i++) dst[i] = f16_f32(h[i]);
		break;
	}
	}
}

// nf4_index is the number of midpoints below x, by binary search: the code
// bitsandbytes' decision tree returns.
static inline int nf4_index(float x) {
	int i = x > nf4_mid[7] ? 8 : 0;
	i += x > nf4_mid[i + 3] ? 4 : 0;
	i += x > nf4_mid[i + 1] ? 2 : 0;
	i += x > nf4_mid[i] ? 1 : 0;
	return i;
}

// nf4_scale is block b's scale (see quant.h).
static inline float nf4_scale(const float *absmax, const uint8_t *qabs, const float *absmax2,
                              const float *map2, float offset, int64_t b) {
	if (absmax) return absmax[b];
	float s = map2[qabs[b]] * absmax2[b >> 8];
	return s + offset;
}

#define NF4_PASS codes, absmax, qabs, absmax2, map2, offset
#define NF4_SCALE(b) nf4_scale(absmax, qabs, absmax2, map2, offset, (b))

// nf4_quant_block_scalar quantises 64 floats (a block, zero-padded) into 32
// bytes and returns the block's absmax.
static float nf4_quant_block_scalar(uint8_t *out, const float *v) {
	float m = 0;
	for (int i = 0; i < 64; i++) m = fmaxf(m, fabsf(v[i]));
	float inv = 1.0f / m;
	for (int j = 0; j < 32; j++)
		out[j] = (uint8_t)(nf4_index(v[2 * j] * inv) << 4 | nf4_index(v[2 * j + 1] * inv));
	return m;
}

// rbf16 rounds a finite f to the nearest bfloat16 (ties to even), kept as
// an f32: the weights' rounding under the bf16 products (bw), bitsandbytes'
// dequantisation to a bf16 compute dtype.
static inline float rbf16(float f) {
	uint32_t u;
	memcpy(&u, &f, 4);
	u = (u + 0x7fffu + ((u >> 16) & 1)) & 0xffff0000u;
	memcpy(&f, &u, 4);
	return f;
}

// nf4_value is code c's value at scale s, rounded to bf16 with bw.
static inline float nf4_value(int c, float s, int bw) {
	float v = nf4_code[c] * s;
	return bw ? rbf16(v) : v;
}

static void nf4_dequant_scalar(float *dst, const uint8_t *codes, float s, int64_t e0, int64_t e1, int bw) {
	for (int64_t e = e0; e < e1; e++) {
		uint8_t c = codes[e >> 1];
		c = (e & 1) ? (c & 15) : (c >> 4);
		*dst++ = nf4_value(c, s, bw);
	}
}

static void nf4_matvec_scalar(float *out, NF4_ARGS, const float *x, int64_t K, int64_t n0, int64_t n1, int bw) {
	int64_t nbk = K / 64;
	for (int64_t n = n0; n < n1; n++) {
		const uint8_t *p = codes + n * (K / 2);
		float acc = 0;
		for (int64_t j = 0; j < nbk; j++) {
			float s = NF4_SCALE(n * nbk + j);
			for (int k = 0; k < 32; k++) {
				uint8_t c = p[32 * j + k];
				acc += nf4_value(c >> 4, s, bw) * x[64 * j + 2 * k];
				acc += nf4_value(c & 15, s, bw) * x[64 * j + 2 * k + 1];
			}
		}
		out[n] = acc;
	}
}

// q8_round is roundf for |v| < 2^23: half away from zero, exactly.
static inline float q8_round(float v) { return roundf(v); }

// q8_quant_block_scalar quantises 32 floats. When 1/d overflows (d below
// 2^-128, a block of subnormals) it divides by d instead of multiplying by
// 1/d, where ggml's reference would cast ±Inf to int8.
static float q8_quant_block_scalar(int8_t *out, const float *v) {
	float m = 0;
	for (int i = 0; i < 32; i++) m = fmaxf(m, fabsf(v[i]));
	float d = m / 127.0f;
	float id = d != 0 ? 1.0f / d : 0.0f;
	if (isinf(id))
		for (int i = 0; i < 32; i++) out[i] = (int8_t)q8_round(v[i] / d);
	else
		for (int i = 0; i < 32; i++) out[i] = (int8_t)q8_round(v[i] * id);
	return d;
}

static void q8_dequant_scalar(float *dst, const int8_t *qs, float s, int64_t e0, int64_t e1) {
	for (int64_t e = e0; e < e1; e++) *dst++ = (float)qs[e] * s;
}

static void q8_matvec_scalar(float *out, const int8_t *qs, const float *scales, const float *x,
                             int64_t K, int64_t n0, int64_t n1) {
	int64_t nbk = K / 32;
	for (int64_t n = n0; n < n1; n++) {
		const int8_t *p = qs + n * K;
		float acc = 0;
		for (int64_t j = 0; j < nbk; j++) {
			float t = 0;
			for (int k = 0; k < 32; k++) t += (float)p[32 * j + k] * x[32 * j + k];
			acc += t * scales[n * nbk + j];
		}
		out[n] = acc;
	}
}

#if Q_X86

// ---- AVX-512 ---------------------------------------------------------------

#define T512 __attribute__((target("avx512f,avx512bw,fma,f16c")))

// The four-row kernels read four streams a row apart, which the hardware
// prefetchers follow poorly from DRAM (as core/tensor found for BF16);
// prefetching each line into L2 eight rows ahead restores the bandwidth.
#define PF_ROWS 8
#define PF(p) _mm_prefetch((const char *)(p), _MM_HINT_T1)

T512 static void widen_512(float *dst, const void *src, int dt, int64_t e0, int64_t cnt) {
	int64_t i = 0;
	if (dt == Q_BF16) {
		const uint16_t *h = (const uint16_t *)src + e0;
		for (; i + 16 <= cnt; i += 16) {
			__m512i v = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(h + i)));
			_mm512_storeu_ps(dst + i, _mm512_castsi512_ps(_mm512_slli_epi32(v, 16)));
		}
	} else if (dt == Q_F16) {
		const uint16_t *h = (const uint16_t *)src + e0;
		for (; i + 16 <= cnt; i += 16)
			_mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(h + i))));
	}
	widen_scalar(dst + i, src, dt, e0 + i, cnt - i);
}

// bad_512 flags lanes that are NaN or ±Inf.
T512 static inline __mmask16 bad_512(__m512 a) {
	return _mm512_cmp_ps_mask(a, _mm512_set1_ps(FLT_MAX), _CMP_NLE_UQ);
}

// nf4_index_512 is nf4_index on 16 lanes; T holds nf4_mid.
T512 static inline __m512i nf4_index_512(__m512 x, __m512 T) {
	__m512i i = _mm512_maskz_mov_epi32(_mm512_cmp_ps_mask(x, _mm512_set1_ps(nf4_mid[7]), _CMP_GT_OQ),
	                                   _mm512_set1_epi32(8));
	__m512 t = _mm512_permutexvar_ps(_mm512_add_epi32(i, _mm512_set1_epi32(3)), T);
	i = _mm512_mask_add_epi32(i, _mm512_cmp_ps_mask(x, t, _CMP_GT_OQ), i, _mm512_set1_epi32(4));
	t = _mm512_permutexvar_ps(_mm512_add_epi32(i, _mm512_set1_epi32(1)), T);
	i = _mm512_mask_add_epi32(i, _mm512_cmp_ps_mask(x, t, _CMP_GT_OQ), i, _mm512_set1_epi32(2));
	t = _mm512_permutexvar_ps(i, T);
	return _mm512_mask_add_epi32(i, _mm512_cmp_ps_mask(x, t, _CMP_GT_OQ), i, _mm512_set1_epi32(1));
}

// nf4_quant_block_512: as nf4_quant_block_scalar; *bad is set when the block
// holds a NaN or Inf.
T512 static float nf4_quant_block_512(uint8_t *out, const float *v, int *bad) {
	__m512 a0 = _mm512_abs_ps(_mm512_loadu_ps(v)), a1 = _mm512_abs_ps(_mm512_loadu_ps(v + 16));
	__m512 a2 = _mm512_abs_ps(_mm512_loadu_ps(v + 32)), a3 = _mm512_abs_ps(_mm512_loadu_ps(v + 48));
	if (bad_512(a0) | bad_512(a1) | bad_512(a2) | bad_512(a3)) *bad = 1;
	float m = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_max_ps(a0, a1), _mm512_max_ps(a2, a3)));
	__m512 inv = _mm512_set1_ps(1.0f / m);
	__m512 T = _mm512_loadu_ps(nf4_mid);
	for (int k = 0; k < 4; k++) {
		__m512i i = nf4_index_512(_mm512_mul_ps(_mm512_loadu_ps(v + 16 * k), inv), T);
		// lane pair (2j, 2j+1) → byte j: even code in the high nibble.
		__m512i p = _mm512_or_si512(_mm512_slli_epi64(i, 4), _mm512_srli_epi64(i, 32));
		_mm_storel_epi64((__m128i *)(out + 8 * k), _mm512_cvtepi64_epi8(p));
	}
	return m;
}

// Interleaving indices for permutex2var: even lanes from a, odd from b.
static const int32_t ilv_idx[32] = {
	0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23,
	8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31,
};

// rbf16_512 is rbf16 on 16 lanes.
T512 static inline __m512 rbf16_512(__m512 v) {
	__m512i u = _mm512_castps_si512(v);
	__m512i odd = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
	u = _mm512_add_epi32(u, _mm512_add_epi32(odd, _mm512_set1_epi32(0x7fff)));
	return _mm512_castsi512_ps(_mm512_and_si512(u, _mm512_set1_epi32((int)0xffff0000u)));
}

// nf4_table_512 is the 16 code values at scale s (rounded to bf16 with bw).
T512 static inline __m512 nf4_table_512(__m512 tab, float s, int bw) {
	__m512 st = _mm512_mul_ps(tab, _mm512_set1_ps(s));
	return bw ? rbf16_512(st) : st;
}

// nf4_dequant_block_512 writes the 64 values of the block whose 32 bytes
// are at p.
T512 static inline void nf4_dequant_block_512(float *dst, const uint8_t *p, float s, int bw) {
	const __m512i lo = _mm512_loadu_si512(ilv_idx), hi = _mm512_loadu_si512(ilv_idx + 16);
	__m512 st = nf4_table_512(_mm512_loadu_ps(nf4_code), s, bw);
	for (int h = 0; h < 2; h++) {
		__m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(p + 16 * h)));
		__m512 ev = _mm512_permutexvar_ps(_mm512_srli_epi32(v, 4), st);
		__m512 od = _mm512_permutexvar_ps(_mm512_and_si512(v, _mm512_set1_epi32(15)), st);
		_mm512_storeu_ps(dst + 32 * h, _mm512_permutex2var_ps(ev, lo, od));
		_mm512_storeu_ps(dst + 32 * h + 16, _mm512_permutex2var_ps(ev, hi, od));
	}
}

// nf4_dequant_bf16_512 is nf4_dequant_block_512 (with bw) into bf16.
T512 static inline void nf4_dequant_bf16_512(uint16_t *dst, const uint8_t *p, float s) {
	const __m512i lo = _mm512_loadu_si512(ilv_idx), hi = _mm512_loadu_si512(ilv_idx + 16);
	__m512 st = nf4_table_512(_mm512_loadu_ps(nf4_code), s, 1);
	for (int h = 0; h < 2; h++) {
		__m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(p + 16 * h)));
		__m512 ev = _mm512_permutexvar_ps(_mm512_srli_epi32(v, 4), st);
		__m512 od = _mm512_permutexvar_ps(_mm512_and_si512(v, _mm512_set1_epi32(15)), st);
		__m512i a = _mm512_castps_si512(_mm512_permutex2var_ps(ev, lo, od));
		__m512i c = _mm512_castps_si512(_mm512_permutex2var_ps(ev, hi, od));
		_mm256_storeu_si256((__m256i *)(dst + 32 * h), _mm512_cvtepi32_epi16(_mm512_srli_epi32(a, 16)));
		_mm256_storeu_si256((__m256i *)(dst + 32 * h + 16), _mm512_cvtepi32_epi16(_mm512_srli_epi32(c, 16)));
	}
}

// The matvec reads a block's 32 bytes as 8 dwords broadcast to both halves
// of a zmm; a variable shift by 8t (low half) and 8t+4 (high half) puts in
// each lane's low nibble, for t = 0..3, the code of element 8i+2t+1 (lane
// i < 8: low nibble of byte 4i+t) or 8(i-8)+2t (lane i ≥ 8: its high
// nibble), and permutexvar reads only those 4 bits. So each block is 4
// shifts, 4 permutes and 4 FMAs, and x is laid out to match: per block of
// 64, for t = 0..3, the 8 odd elements 8i+2t+1 then the 8 even ones 8i+2t.
T512 static void nf4_prep_512(float *xp, const float *x, int64_t K) {
	for (int64_t b = 0; b + 64 <= K; b += 64)
		for (int t = 0; t < 4; t++)
			for (int i = 0; i < 8; i++) {
				xp[b + 16 * t + i] = x[b + 8 * i + 2 * t + 1];
				xp[b + 16 * t + 8 + i] = x[b + 8 * i + 2 * t];
			}
}

static const int32_t nf4_shifts[64] = {
	0, 0, 0, 0, 0, 0, 0, 0, 4, 4, 4, 4, 4, 4, 4, 4,
	8, 8, 8, 8, 8, 8, 8, 8, 12, 12, 12, 12, 12, 12, 12, 12,
	16, 16, 16, 16, 16, 16, 16, 16, 20, 20, 20, 20, 20, 20, 20, 20,
	24, 24, 24, 24, 24, 24, 24, 24, 28, 28, 28, 28, 28, 28, 28, 28,
};

// One row's work on one block: 32 bytes at p, x laid out at xb.
#define NF4_ROW_512(p, s, a, b)                                                                   \
	do {                                                                                          \
		__m512 st_ = nf4_table_512(tab, s, bw);                                                   \
		__m512i v_ = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(p)));            \
		a = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srlv_epi32(v_, sh0), st_), x0, a);       \
		b = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srlv_epi32(v_, sh1), st_), x1, b);       \
		a = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srlv_epi32(v_, sh2), st_), x2, a);       \
		b = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srlv_epi32(v_, sh3), st_), x3, b);       \
	} while (0)

// nf4_matvec_512 is compiled twice, with dq a constant, so that the scale
// needs no branch in the loop (measured 20% faster).
#define NF4_SCALE_DQ(b) (dq ? (map2[qabs[b]] * absmax2[(b) >> 8]) + offset : absmax[b])

T512 static inline __attribute__((always_inline)) void nf4_matvec_512(float *out, NF4_ARGS, const float *xp,
                                                                      int64_t K, int64_t n0, int64_t n1, const int dq,
                                                                      int bw) {
	const int64_t nbk = K / 64, rb = K / 2;
	const __m512 tab = _mm512_loadu_ps(nf4_code);
	const __m512i sh0 = _mm512_loadu_si512(nf4_shifts), sh1 = _mm512_loadu_si512(nf4_shifts + 16);
	const __m512i sh2 = _mm512_loadu_si512(nf4_shifts + 32), sh3 = _mm512_loadu_si512(nf4_shifts + 48);
	int64_t n = n0;
	for (; n + 4 <= n1; n += 4) {
		const uint8_t *r0 = codes + n * rb, *r1 = r0 + rb, *r2 = r1 + rb, *r3 = r2 + rb;
		__m512 a0 = _mm512_setzero_ps(), b0 = _mm512_setzero_ps();
		__m512 a1 = _mm512_setzero_ps(), b1 = _mm512_setzero_ps();
		__m512 a2 = _mm512_setzero_ps(), b2 = _mm512_setzero_ps();
		__m512 a3 = _mm512_setzero_ps(), b3 = _mm512_setzero_ps();
		for (int64_t j = 0; j < nbk; j++) {
			const float *xb = xp + 64 * j;
			__m512 x0 = _mm512_loadu_ps(xb), x1 = _mm512_loadu_ps(xb + 16);
			__m512 x2 = _mm512_loadu_ps(xb + 32), x3 = _mm512_loadu_ps(xb + 48);
			int64_t b = n * nbk + j;
			if ((j & 1) == 0) { // a line holds two blocks
				PF(r0 + 32 * j + PF_ROWS * rb);
				PF(r1 + 32 * j + PF_ROWS * rb);
				PF(r2 + 32 * j + PF_ROWS * rb);
				PF(r3 + 32 * j + PF_ROWS * rb);
			}
			NF4_ROW_512(r0 + 32 * j, NF4_SCALE_DQ(b), a0, b0);
			NF4_ROW_512(r1 + 32 * j, NF4_SCALE_DQ(b + nbk), a1, b1);
			NF4_ROW_512(r2 + 32 * j, NF4_SCALE_DQ(b + 2 * nbk), a2, b2);
			NF4_ROW_512(r3 + 32 * j, NF4_SCALE_DQ(b + 3 * nbk), a3, b3);
		}
		out[n] = _mm512_reduce_add_ps(_mm512_add_ps(a0, b0));
		out[n + 1] = _mm512_reduce_add_ps(_mm512_add_ps(a1, b1));
		out[n + 2] = _mm512_reduce_add_ps(_mm512_add_ps(a2, b2));
		out[n + 3] = _mm512_reduce_add_ps(_mm512_add_ps(a3, b3));
	}
	for (; n < n1; n++) {
		const uint8_t *r0 = codes + n * rb;
		__m512 a0 = _mm512_setzero_ps(), b0 = _mm512_setzero_ps();
		for (int64_t j = 0; j < nbk; j++) {
			const float *xb = xp + 64 * j;
			__m512 x0 = _mm512_loadu_ps(xb), x1 = _mm512_loadu_ps(xb + 16);
			__m512 x2 = _mm512_loadu_ps(xb + 32), x3 = _mm512_loadu_ps(xb + 48);
			NF4_ROW_512(r0 + 32 * j, NF4_SCALE_DQ(n * nbk + j), a0, b0);
		}
		out[n] = _mm512_reduce_add_ps(_mm512_add_ps(a0, b0));
	}
}

T512 static void nf4_matvec_512_abs(float *out, NF4_ARGS, const float *xp, int64_t K, int64_t n0, int64_t n1, int bw) {
	nf4_matvec_512(out, NF4_PASS, xp, K, n0, n1, 0, bw);
}

T512 static void nf4_matvec_512_dq(float *out, NF4_ARGS, const float *xp, int64_t K, int64_t n0, int64_t n1, int bw) {
	nf4_matvec_512(out, NF4_PASS, xp, K, n0, n1, 1, bw);
}

T512 static float q8_quant_block_512(int8_t *out, const float *v, int *bad) {
	__m512 v0 = _mm512_loadu_ps(v), v1 = _mm512_loadu_ps(v + 16);
	__m512 a0 = _mm512_abs_ps(v0), a1 = _mm512_abs_ps(v1);
	if (bad_512(a0) | bad_512(a1)) *bad = 1;
	float m = _mm512_reduce_max_ps(_mm512_max_ps(a0, a1));
	float d = m / 127.0f;
	__m512 id = _mm512_set1_ps(d != 0 ? 1.0f / d : 0.0f);
	const __m512i sign = _mm512_set1_epi32((int)0x80000000u);
	for (int k = 0; k < 2; k++) {
		__m512 x = _mm512_mul_ps(k ? v1 : v0, id);
		// Half away from zero, exactly: floor(|x|), plus one when the
		// (exact) fraction is at least a half, with x's sign.
		__m512 ax = _mm512_abs_ps(x);
		__m512 fl = _mm512_roundscale_ps(ax, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
		__mmask16 up = _mm512_cmp_ps_mask(_mm512_sub_ps(ax, fl), _mm512_set1_ps(0.5f), _CMP_GE_OQ);
		__m512 r = _mm512_mask_add_ps(fl, up, fl, _mm512_set1_ps(1.0f));
		r = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(r),
		                                        _mm512_and_si512(_mm512_castps_si512(x), sign)));
		_mm_storeu_si128((__m128i *)(out + 16 * k), _mm512_cvtepi32_epi8(_mm512_cvttps_epi32(r)));
	}
	return d;
}

T512 static inline void q8_dequant_block_512(float *dst, const int8_t *p, float s) {
	__m512 vs = _mm512_set1_ps(s);
	for (int h = 0; h < 2; h++) {
		__m512i v = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(p + 16 * h)));
		_mm512_storeu_ps(dst + 16 * h, _mm512_mul_ps(_mm512_cvtepi32_ps(v), vs));
	}
}

T512 static inline __m512 q8_load_512(const int8_t *p) {
	return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)p)));
}

// One row's block: acc += s · (q[0:16]·x0 + q[16:32]·x1).
#define Q8_ROW_512(p, sc, acc)                                                                   \
	do {                                                                                         \
		__m512 t_ = _mm512_fmadd_ps(q8_load_512((p) + 16), x1, _mm512_mul_ps(q8_load_512(p), x0)); \
		acc = _mm512_fmadd_ps(t_, _mm512_set1_ps((sc)), acc);                           \
	} while (0)

T512 static void q8_matvec_512(float *out, const int8_t *qs, const float *scales, const float *x,
                               int64_t K, int64_t n0, int64_t n1) {
	const int64_t nbk = K / 32;
	int64_t n = n0;
	for (; n + 4 <= n1; n += 4) {
		const int8_t *r0 = qs + n * K, *r1 = r0 + K, *r2 = r1 + K, *r3 = r2 + K;
		const float *s0 = scales + n * nbk, *s1 = s0 + nbk, *s2 = s1 + nbk, *s3 = s2 + nbk;
		__m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
		__m512 a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
		for (int64_t j = 0; j < nbk; j++) {
			__m512 x0 = _mm512_loadu_ps(x + 32 * j), x1 = _mm512_loadu_ps(x + 32 * j + 16);
			if ((j & 1) == 0) {
				PF(r0 + 32 * j + PF_ROWS * K);
				PF(r1 + 32 * j + PF_ROWS * K);
				PF(r2 + 32 * j + PF_ROWS * K);
				PF(r3 + 32 * j + PF_ROWS * K);
			}
			Q8_ROW_512(r0 + 32 * j, s0[j], a0);
			Q8_ROW_512(r1 + 32 * j, s1[j], a1);
			Q8_ROW_512(r2 + 32 * j, s2[j], a2);
			Q8_ROW_512(r3 + 32 * j, s3[j], a3);
		}
		out[n] = _mm512_reduce_add_ps(a0);
		out[n + 1] = _mm512_reduce_add_ps(a1);
		out[n + 2] = _mm512_reduce_add_ps(a2);
		out[n + 3] = _mm512_reduce_add_ps(a3);
	}
	for (; n < n1; n++) {
		const int8_t *r0 = qs + n * K;
		const float *s0 = scales + n * nbk;
		__m512 a0 = _mm512_setzero_ps();
		for (int64_t j = 0; j < nbk; j++) {
			__m512 x0 = _mm512_loadu_ps(x + 32 * j), x1 = _mm512_loadu_ps(x + 32 * j + 16);
			Q8_ROW_512(r0 + 32 * j, s0[j], a0);
		}
		out[n] = _mm512_reduce_add_ps(a0);
	}
}

// ---- AVX2 + FMA + F16C -----------------------------------------------------

#define T256 __attribute__((target("avx2,fma,f16c")))

T256 static void widen_256(float *dst, const void *src, int dt, int64_t e0, int64_t cnt) {
	int64_t i = 0;
	if (dt == Q_BF16) {
		const uint16_t *h = (const uint16_t *)src + e0;
		for (; i + 8 <= cnt; i += 8) {
			__m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(h + i)));
			_mm256_storeu_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(v, 16)));
		}
	} else if (dt == Q_F16) {
		const uint16_t *h = (const uint16_t *)src + e0;
		for (; i + 8 <= cnt; i += 8)
			_mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(h + i))));
	}
	widen_scalar(dst + i, src, dt, e0 + i, cnt - i);
}

T256 static inline __m256 abs256(__m256 v) {
	return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v);
}

T256 static inline int bad_256(__m256 a) {
	return _mm256_movemask_ps(_mm256_cmp_ps(a, _mm256_set1_ps(FLT_MAX), _CMP_NLE_UQ));
}

T256 static inline float hmax256(__m256 v) {
	__m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	s = _mm_max_ps(s, _mm_movehl_ps(s, s));
	s = _mm_max_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

T256 static inline float hsum256(__m256 v) {
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

T256 static float nf4_quant_block_256(uint8_t *out, const float *v, int *bad) {
	__m256 m = _mm256_setzero_ps();
	for (int k = 0; k < 8; k++) {
		__m256 a = abs256(_mm256_loadu_ps(v + 8 * k));
		if (bad_256(a)) *bad = 1;
		m = _mm256_max_ps(m, a);
	}
	float am = hmax256(m);
	__m256 inv = _mm256_set1_ps(1.0f / am);
	for (int k = 0; k < 8; k++) {
		__m256 x = _mm256_mul_ps(_mm256_loadu_ps(v + 8 * k), inv);
		__m256i i = _mm256_setzero_si256();
		for (int t = 0; t < 15; t++) // count the midpoints below x
			i = _mm256_sub_epi32(i, _mm256_castps_si256(_mm256_cmp_ps(x, _mm256_set1_ps(nf4_mid[t]), _CMP_GT_OQ)));
		__m256i p = _mm256_or_si256(_mm256_slli_epi64(i, 4), _mm256_srli_epi64(i, 32));
		uint64_t l[4];
		_mm256_storeu_si256((__m256i *)l, p);
		for (int j = 0; j < 4; j++) out[4 * k + j] = (uint8_t)l[j];
	}
	return am;
}

// lut256 looks up 16-entry tables (lo: entries 0-7, hi: 8-15) at idx.
T256 static inline __m256 lut256(__m256i idx, __m256 lo, __m256 hi) {
	return _mm256_blendv_ps(_mm256_permutevar8x32_ps(lo, idx), _mm256_permutevar8x32_ps(hi, idx),
	                        _mm256_castsi256_ps(_mm256_slli_epi32(idx, 28)));
}

// rbf16_256 is rbf16 on 8 lanes.
T256 static inline __m256 rbf16_256(__m256 v) {
	__m256i u = _mm256_castps_si256(v);
	__m256i odd = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
	u = _mm256_add_epi32(u, _mm256_add_epi32(odd, _mm256_set1_epi32(0x7fff)));
	return _mm256_castsi256_ps(_mm256_and_si256(u, _mm256_set1_epi32((int)0xffff0000u)));
}

// nf4_tables_256 sets the 16 code values at scale s (rounded to bf16 with
// bw), in two halves.
T256 static inline void nf4_tables_256(__m256 *lo, __m256 *hi, __m256 tlo, __m256 thi, float s, int bw) {
	__m256 vs = _mm256_set1_ps(s);
	*lo = _mm256_mul_ps(tlo, vs);
	*hi = _mm256_mul_ps(thi, vs);
	if (bw) {
		*lo = rbf16_256(*lo);
		*hi = rbf16_256(*hi);
	}
}

T256 static inline void nf4_dequant_block_256(float *dst, const uint8_t *p, float s, int bw) {
	__m256 lo, hi;
	nf4_tables_256(&lo, &hi, _mm256_loadu_ps(nf4_code), _mm256_loadu_ps(nf4_code + 8), s, bw);
	for (int q = 0; q < 4; q++) {
		__m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(p + 8 * q)));
		__m256 ev = lut256(_mm256_srli_epi32(v, 4), lo, hi);
		__m256 od = lut256(_mm256_and_si256(v, _mm256_set1_epi32(15)), lo, hi);
		__m256 l = _mm256_unpacklo_ps(ev, od), h = _mm256_unpackhi_ps(ev, od);
		_mm256_storeu_ps(dst + 16 * q, _mm256_permute2f128_ps(l, h, 0x20));
		_mm256_storeu_ps(dst + 16 * q + 8, _mm256_permute2f128_ps(l, h, 0x31));
	}
}

// The AVX2 kernel splits 8 bytes into their high nibbles (8 even elements)
// and low nibbles (8 odd ones): x is laid out per 16 elements as the 8 even
// then the 8 odd.
T256 static void nf4_prep_256(float *xp, const float *x, int64_t K) {
	for (int64_t b = 0; b + 16 <= K; b += 16)
		for (int i = 0; i < 8; i++) {
			xp[b + i] = x[b + 2 * i];
			xp[b + 8 + i] = x[b + 2 * i + 1];
		}
}

// One row's block in AVX2, two rows at a time (16 ymm registers).
#define NF4_ROW_256(p, s, a, b)                                                                   \
	do {                                                                                          \
		__m256 lo_, hi_;                                                                          \
		nf4_tables_256(&lo_, &hi_, tlo, thi, s, bw);                                              \
		for (int q = 0; q < 4; q++) {                                                             \
			__m256i v_ = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)((p) + 8 * q)));   \
			a = _mm256_fmadd_ps(lut256(_mm256_srli_epi32(v_, 4), lo_, hi_), _mm256_loadu_ps(xb + 16 * q), a); \
			b = _mm256_fmadd_ps(lut256(_mm256_and_si256(v_, m15), lo_, hi_),                     \
			                    _mm256_loadu_ps(xb + 16 * q + 8), b);                             \
		}                                                                                         \
	} while (0)

T256 static inline __attribute__((always_inline)) void nf4_matvec_256(float *out, NF4_ARGS, const float *xp,
                                                                      int64_t K, int64_t n0, int64_t n1, const int dq,
                                                                      int bw) {
	const int64_t nbk = K / 64, rb = K / 2;
	const __m256 tlo = _mm256_loadu_ps(nf4_code), thi = _mm256_loadu_ps(nf4_code + 8);
	const __m256i m15 = _mm256_set1_epi32(15);
	int64_t n = n0;
	for (; n + 2 <= n1; n += 2) {
		const uint8_t *r0 = codes + n * rb, *r1 = r0 + rb;
		__m256 a0 = _mm256_setzero_ps(), b0 = _mm256_setzero_ps();
		__m256 a1 = _mm256_setzero_ps(), b1 = _mm256_setzero_ps();
		for (int64_t j = 0; j < nbk; j++) {
			const float *xb = xp + 64 * j;
			int64_t b = n * nbk + j;
			NF4_ROW_256(r0 + 32 * j, NF4_SCALE_DQ(b), a0, b0);
			NF4_ROW_256(r1 + 32 * j, NF4_SCALE_DQ(b + nbk), a1, b1);
		}
		out[n] = hsum256(_mm256_add_ps(a0, b0));
		out[n + 1] = hsum256(_mm256_add_ps(a1, b1));
	}
	for (; n < n1; n++) {
		const uint8_t *r0 = codes + n * rb;
		__m256 a0 = _mm256_setzero_ps(), b0 = _mm256_setzero_ps();
		for (int64_t j = 0; j < nbk; j++) {
			const float *xb = xp + 64 * j;
			NF4_ROW_256(r0 + 32 * j, NF4_SCALE_DQ(n * nbk + j), a0, b0);
		}
		out[n] = hsum256(_mm256_add_ps(a0, b0));
	}
}

T256 static void nf4_matvec_256_abs(float *out, NF4_ARGS, const float *xp, int64_t K, int64_t n0, int64_t n1, int bw) {
	nf4_matvec_256(out, NF4_PASS, xp, K, n0, n1, 0, bw);
}

T256 static void nf4_matvec_256_dq(float *out, NF4_ARGS, const float *xp, int64_t K, int64_t n0, int64_t n1, int bw) {
	nf4_matvec_256(out, NF4_PASS, xp, K, n0, n1, 1, bw);
}

T256 static float q8_quant_block_256(int8_t *out, const float *v, int *bad) {
	__m256 m = _mm256_setzero_ps();
	for (int k = 0; k < 4; k++) {
		__m256 a = abs256(_mm256_loadu_ps(v + 8 * k));
		if (bad_256(a)) *bad = 1;
		m = _mm256_max_ps(m, a);
	}
	float d = hmax256(m) / 127.0f;
	__m256 id = _mm256_set1_ps(d != 0 ? 1.0f / d : 0.0f);
	for (int k = 0; k < 4; k++) {
		__m256 x = _mm256_mul_ps(_mm256_loadu_ps(v + 8 * k), id);
		__m256 ax = abs256(x);
		__m256 fl = _mm256_floor_ps(ax);
		__m256 up = _mm256_and_ps(_mm256_cmp_ps(_mm256_sub_ps(ax, fl), _mm256_set1_ps(0.5f), _CMP_GE_OQ),
		                          _mm256_set1_ps(1.0f));
		__m256 r = _mm256_or_ps(_mm256_add_ps(fl, up), _mm256_and_ps(x, _mm256_set1_ps(-0.0f)));
		__m256i q = _mm256_cvttps_epi32(r);
		int32_t l[8];
		_mm256_storeu_si256((__m256i *)l, q);
		for (int j = 0; j < 8; j++) out[8 * k + j] = (int8_t)l[j];
	}
	return d;
}

T256 static inline __m256 q8_load_256(const int8_t *p) {
	return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)p)));
}

T256 static inline void q8_dequant_block_256(float *dst, const int8_t *p, float s) {
	__m256 vs = _mm256_set1_ps(s);
	for (int q = 0; q < 4; q++) _mm256_storeu_ps(dst + 8 * q, _mm256_mul_ps(q8_load_256(p + 8 * q), vs));
}

#define Q8_ROW_256(p, sc, acc)                                                                    \
	do {                                                                                          \
		__m256 t_ = _mm256_mul_ps(q8_load_256(p), x0);                                            \
		t_ = _mm256_fmadd_ps(q8_load_256((p) + 8), x1, t_);                                       \
		t_ = _mm256_fmadd_ps(q8_load_256((p) + 16), x2, t_);                                      \
		t_ = _mm256_fmadd_ps(q8_load_256((p) + 24), x3, t_);                                      \
		acc = _mm256_fmadd_ps(t_, _mm256_set1_ps((sc)), acc);                            \
	} while (0)

T256 static void q8_matvec_256(float *out, const int8_t *qs, const float *scales, const float *x,
                               int64_t K, int64_t n0, int64_t n1) {
	const int64_t nbk = K / 32;
	int64_t n = n0;
	for (; n + 4 <= n1; n += 4) {
		const int8_t *r0 = qs + n * K, *r1 = r0 + K, *r2 = r1 + K, *r3 = r2 + K;
		const float *s0 = scales + n * nbk, *s1 = s0 + nbk, *s2 = s1 + nbk, *s3 = s2 + nbk;
		__m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
		__m256 a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
		for (int64_t j = 0; j < nbk; j++) {
			const float *xb = x + 32 * j;
			__m256 x0 = _mm256_loadu_ps(xb), x1 = _mm256_loadu_ps(xb + 8);
			__m256 x2 = _mm256_loadu_ps(xb + 16), x3 = _mm256_loadu_ps(xb + 24);
			Q8_ROW_256(r0 + 32 * j, s0[j], a0);
			Q8_ROW_256(r1 + 32 * j, s1[j], a1);
			Q8_ROW_256(r2 + 32 * j, s2[j], a2);
			Q8_ROW_256(r3 + 32 * j, s3[j], a3);
		}
		out[n] = hsum256(a0);
		out[n + 1] = hsum256(a1);
		out[n + 2] = hsum256(a2);
		out[n + 3] = hsum256(a3);
	}
	for (; n < n1; n++) {
		const int8_t *r0 = qs + n * K;
		const float *s0 = scales + n * nbk;
		__m256 a0 = _mm256_setzero_ps();
		for (int64_t j = 0; j < nbk; j++) {
			const float *xb = x + 32 * j;
			__m256 x0 = _mm256_loadu_ps(xb), x1 = _mm256_loadu_ps(xb + 8);
			__m256 x2 = _mm256_loadu_ps(xb + 16), x3 = _mm256_loadu_ps(xb + 24);
			Q8_ROW_256(r0 + 32 * j, s0[j], a0);
		}
		out[n] = hsum256(a0);
	}
}

#endif // Q_X86

// ---- dispatch --------------------------------------------------------------

static void widen(float *dst, const void *src, int dt, int64_t e0, int64_t cnt) {
#if Q_X86
	if (q_level == Q_AVX512) {
		widen_512(dst, src, dt, e0, cnt);
		return;
	}
	if (q_level == Q_AVX2) {
		widen_256(dst, src, dt, e0, cnt);
		return;
	}
#endif
	widen_scalar(dst, src, dt, e0, cnt);
}

// first_bad returns the index of the first NaN or Inf among v[0:cnt], from e0.
static int64_t first_bad(const float *v, int64_t cnt, int64_t e0) {
	for (int64_t i = 0; i < cnt; i++)
		if (nonfinite(v[i])) return e0 + i;
	return -1;
}

int64_t q_nf4_quantize(uint8_t *codes, float *absmax, const void *src, int dt, int64_t n,
                       int64_t b0, int64_t b1) {
	float v[64];
	uint8_t tmp[32];
	for (int64_t b = b0; b < b1; b++) {
		int64_t e0 = 64 * b, cnt = n - e0 < 64 ? n - e0 : 64;
		widen(v, src, dt, e0, cnt);
		if (cnt < 64) memset(v + cnt, 0, (size_t)(64 - cnt) * 4);
		uint8_t *out = cnt == 64 ? codes + 32 * b : tmp;
		int bad = 0;
		float m;
#if Q_X86
		if (q_level == Q_AVX512)
			m = nf4_quant_block_512(out, v, &bad);
		else if (q_level == Q_AVX2)
			m = nf4_quant_block_256(out, v, &bad);
		else
#endif
		{
			bad = first_bad(v, cnt, e0) >= 0;
			m = nf4_quant_block_scalar(out, v);
		}
		if (bad) return first_bad(v, cnt, e0);
		absmax[b] = m;
		if (cnt < 64) memcpy(codes + 32 * b, tmp, (size_t)(cnt + 1) / 2);
	}
	return -1;
}

void q_nf4_dequant(float *dst, NF4_ARGS, int64_t e0, int64_t e1, int bw) {
	int64_t e = e0;
	while (e < e1) {
		int64_t b = e / 64, end = 64 * (b + 1) < e1 ? 64 * (b + 1) : e1;
		float s = NF4_SCALE(b);
#if Q_X86
		if (e == 64 * b && end == e + 64 && q_level >= Q_AVX2) {
			if (q_level == Q_AVX512)
				nf4_dequant_block_512(dst, codes + 32 * b, s, bw);
			else
				nf4_dequant_block_256(dst, codes + 32 * b, s, bw);
		} else
#endif
			nf4_dequant_scalar(dst, codes, s, e, end, bw);
		dst += end - e;
		e = end;
	}
}

void q_nf4_dequant_tile(float *dst, int64_t ldd, NF4_ARGS, int64_t K, int64_t n0, int64_t n1,
                        int64_t k0, int64_t k1, int bw) {
	for (int64_t n = n0; n < n1; n++) q_nf4_dequant(dst + (n - n0) * ldd, NF4_PASS, n * K + k0, n * K + k1, bw);
}

// q_nf4_dequant_bf16 is q_nf4_dequant with bw into bfloat16: the rounded
// values are bf16 already, so each is its f32's upper half. The bf16
// products' tiles take it in one pass (an f32 tile rounded and narrowed
// after was two more, ~8 % of an AMX QLoRA step).
static void q_nf4_dequant_bf16(uint16_t *dst, NF4_ARGS, int64_t e0, int64_t e1) {
	float t[64];
	int64_t e = e0;
	while (e < e1) {
		int64_t b = e / 64, end = 64 * (b + 1) < e1 ? 64 * (b + 1) : e1;
		float s = NF4_SCALE(b);
#if Q_X86
		if (e == 64 * b && end == e + 64 && q_level == Q_AVX512) {
			nf4_dequant_bf16_512(dst, codes + 32 * b, s);
		} else
#endif
		{
			nf4_dequant_scalar(t, codes, s, e, end, 1);
			for (int64_t i = 0; i < end - e; i++) {
				uint32_t u;
				memcpy(&u, t + i, 4);
				dst[i] = (uint16_t)(u >> 16);
			}
		}
		dst += end - e;
		e = end;
	}
}

void q_nf4_dequant_tile_bf16(uint16_t *dst, int64_t ldd, NF4_ARGS, int64_t K, int64_t n0, int64_t n1,
                             int64_t k0, int64_t k1) {
	for (int64_t n = n0; n < n1; n++) q_nf4_dequant_bf16(dst + (n - n0) * ldd, NF4_PASS, n * K + k0, n * K + k1);
}

size_t q_nf4_xp_len(int64_t K) { return (size_t)K; }

void q_nf4_prep(float *xp, const float *x, int64_t K) {
#if Q_X86
	if (q_level == Q_AVX512) {
		nf4_prep_512(xp, x, K);
		return;
	}
	if (q_level == Q_AVX2) {
		nf4_prep_256(xp, x, K);
		return;
	}
#endif
	memcpy(xp, x, (size_t)K * 4);
}

void q_nf4_matvec(float *out, NF4_ARGS, const float *xp, int64_t K, int64_t n0, int64_t n1, int bw) {
#if Q_X86
	if (q_level == Q_AVX512) {
		if (absmax)
			nf4_matvec_512_abs(out, NF4_PASS, xp, K, n0, n1, bw);
		else
			nf4_matvec_512_dq(out, NF4_PASS, xp, K, n0, n1, bw);
		return;
	}
	if (q_level == Q_AVX2) {
		if (absmax)
			nf4_matvec_256_abs(out, NF4_PASS, xp, K, n0, n1, bw);
		else
			nf4_matvec_256_dq(out, NF4_PASS, xp, K, n0, n1, bw);
		return;
	}
#endif
	nf4_matvec_scalar(out, NF4_PASS, xp, K, n0, n1, bw);
}

int64_t q_q8_quantize(int8_t *qs, float *scales, const void *src, int dt, int64_t n,
                      int64_t b0, int64_t b1) {
	float v[32];
	int8_t tmp[32];
	for (int64_t b = b0; b < b1; b++) {
		int64_t e0 = 32 * b, cnt = n - e0 < 32 ? n - e0 : 32;
		widen(v, src, dt, e0, cnt);
		if (cnt < 32) memset(v + cnt, 0, (size_t)(32 - cnt) * 4);
		int8_t *out = cnt == 32 ? qs + e0 : tmp;
		int bad = 0;
		float d;
#if Q_X86
		if (q_level == Q_AVX512)
			d = q8_quant_block_512(out, v, &bad);
		else if (q_level == Q_AVX2)
			d = q8_quant_block_256(out, v, &bad);
		else
#endif
		{
			bad = first_bad(v, cnt, e0) >= 0;
			d = q8_quant_block_scalar(out, v);
		}
		if (bad) return first_bad(v, cnt, e0);
		if (d != 0 && isinf(1.0f / d)) d = q8_quant_block_scalar(out, v);
		scales[b] = d;
		if (cnt < 32) memcpy(qs + e0, tmp, (size_t)cnt);
	}
	return -1;
}

void q_q8_dequant(float *dst, const int8_t *qs, const float *scales, int64_t e0, int64_t e1) {
	int64_t e = e0;
	while (e < e1) {
		int64_t b = e / 32, end = 32 * (b + 1) < e1 ? 32 * (b + 1) : e1;
		float s = scales[b];
#if Q_X86
		if (e == 32 * b && end == e + 32 && q_level >= Q_AVX2) {
			if (q_level == Q_AVX512)
				q8_dequant_block_512(dst, qs + e, s);
			else
				q8_dequant_block_256(dst, qs + e, s);
		} else
#endif
			q8_dequant_scalar(dst, qs, s, e, end);
		dst += end - e;
		e = end;
	}
}

void q_q8_dequant_tile(float *dst, int64_t ldd, const int8_t *qs, const float *scales,
                       int64_t K, int64_t n0, int64_t n1, int64_t k0, int64_t k1) {
	for (int64_t n = n0; n < n1; n++) q_q8_dequant(dst + (n - n0) * ldd, qs, scales, n * K + k0, n * K + k1);
}

void q_q8_matvec(float *out, const int8_t *qs, const float *scales, const float *x,
                 int64_t K, int64_t n0, int64_t n1) {
#if Q_X86
	if (q_level == Q_AVX512) {
		q8_matvec_512(out, qs, scales, x, K, n0, n1);
		return;
	}
	if (q_level == Q_AVX2) {
		q8_matvec_256(out, qs, scales, x, K, n0, n1);
		return;
	}
#endif
	q8_matvec_scalar(out, qs, scales, x, K, n0, n1);
}
