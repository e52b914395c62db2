//go:build cgo

// BF16 GEMM for prefill and training: c(m, n) (+)= a(m, k) · b(n, k)ᵀ, or
// a(m, k) · b(k, n) for training's products through frozen weights, with a
// and b in bfloat16 and every product and sum in f32, on AVX-512 BF16's
// vdpbf16ps, which multiplies two pairs of bf16 into each f32 lane: twice
// the arithmetic of an f32 FMA per instruction (measured 234 against 117
// GFLOP/s a core on the Zen 4 these figures come from). The products of two
// bf16 are exact in f32, so the result differs from an f32 GEMM over the
// same (bf16-valued) operands only in the order of its sums — and in that
// vdpbf16ps reads subnormal inputs as zero and flushes subnormal results,
// values below 1.2e-38 that no weight or activation of note reaches. What
// it loses against an f32 GEMM of the f32 activations is their rounding.
//
// Layout: c's columns are cut into strips of 64 (the micro-kernel's width)
// and k into blocks of DT_KC; each strip-block of b is packed pair-major — for each
// pair of k, 16 columns × 2 values per zmm — into the caller's scratch, and
// then every 6-row block of a runs over it. The packed strip (128 KiB) stays
// in L2 while a's rows stream past; 24 accumulators, 4 loads of b and 6
// broadcasts of a per pair of k keep the dot-product unit busy.
#include "kernels.h"
#include "bf16round.h"

#include <string.h>

#if (defined(__x86_64__) || defined(__i386__)) && !defined(DT_NO_X86)
#define DT_X86 1
#include <immintrin.h>
#endif

#define DT_NR 64   // columns of c per micro-kernel (4 zmm)
#define DT_MR 6    // rows of c per micro-kernel
#define DT_KC 1024 // k per packed block (even)

// The pack scratch: the packed strip, then (for AMX) a block of 32 rows of
// a over one k block.
size_t dt_gemm_bf16_pack_len(void) { return (size_t)DT_NR * DT_KC + 32 * DT_KC; }

// bf16 of x, rounded to nearest even; NaN stays NaN (quiet).
static inline uint16_t f32_bf16(float x) {
	uint32_t u;
	memcpy(&u, &x, 4);
	if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
	u += 0x7fffu + ((u >> 16) & 1);
	return (uint16_t)(u >> 16);
}

#if (defined(__x86_64__) || defined(__i386__)) && !defined(DT_NO_X86)
// bf16_row_512 is f32_bf16 over 16 values at a time (NaN quieted alike).
static __attribute__((target("avx512f,avx512bw"))) int64_t bf16_row_512(uint16_t *d, const float *s, int64_t k) {
	int64_t j = 0;
	for (; j + 16 <= k; j += 16)
		_mm256_storeu_si256((__m256i *)(d + j), _mm512_cvtepi32_epi16(bf16_lanes_512(_mm512_loadu_si512(s + j))));
	return j;
}

// bf16_round_512 is dt_bf16_round over 16 values at a time.
static __attribute__((target("avx512f,avx512bw"))) int64_t bf16_round_512(float *v, int64_t n) {
	const __m512i absm = _mm512_set1_epi32(0x7fffffff), inf = _mm512_set1_epi32(0x7f800000);
	const __m512i one = _mm512_set1_epi32(1), half = _mm512_set1_epi32(0x7fff), quiet = _mm512_set1_epi32(0x400000);
	const __m512i top = _mm512_set1_epi32((int)0xffff0000u);
	int64_t j = 0;
	for (; j + 16 <= n; j += 16) {
		__m512i u = _mm512_loadu_si512(v + j);
		__mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, absm), inf);
		__m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), one);
		__m512i r = _mm512_and_si512(_mm512_add_epi32(u, _mm512_add_epi32(half, lsb)), top);
		r = _mm512_mask_mov_epi32(r, nan, _mm512_and_si512(_mm512_or_si512(u, quiet), top));
		_mm512_storeu_si512(v + j, r);
	}
	return j;
}
#endif

// dt_bf16_round rounds v's n values to bf16 precision in place (the f32
// whose low 16 bits are zero, nearest even; NaN quieted as f32_bf16 does).
void dt_bf16_round(float *v, int64_t n) {
	int64_t j = 0;
#if (defined(__x86_64__) || defined(__i386__)) && !defined(DT_NO_X86)
	if (dt_level == DT_AVX512) j = bf16_round_512(v, n);
#endif
	for (; j < n; j++) {
		uint32_t u = (uint32_t)f32_bf16(v[j]) << 16;
		memcpy(v + j, &u, 4);
	}
}

void dt_bf16_cols(uint16_t *dst, int64_t ldd, const float *src, int64_t lds, int64_t m, int64_t k) {
	for (int64_t i0 = 0; i0 < m; i0 += 16)
		for (int64_t j0 = 0; j0 < k; j0 += 16) {
			int64_t i1 = i0 + 16 < m ? i0 + 16 : m, j1 = j0 + 16 < k ? j0 + 16 : k;
			for (int64_t j = j0; j < j1; j++)
				for (int64_t i = i0; i < i1; i++) dst[j * ldd + i] = f32_bf16(src[i * lds + j]);
		}
	for (int64_t j = 0; j < k; j++)
		for (int64_t i = m; i < ldd; i++) dst[j * ldd + i] = 0;
}

void dt_bf16_rows(uint16_t *dst, int64_t ldd, const float *src, int64_t lds, int64_t m, int64_t k) {
	for (int64_t i = 0; i < m; i++) {
		const float *s = src + i * lds;
		uint16_t *d = dst + i * ldd;
		int64_t j = 0;
#if (defined(__x86_64__) || defined(__i386__)) && !defined(DT_NO_X86)
		if (dt_level == DT_AVX512) j = bf16_row_512(d, s, k);
#endif
		for (; j < k; j++) d[j] = f32_bf16(s[j]);
		for (j = k; j < ldd; j++) d[j] = 0;
	}
}

#if DT_X86

#define TBF __attribute__((target("avx512f,avx512bw,avx512bf16,fma")))

int dt_have_bf16(void) {
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
	       __builtin_cpu_supports("avx512bf16");
}

// tr16 transposes a 16×16 block of 32-bit pairs: row i of the block (16
// pairs of column i of c, 4·ldb bytes apart in src) becomes the i-th value
// of 16 rows of dst, 64 pairs apart — unpacks within 128-bit lanes, then
// two rounds of lane shuffles.
static inline TBF void tr16(uint32_t *dst, const uint32_t *src, int64_t lds) {
	__m512i r[16], t[16], u[16];
	for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_si512(src + i * lds);
	for (int i = 0; i < 16; i += 2) {
		t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
		t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
	}
	// u[4g + c] holds, in lane L, column 4L + c of rows 4g..4g+3.
	for (int g = 0; g < 4; g++) {
		u[4 * g + 0] = _mm512_unpacklo_epi64(t[4 * g], t[4 * g + 2]);
		u[4 * g + 1] = _mm512_unpackhi_epi64(t[4 * g], t[4 * g + 2]);
		u[4 * g + 2] = _mm512_unpacklo_epi64(t[4 * g + 1], t[4 * g + 3]);
		u[4 * g + 3] = _mm512_unpackhi_epi64(t[4 * g + 1], t[4 * g + 3]);
	}
	for (int c = 0; c < 4; c++) {
		__m512i a0 = _mm512_shuffle_i32x4(u[c], u[4 + c], 0x88);     // lanes 0, 2 of rows 0-3, 4-7
		__m512i a1 = _mm512_shuffle_i32x4(u[c], u[4 + c], 0xdd);     // lanes 1, 3
		__m512i b0 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0x88); // rows 8-11, 12-15
		__m512i b1 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0xdd);
		_mm512_storeu_si512(dst + (c + 0) * DT_NR, _mm512_shuffle_i32x4(a0, b0, 0x88));
		_mm512_storeu_si512(dst + (c + 8) * DT_NR, _mm512_shuffle_i32x4(a0, b0, 0xdd));
		_mm512_storeu_si512(dst + (c + 4) * DT_NR, _mm512_shuffle_i32x4(a1, b1, 0x88));
		_mm512_storeu_si512(dst + (c + 12) * DT_NR, _mm512_shuffle_i32x4(a1, b1, 0xdd));
	}
}

// pack_strip writes columns [0, nb) of b (rows of b, ldb apart) over k in
// [k0, k0+kc) pair-major into p: p[(q·64 + j)·2 + e] = b[j][k0 + 2q + e],
// zero past nb columns and past k. Whole 16×16 blocks of pairs go through
// tr16 when b's rows are 4-byte aligned (ldb even); the rest one by one.
static TBF void pack_strip(uint16_t *p, const uint16_t *b, int64_t ldb, int64_t nb, int64_t k0, int64_t kc,
                           int64_t k) {
	int64_t pairs = (kc + 1) / 2;
	int64_t full = (k0 + kc <= k ? kc : k - k0) / 2; // whole pairs inside k
	uint32_t *p32 = (uint32_t *)p;
	int64_t j0 = 0, qv = 0;
	if ((ldb & 1) == 0 && ((uintptr_t)b & 3) == 0) {
		qv = full & ~(int64_t)15;
		for (; j0 + 16 <= nb; j0 += 16)
			for (int64_t q = 0; q < qv; q += 16)
				tr16(p32 + q * DT_NR + j0, (const uint32_t *)(b + j0 * ldb + k0) + q, ldb / 2);
	}
	for (int64_t j = 0; j < DT_NR; j++) {
		if (j >= nb) {
			for (int64_t q = 0; q < pairs; q++) p32[q * DT_NR + j] = 0;
			continue;
		}
		const uint16_t *r = b + j * ldb + k0;
		for (int64_t q = j < j0 ? qv : 0; q < full; q++) {
			uint32_t v;
			memcpy(&v, r + 2 * q, 4);
			p32[q * DT_NR + j] = v;
		}
		for (int64_t q = full; q < pairs; q++) {
			int64_t kk = k0 + 2 * q;
			uint32_t lo = kk < k ? r[2 * q] : 0;
			p32[q * DT_NR + j] = lo; // the pair's second value lies past k
		}
	}
}

// pack_strip_kn is pack_strip for b stored (k, n), row-major: p's pair q
// of column j is (b[k0+2q][j], b[k0+2q+1][j]), zero past nb and past k —
// two rows interleaved 16 bits at a time (32 columns per permute) for a
// whole strip, one column at a time otherwise.
static TBF void pack_strip_kn(uint16_t *p, const uint16_t *b, int64_t ldb, int64_t nb, int64_t k0, int64_t kc,
                              int64_t k) {
	int64_t pairs = (kc + 1) / 2;
	uint32_t *p32 = (uint32_t *)p;
	const __m512i lo = _mm512_set_epi16(47, 15, 46, 14, 45, 13, 44, 12, 43, 11, 42, 10, 41, 9, 40, 8,
	                                    39, 7, 38, 6, 37, 5, 36, 4, 35, 3, 34, 2, 33, 1, 32, 0);
	const __m512i hi = _mm512_add_epi16(lo, _mm512_set1_epi16(16));
	for (int64_t q = 0; q < pairs; q++) {
		int64_t r = k0 + 2 * q;
		const uint16_t *r0 = b + r * ldb;
		const uint16_t *r1 = r + 1 < k ? r0 + ldb : NULL;
		uint32_t *d = p32 + q * DT_NR;
		if (nb == DT_NR) {
			for (int j = 0; j < DT_NR; j += 32) {
				__m512i a = _mm512_loadu_si512(r0 + j);
				__m512i c = r1 ? _mm512_loadu_si512(r1 + j) : _mm512_setzero_si512();
				_mm512_storeu_si512(d + j, _mm512_permutex2var_epi16(a, lo, c));
				_mm512_storeu_si512(d + j + 16, _mm512_permutex2var_epi16(a, hi, c));
			}
			continue;
		}
		for (int64_t j = 0; j < DT_NR; j++)
			d[j] = j < nb ? (uint32_t)r0[j] | (r1 ? (uint32_t)r1[j] << 16 : 0) : 0;
	}
}

// mk runs one micro-kernel: c[i][j] (+)= Σ_q a[i][2q..2q+1]·p[q][j] for
// i < mr, j < nb, q < pairs. Forced inline with constant mr and nv so that
// the accumulators live in registers.
static inline __attribute__((always_inline)) TBF void mk(int mr, int nv, const uint16_t *a, int64_t lda,
                                                        const uint16_t *p, int64_t pairs, float *c,
                                                        int64_t ldc, int64_t nb, int add) {
	__m512 acc[DT_MR][4];
#pragma GCC unroll 6
	for (int i = 0; i < DT_MR; i++)
#pragma GCC unroll 4
		for (int v = 0; v < 4; v++) acc[i][v] = _mm512_setzero_ps();
	const uint32_t *p32 = (const uint32_t *)p;
	for (int64_t q = 0; q < pairs; q++) {
		__m512bh bv[4];
#pragma GCC unroll 4
		for (int v = 0; v < 4; v++)
			if (v < nv) bv[v] = (__m512bh)_mm512_loadu_si512(p32 + q * DT_NR + 16 * v);
#pragma GCC unroll 6
		for (int i = 0; i < DT_MR; i++) {
			if (i >= mr) break;
			int32_t ai;
			memcpy(&ai, a + i * lda + 2 * q, 4);
			__m512bh av = (__m512bh)_mm512_set1_epi32(ai);
#pragma GCC unroll 4
			for (int v = 0; v < 4; v++)
				if (v < nv) acc[i][v] = _mm512_dpbf16_ps(acc[i][v], av, bv[v]);
		}
	}
#pragma GCC unroll 6
	for (int i = 0; i < DT_MR; i++) {
		if (i >= mr) break;
		float *ci = c + i * ldc;
#pragma GCC unroll 4
		for (int v = 0; v < 4; v++) {
			if (v >= nv) break;
			int64_t left = nb - 16 * v;
			__mmask16 msk = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
			__m512 r = acc[i][v];
			if (add) r = _mm512_add_ps(r, _mm512_maskz_loadu_ps(msk, ci + 16 * v));
			_mm512_mask_storeu_ps(ci + 16 * v, msk, r);
		}
	}
}

#define MK_NV(mr, nv) mk(mr, nv, a, lda, p, pairs, c, ldc, nb, add)
#define MK_MR(mr)                          \
	switch (nv) {                          \
	case 4: MK_NV(mr, 4); break;           \
	case 3: MK_NV(mr, 3); break;           \
	case 2: MK_NV(mr, 2); break;           \
	default: MK_NV(mr, 1); break;          \
	}

static TBF void mk_any(int mr, int nv, const uint16_t *a, int64_t lda, const uint16_t *p, int64_t pairs,
                       float *c, int64_t ldc, int64_t nb, int add) {
	switch (mr) {
	case 6: MK_MR(6); break;
	case 5: MK_MR(5); break;
	case 4: MK_MR(4); break;
	case 3: MK_MR(3); break;
	case 2: MK_MR(2); break;
	default: MK_MR(1); break;
	}
}

// DT_AMX_PAD_MIN is the fewest rows left after the blocks of 32 (or in all)
// that run on tiles, as a block of 32 whose rows past m are dropped: on a
// CPU with AMX a tile block of 32 rows costs less than 8 rows on vdpbf16ps
// (about 1/8 the rate there). Loss chunks of 55 rows over Qwen's
// vocabulary left 23 on vdpbf16ps, a sixth of a QLoRA step's time
// (Qwen2.5-0.5B, 512 tokens: 2.93–2.95 → 2.46–2.53 s); attention's last
// block of a segment, and prompts, are any number of rows.
#define DT_AMX_PAD_MIN 8

void dt_gemm_bf16(float *c, int64_t ldc, const uint16_t *a, int64_t lda, const uint16_t *b, int64_t ldb,
                  int64_t m, int64_t n, int64_t k, int bkn, int acc, uint16_t *pack) {
	// With AMX (gemm_amx.c), blocks of 32 rows run on tiles over the
	// strip's whole 16-pair groups; the pairs after them, and fewer than
	// DT_AMX_PAD_MIN rows after the last block of 32, on vdpbf16ps.
	int amx = m >= DT_AMX_PAD_MIN && dt_amx_active();
	int64_t m32 = m & ~(int64_t)31, rest = m - m32;
	int pad = amx && rest >= DT_AMX_PAD_MIN;
	// The rows after the last block of 32, DT_KC apart; its rows past m hold
	// whatever the scratch held, and their products are dropped.
	uint16_t *rows = pack + (size_t)DT_NR * DT_KC;
	if (amx) dt_amx_begin();
	for (int64_t k0 = 0; k0 < k; k0 += DT_KC) {
		int64_t kc = k - k0 < DT_KC ? k - k0 : DT_KC;
		int64_t pairs = (kc + 1) / 2;
		int64_t qn = amx ? pairs & ~(int64_t)15 : 0;
		int add = acc || k0 > 0;
		if (pad && qn > 0)
			for (int64_t i = 0; i < rest; i++) memcpy(rows + i * DT_KC, a + (m32 + i) * lda + k0, 4 * qn);
		for (int64_t j0 = 0; j0 < n; j0 += DT_NR) {
			int64_t nb = n - j0 < DT_NR ? n - j0 : DT_NR;
			int nv = (int)((nb + 15) / 16);
			if (bkn)
				pack_strip_kn(pack, b + j0, ldb, nb, k0, kc, k);
			else
				pack_strip(pack, b + j0 * ldb, ldb, nb, k0, kc, k);
			int64_t tiled = qn > 0 ? (pad ? m : m32) : 0; // rows on tiles
			for (int64_t i0 = 0; i0 < tiled; i0 += 32) {
				int64_t mr = tiled - i0 < 32 ? tiled - i0 : 32;
				const uint16_t *ai = i0 < m32 ? a + i0 * lda + k0 : rows;
				dt_amx_rows32(ai, i0 < m32 ? lda : DT_KC, pack, qn, c + i0 * ldc + j0, ldc, nb, mr, add);
				for (int64_t i = i0; qn < pairs && i < i0 + mr; i += DT_MR) {
					int r = i0 + mr - i < DT_MR ? (int)(i0 + mr - i) : DT_MR;
					mk_any(r, nv, a + i * lda + k0 + 2 * qn, lda, pack + 2 * qn * DT_NR, pairs - qn,
					       c + i * ldc + j0, ldc, nb, 1);
				}
			}
			for (int64_t i0 = tiled; i0 < m; i0 += DT_MR) {
				int mr = m - i0 < DT_MR ? (int)(m - i0) : DT_MR;
				mk_any(mr, nv, a + i0 * lda + k0, lda, pack, pairs, c + i0 * ldc + j0, ldc, nb, add);
			}
		}
	}
	if (amx) dt_amx_end();
}

#else

int dt_have_bf16(void) { return 0; }

void dt_gemm_bf16(float *c, int64_t ldc, const uint16_t *a, int64_t lda, const uint16_t *b, int64_t ldb,
                  int64_t m, int64_t n, int64_t k, int bkn, int acc, uint16_t *pack) {
	(void)c, (void)ldc, (void)a, (void)lda, (void)b, (void)ldb, (void)m, (void)n, (void)k, (void)bkn, (void)acc,
	    (void)pack;
}

#endif
