//go:build cgo

// Element-wise and attention kernels. They keep the reference's arithmetic
// (same operations in the same precision, f64 for RMSNorm's sum of squares)
// and change only the order of sums and the exp: a Cephes-style polynomial
// exp accurate to about 1 ulp, which libm's expf replaces in the scalar path.
#include "halfconv.h"
#include "kernels.h"
#include "vexp.h"

#include <math.h>
#include <string.h>

#if (defined(__x86_64__) || defined(__i386__)) && !defined(DT_NO_X86)
#define DT_X86 1
#include <immintrin.h>
#endif

// ---- scalar ----------------------------------------------------------------

static void rmsnorm_row_scalar(float *out, const float *x, const float *w, int64_t d, float eps) {
	double ss = 0;
	for (int64_t i = 0; i < d; i++) ss += (double)x[i] * (double)x[i];
	float inv = (float)(1.0 / sqrt(ss / (double)d + (double)eps));
	for (int64_t i = 0; i < d; i++) out[i] = x[i] * inv * w[i];
}

static inline float silu_mul(float g, float u) { return g / (1 + expf(-g)) * u; }

// kv_at is element i of a K or V cache: f32, or bf16 widened (kv16) — exact,
// so a bf16 cache multiplies the values an f32 cache of rounded rows holds.
static inline float kv_at(const void *base, int64_t i, int kv16) {
	return kv16 ? bf16_f32(((const uint16_t *)base)[i]) : ((const float *)base)[i];
}

static float dot_scalar(const float *a, const void *b, int64_t off, int64_t n, int kv16) {
	float s = 0;
	for (int64_t i = 0; i < n; i++) s += a[i] * kv_at(b, off + i, kv16);
	return s;
}

static void attn_scalar(float *out, const float *q, const void *k, const void *v,
                        int64_t g, int64_t qstride, int64_t n, int64_t kvstride, int64_t hd,
                        float scale, float *scores, int round_p, int kv16) {
	for (int64_t p = 0; p < n; p++)
		for (int64_t h = 0; h < g; h++) scores[h * n + p] = dot_scalar(q + h * qstride, k, p * kvstride, hd, kv16) * scale;
	for (int64_t h = 0; h < g; h++) {
		float *s = scores + h * n;
		float m = -INFINITY;
		for (int64_t p = 0; p < n; p++)
			if (s[p] > m) m = s[p];
		float sum = 0;
		for (int64_t p = 0; p < n; p++) {
			s[p] = expf(s[p] - m);
			sum += s[p];
		}
		for (int64_t p = 0; p < n; p++) s[p] /= sum;
		if (round_p) dt_bf16_round(s, n); // BF16Attention's P
		memset(out + h * qstride, 0, (size_t)hd * 4);
	}
	for (int64_t p = 0; p < n; p++)
		for (int64_t h = 0; h < g; h++) {
			float w = scores[h * n + p], *o = out + h * qstride;
			for (int64_t j = 0; j < hd; j++) o[j] += w * kv_at(v, p * kvstride + j, kv16);
		}
}

#if DT_X86

// ---- AVX-512 ---------------------------------------------------------------

#define T512 __attribute__((target("avx512f,avx512bw,fma,f16c")))

T512 static void rmsnorm_512(float *out, const float *x, const float *w, int64_t rows, int64_t d, float eps) {
	int64_t db = d & ~(int64_t)15;
	__mmask16 tail = (__mmask16)((1u << (d - db)) - 1);
	for (int64_t r = 0; r < rows; r++) {
		const float *xr = x + r * d;
		float *o = out + r * d;
		__m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
		for (int64_t i = 0; i < d; i += 16) {
			__m512 v = i < db ? _mm512_loadu_ps(xr + i) : _mm512_maskz_loadu_ps(tail, xr + i);
			__m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
			__m512d hi = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
			s0 = _mm512_fmadd_pd(lo, lo, s0);
			s1 = _mm512_fmadd_pd(hi, hi, s1);
		}
		double ss = _mm512_reduce_add_pd(_mm512_add_pd(s0, s1));
		__m512 inv = _mm512_set1_ps((float)(1.0 / sqrt(ss / (double)d + (double)eps)));
		int64_t i = 0;
		for (; i < db; i += 16)
			_mm512_storeu_ps(o + i, _mm512_mul_ps(_mm512_mul_ps(_mm512_loadu_ps(xr + i), inv), _mm512_loadu_ps(w + i)));
		if (tail)
			_mm512_mask_storeu_ps(o + i, tail, _mm512_mul_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(tail, xr + i), inv),
			                                                 _mm512_maskz_loadu_ps(tail, w + i)));
	}
}

T512 static inline __m512 swiglu512(__m512 g, __m512 u) {
	__m512 e = exp512(_mm512_sub_ps(_mm512_setzero_ps(), g));
	return _mm512_mul_ps(_mm512_div_ps(g, _mm512_add_ps(_mm512_set1_ps(1.0f), e)), u);
}

T512 static void swiglu_512(float *gate, const float *up, int64_t n) {
	int64_t i = 0;
	for (; i + 16 <= n; i += 16) _mm512_storeu_ps(gate + i, swiglu512(_mm512_loadu_ps(gate + i), _mm512_loadu_ps(up + i)));
	if (i < n) {
		__mmask16 m = (__mmask16)((1u << (n - i)) - 1);
		_mm512_mask_storeu_ps(gate + i, m, swiglu512(_mm512_maskz_loadu_ps(m, gate + i), _mm512_maskz_loadu_ps(m, up + i)));
	}
}

T512 static void add_512(float *dst, const float *src, int64_t n) {
	int64_t i = 0;
	for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, _mm512_add_ps(_mm512_loadu_ps(dst + i), _mm512_loadu_ps(src + i)));
	for (; i < n; i++) dst[i] += src[i];
}

// widen_512 sets rows of dst (cols values each, ds apart) to the bf16 rows
// of src (ss apart) widened exactly: a shift into the high half.
T512 static inline void widen_512(float *dst, int64_t ds, const uint16_t *src, int64_t ss, int64_t rows, int64_t cols) {
	int64_t cb = cols & ~(int64_t)15;
	__mmask16 tail = (__mmask16)((1u << (cols - cb)) - 1);
	for (int64_t r = 0; r < rows; r++) {
		const uint16_t *sr = src + r * ss;
		int64_t j = 0;
		for (; j < cb; j += 16) {
			__m256i h = _mm256_loadu_si256((const __m256i *)(sr + j));
			_mm512_storeu_ps(dst + r * ds + j, _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)));
		}
		if (tail) {
			__m256i h = _mm512_castsi512_si256(_mm512_maskz_loadu_epi16((__mmask32)tail, sr + j));
			_mm512_mask_storeu_ps(dst + r * ds + j, tail, _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)));
		}
	}
}

T512 static inline float dot512(const float *a, const float *b, int64_t n) {
	__m512 s = _mm512_setzero_ps();
	int64_t i = 0;
	for (; i + 16 <= n; i += 16) s = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s);
	if (i < n) {
		__mmask16 m = (__mmask16)((1u << (n - i)) - 1);
		s = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), s);
	}
	return _mm512_reduce_add_ps(s);
}

// reduce16 returns the vector of the 16 horizontal sums of a[0..15]: a
// transpose-and-add tree, 45 operations instead of 16 full reductions.
T512 static inline __m512 reduce16(const __m512 *a) {
	__m512 r[4];
	for (int i = 0; i < 4; i++) {
		// within each 128-bit lane: [x0+x2, y0+y2, x1+x3, y1+y3] for pairs
		__m512 t0 = _mm512_add_ps(_mm512_unpacklo_ps(a[4 * i], a[4 * i + 1]), _mm512_unpackhi_ps(a[4 * i], a[4 * i + 1]));
		__m512 t1 = _mm512_add_ps(_mm512_unpacklo_ps(a[4 * i + 2], a[4 * i + 3]), _mm512_unpackhi_ps(a[4 * i + 2], a[4 * i + 3]));
		// lane L: the partial sums of a[4i..4i+3] over lane L
		r[i] = _mm512_add_ps(_mm512_shuffle_ps(t0, t1, _MM_SHUFFLE(1, 0, 1, 0)), _mm512_shuffle_ps(t0, t1, _MM_SHUFFLE(3, 2, 3, 2)));
	}
	__m512 s01 = _mm512_add_ps(_mm512_shuffle_f32x4(r[0], r[1], _MM_SHUFFLE(2, 0, 2, 0)), _mm512_shuffle_f32x4(r[0], r[1], _MM_SHUFFLE(3, 1, 3, 1)));
	__m512 s23 = _mm512_add_ps(_mm512_shuffle_f32x4(r[2], r[3], _MM_SHUFFLE(2, 0, 2, 0)), _mm512_shuffle_f32x4(r[2], r[3], _MM_SHUFFLE(3, 1, 3, 1)));
	return _mm512_add_ps(_mm512_shuffle_f32x4(s01, s23, _MM_SHUFFLE(2, 0, 2, 0)), _mm512_shuffle_f32x4(s01, s23, _MM_SHUFFLE(3, 1, 3, 1)));
}

// attn_pv_512 adds weights(g, np keys) · v(np rows, 16·nv columns) into out,
// keeping the nv ≤ 4 output vectors of a head in registers; the last vector
// is masked by m. v's rows are vs apart; head h's weights start at w + h·n.
T512 static inline void attn_pv_512(float *out, const float *v, int64_t vs, const float *w, int64_t g, int64_t qstride,
                                    int64_t n, int64_t np, int nv, __mmask16 m) {
	for (int64_t h = 0; h < g; h++) {
		float *o = out + h * qstride;
		const float *wh = w + h * n;
		__m512 a[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
		for (int c = 0; c < 4; c++)
			if (c < nv) a[c] = _mm512_maskz_loadu_ps(c == nv - 1 ? m : 0xffff, o + 16 * c);
		for (int64_t p = 0; p < np; p++) {
			__m512 wp = _mm512_set1_ps(wh[p]);
			const float *vp = v + p * vs;
			for (int c = 0; c < 4; c++)
				if (c < nv) a[c] = _mm512_fmadd_ps(wp, _mm512_maskz_loadu_ps(c == nv - 1 ? m : 0xffff, vp + 16 * c), a[c]);
		}
		for (int c = 0; c < 4; c++)
			if (c < nv) _mm512_mask_storeu_ps(o + 16 * c, c == nv - 1 ? m : 0xffff, a[c]);
	}
}

// attn_512 is one kernel for both caches, inlined into attn_512_f32 and
// attn_512_bf16 with kv16 a constant. A bf16 cache's blocks of keys (16
// rows) and values (64 rows by 64 columns) are widened once into wide (16·hd
// + 64·64 floats) for the g heads that read them: exact, so the products
// are the f32 cache's.
T512 static inline __attribute__((always_inline)) void attn_512(float *out, const float *q, const void *k, const void *v,
                          int64_t g, int64_t qstride, int64_t n, int64_t kvstride, int64_t hd,
                          float scale, float *scores, float *wide, int round_p, int kv16) {
	const int64_t esz = kv16 ? 2 : 4, line = 64 / esz; // a cache line's values
	int64_t hb = hd & ~(int64_t)15;
	__mmask16 htail = (__mmask16)((1u << (hd - hb)) - 1);
	__m512 vscale = _mm512_set1_ps(scale);
	// scores(g, n) = q·kᵀ · scale, 16 keys at a time: each block of key rows
	// is read from memory once for the g heads, each q vector once per block.
	int64_t p = 0;
	for (; p + 16 <= n; p += 16) {
		for (int i = 0; i < 16; i++)
			for (int64_t j = 0; j < hd; j += line)
				_mm_prefetch((const char *)k + ((p + 64 + i) * kvstride + j) * esz, _MM_HINT_T1);
		const float *kp = wide;
		int64_t ks = hd;
		if (kv16)
			widen_512(wide, hd, (const uint16_t *)k + p * kvstride, kvstride, 16, hd);
		else {
			kp = (const float *)k + p * kvstride;
			ks = kvstride;
		}
		for (int64_t h = 0; h < g; h++) {
			const float *qh = q + h * qstride;
			__m512 acc[16];
			for (int i = 0; i < 16; i++) acc[i] = _mm512_setzero_ps();
			int64_t j = 0;
			for (; j < hb; j += 16) {
				__m512 qv = _mm512_loadu_ps(qh + j);
				for (int i = 0; i < 16; i++) acc[i] = _mm512_fmadd_ps(qv, _mm512_loadu_ps(kp + i * ks + j), acc[i]);
			}
			if (htail) {
				__m512 qv = _mm512_maskz_loadu_ps(htail, qh + j);
				for (int i = 0; i < 16; i++) acc[i] = _mm512_fmadd_ps(qv, _mm512_maskz_loadu_ps(htail, kp + i * ks + j), acc[i]);
			}
			_mm512_storeu_ps(scores + h * n + p, _mm512_mul_ps(reduce16(acc), vscale));
		}
	}
	if (kv16 && p < n) widen_512(wide, hd, (const uint16_t *)k + p * kvstride, kvstride, n - p, hd);
	for (int64_t p1 = p; p < n; p++) {
		const float *kp = kv16 ? wide + (p - p1) * hd : (const float *)k + p * kvstride;
		for (int64_t h = 0; h < g; h++) scores[h * n + p] = dot512(q + h * qstride, kp, hd) * scale;
	}
	// softmax per head: max, exp, sum, divide (as the reference: w = e / sum).
	int64_t nb = n & ~(int64_t)15;
	__mmask16 tail = (__mmask16)((1u << (n - nb)) - 1);
	for (int64_t h = 0; h < g; h++) {
		float *s = scores + h * n;
		__m512 mx = _mm512_set1_ps(-INFINITY);
		for (p = 0; p < nb; p += 16) mx = _mm512_max_ps(mx, _mm512_loadu_ps(s + p));
		if (tail) mx = _mm512_mask_max_ps(mx, tail, mx, _mm512_maskz_loadu_ps(tail, s + p));
		__m512 m = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
		__m512 sum = _mm512_setzero_ps();
		for (p = 0; p < nb; p += 16) {
			__m512 e = exp512(_mm512_sub_ps(_mm512_loadu_ps(s + p), m));
			_mm512_storeu_ps(s + p, e);
			sum = _mm512_add_ps(sum, e);
		}
		if (tail) {
			__m512 e = exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, s + p), m));
			_mm512_mask_storeu_ps(s + p, tail, e);
			sum = _mm512_mask_add_ps(sum, tail, sum, e);
		}
		__m512 tot = _mm512_set1_ps(_mm512_reduce_add_ps(sum));
		for (p = 0; p < nb; p += 16) _mm512_storeu_ps(s + p, _mm512_div_ps(_mm512_loadu_ps(s + p), tot));
		if (tail) _mm512_mask_storeu_ps(s + p, tail, _mm512_div_ps(_mm512_maskz_loadu_ps(tail, s + p), tot));
		if (round_p) dt_bf16_round(s, n); // BF16Attention's P
		memset(out + h * qstride, 0, (size_t)hd * 4);
	}
	// out(g, hd) = weights(g, n) · v(n, hd), in blocks of 64 keys (16 KiB of
	// values at hd = 64, L1-resident for the g heads) and 64 columns.
	for (int64_t p0 = 0; p0 < n; p0 += 64) {
		int64_t p1 = p0 + 64 < n ? p0 + 64 : n;
		for (int64_t p = p0 + 64; p < p1 + 64 && p < n; p++)
			for (int64_t j = 0; j < hd; j += line) _mm_prefetch((const char *)v + (p * kvstride + j) * esz, _MM_HINT_T1);
		for (int64_t j0 = 0; j0 < hd; j0 += 64) {
			int64_t left = hd - j0, cols = left < 64 ? left : 64;
			int nv = (int)((cols + 15) / 16);
			__mmask16 m = cols % 16 ? (__mmask16)((1u << (cols % 16)) - 1) : 0xffff;
			const float *vb; // the block's values as f32: in place, or widened (wide is NULL for an f32 cache)
			int64_t vs;
			if (kv16) {
				vb = wide + 16 * hd;
				vs = 64;
				widen_512(wide + 16 * hd, 64, (const uint16_t *)v + p0 * kvstride + j0, kvstride, p1 - p0, cols);
			} else {
				vb = (const float *)v + p0 * kvstride + j0;
				vs = kvstride;
			}
			if (cols == 64)
				attn_pv_512(out + j0, vb, vs, scores + p0, g, qstride, n, p1 - p0, 4, 0xffff);
			else
				attn_pv_512(out + j0, vb, vs, scores + p0, g, qstride, n, p1 - p0, nv, m);
		}
	}
}

// ATTN_CACHES defines attn_<isa>_f32 and attn_<isa>_bf16: attn_<isa> with
// kv16 a constant, over an f32 cache or over a bf16 one whose rows it
// widens into scratch past the g·n scores.
#define ATTN_CACHES(isa, TARGET)                                                                                            \
	TARGET static void attn_##isa##_f32(float *out, const float *q, const void *k, const void *v, int64_t g,             \
	                                    int64_t qstride, int64_t n, int64_t kvstride, int64_t hd, float scale,          \
	                                    float *scores, int round_p) {                                                    \
		attn_##isa(out, q, k, v, g, qstride, n, kvstride, hd, scale, scores, NULL, round_p, 0);                       \
	}                                                                                                                 \
	TARGET static void attn_##isa##_bf16(float *out, const float *q, const void *k, const void *v, int64_t g,            \
	                                     int64_t qstride, int64_t n, int64_t kvstride, int64_t hd, float scale,         \
	                                     float *scores, int round_p) {                                                   \
		attn_##isa(out, q, k, v, g, qstride, n, kvstride, hd, scale, scores, scores + g * n, round_p, 1);             \
	}

ATTN_CACHES(512, T512)

// ---- AVX2 + FMA ------------------------------------------------------------

#define T256 __attribute__((target("avx2,fma,f16c")))

T256 static inline float hsum256(__m256 v) {
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

T256 static void rmsnorm_256(float *out, const float *x, const float *w, int64_t rows, int64_t d, float eps) {
	int64_t db = d & ~(int64_t)7;
	for (int64_t r = 0; r < rows; r++) {
		const float *xr = x + r * d;
		float *o = out + r * d;
		__m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
		int64_t i = 0;
		for (; i < db; i += 8) {
			__m256 v = _mm256_loadu_ps(xr + i);
			__m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(v));
			__m256d hi = _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
			s0 = _mm256_fmadd_pd(lo, lo, s0);
			s1 = _mm256_fmadd_pd(hi, hi, s1);
		}
		double t[4];
		_mm256_storeu_pd(t, _mm256_add_pd(s0, s1));
		double ss = (t[0] + t[1]) + (t[2] + t[3]);
		for (; i < d; i++) ss += (double)xr[i] * (double)xr[i];
		float invs = (float)(1.0 / sqrt(ss / (double)d + (double)eps));
		__m256 inv = _mm256_set1_ps(invs);
		for (i = 0; i < db; i += 8)
			_mm256_storeu_ps(o + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(xr + i), inv), _mm256_loadu_ps(w + i)));
		for (; i < d; i++) o[i] = xr[i] * invs * w[i];
	}
}

T256 static void swiglu_256(float *gate, const float *up, int64_t n) {
	int64_t i = 0;
	for (; i + 8 <= n; i += 8) {
		__m256 g = _mm256_loadu_ps(gate + i);
		__m256 e = exp256(_mm256_sub_ps(_mm256_setzero_ps(), g));
		_mm256_storeu_ps(gate + i, _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(_mm256_set1_ps(1.0f), e)), _mm256_loadu_ps(up + i)));
	}
	for (; i < n; i++) gate[i] = silu_mul(gate[i], up[i]);
}

T256 static void add_256(float *dst, const float *src, int64_t n) {
	int64_t i = 0;
	for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, _mm256_add_ps(_mm256_loadu_ps(dst + i), _mm256_loadu_ps(src + i)));
	for (; i < n; i++) dst[i] += src[i];
}

T256 static inline float dot256(const float *a, const float *b, int64_t n) {
	__m256 s = _mm256_setzero_ps();
	int64_t i = 0;
	for (; i + 8 <= n; i += 8) s = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s);
	float t = hsum256(s);
	for (; i < n; i++) t += a[i] * b[i];
	return t;
}

// widen_256 sets dst[0..n) to the bf16 values src[0..n) widened.
T256 static inline void widen_256(float *dst, const uint16_t *src, int64_t n) {
	int64_t i = 0;
	for (; i + 8 <= n; i += 8) {
		__m128i h = _mm_loadu_si128((const __m128i *)(src + i));
		_mm256_storeu_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16)));
	}
	for (; i < n; i++) dst[i] = bf16_f32(src[i]);
}

// kv_row_256 is row p of a K or V cache as f32: in place, or a bf16 row
// widened into wide (hd floats) for the g heads that read it.
T256 static inline const float *kv_row_256(const void *kv, int64_t p, int64_t kvstride, int64_t hd, float *wide, int kv16) {
	if (!kv16) return (const float *)kv + p * kvstride;
	widen_256(wide, (const uint16_t *)kv + p * kvstride, hd);
	return wide;
}

// attn_256 is attn_512's for AVX2: one kernel for both caches.
T256 static inline __attribute__((always_inline)) void attn_256(float *out, const float *q, const void *k, const void *v,
                          int64_t g, int64_t qstride, int64_t n, int64_t kvstride, int64_t hd,
                          float scale, float *scores, float *wide, int round_p, int kv16) {
	for (int64_t p = 0; p < n; p++) {
		const float *kp = kv_row_256(k, p, kvstride, hd, wide, kv16);
		for (int64_t h = 0; h < g; h++) scores[h * n + p] = dot256(q + h * qstride, kp, hd) * scale;
	}
	int64_t nb = n & ~(int64_t)7;
	for (int64_t h = 0; h < g; h++) {
		float *s = scores + h * n;
		float m = -INFINITY;
		for (int64_t p = 0; p < n; p++)
			if (s[p] > m) m = s[p];
		__m256 mv = _mm256_set1_ps(m), sum = _mm256_setzero_ps();
		int64_t p = 0;
		for (; p < nb; p += 8) {
			__m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(s + p), mv));
			_mm256_storeu_ps(s + p, e);
			sum = _mm256_add_ps(sum, e);
		}
		float tot = hsum256(sum);
		for (; p < n; p++) {
			s[p] = expf(s[p] - m);
			tot += s[p];
		}
		__m256 tv = _mm256_set1_ps(tot);
		for (p = 0; p < nb; p += 8) _mm256_storeu_ps(s + p, _mm256_div_ps(_mm256_loadu_ps(s + p), tv));
		for (; p < n; p++) s[p] /= tot;
		if (round_p) dt_bf16_round(s, n); // BF16Attention's P
		memset(out + h * qstride, 0, (size_t)hd * 4);
	}
	int64_t hb = hd & ~(int64_t)7;
	for (int64_t p = 0; p < n; p++) {
		const float *vp = kv_row_256(v, p, kvstride, hd, wide, kv16);
		for (int64_t h = 0; h < g; h++) {
			float ws = scores[h * n + p], *o = out + h * qstride;
			__m256 w = _mm256_set1_ps(ws);
			int64_t j = 0;
			for (; j < hb; j += 8) _mm256_storeu_ps(o + j, _mm256_fmadd_ps(w, _mm256_loadu_ps(vp + j), _mm256_loadu_ps(o + j)));
			for (; j < hd; j++) o[j] += ws * vp[j];
		}
	}
}

ATTN_CACHES(256, T256)

#endif // DT_X86

// ---- dispatch --------------------------------------------------------------

void dt_rmsnorm(float *out, const float *x, const float *w, int64_t rows, int64_t d, float eps) {
#if DT_X86
	if (dt_level == DT_AVX512) {
		rmsnorm_512(out, x, w, rows, d, eps);
		return;
	}
	if (dt_level == DT_AVX2) {
		rmsnorm_256(out, x, w, rows, d, eps);
		return;
	}
#endif
	for (int64_t r = 0; r < rows; r++) rmsnorm_row_scalar(out + r * d, x + r * d, w, d, eps);
}

void dt_swiglu(float *gate, const float *up, int64_t n) {
#if DT_X86
	if (dt_level == DT_AVX512) {
		swiglu_512(gate, up, n);
		return;
	}
	if (dt_level == DT_AVX2) {
		swiglu_256(gate, up, n);
		return;
	}
#endif
	for (int64_t i = 0; i < n; i++) gate[i] = silu_mul(gate[i], up[i]);
}

void dt_add(float *dst, const float *src, int64_t n) {
#if DT_X86
	if (dt_level == DT_AVX512) {
		add_512(dst, src, n);
		return;
	}
	if (dt_level == DT_AVX2) {
		add_256(dst, src, n);
		return;
	}
#endif
	for (int64_t i = 0; i < n; i++) dst[i] += src[i];
}

void dt_attn(float *out, const float *q, const void *k, const void *v,
             int64_t g, int64_t qstride, int64_t n, int64_t kvstride, int64_t hd,
             float scale, float *scores, int round_p, int kv16) {
#if DT_X86
	if (dt_level == DT_AVX512) {
		(kv16 ? attn_512_bf16 : attn_512_f32)(out, q, k, v, g, qstride, n, kvstride, hd, scale, scores, round_p);
		return;
	}
	if (dt_level == DT_AVX2) {
		(kv16 ? attn_256_bf16 : attn_256_f32)(out, q, k, v, g, qstride, n, kvstride, hd, scale, scores, round_p);
		return;
	}
#endif
	attn_scalar(out, q, k, v, g, qstride, n, kvstride, hd, scale, scores, round_p, kv16);
}
