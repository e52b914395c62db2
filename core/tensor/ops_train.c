//go:build cgo

// Element-wise kernels of training's CPU step (core/train): SwiGLU forward
// and backward, a softmax row with its log-sum-exp, and the attention
// backward's rebuild of P and dS. Each keeps the Go reference's operations
// (ref_train.go) and changes only the exp — vexp.h's, or libm's expf in
// the scalar path, where the reference's is f64 rounded to f32 — and the
// order of sums, which stay f64. One consequence: σ(g) for g below about
// −88.7 is a subnormal in f64 but 0 here (e^-g overflows f32), so SwiGLU's
// output there is 0 (or −0) instead of ~1e-40.
#include "bf16round.h"
#include "kernels.h"
#include "vexp.h"

#include <math.h>
#include <string.h>

// ---- scalar ----------------------------------------------------------------

static inline float sigm(float g) { return 1.0f / (1.0f + expf(-g)); }

static void swiglu_fwd_scalar(float *a, const float *g, const float *u, int64_t n) {
	for (int64_t i = 0; i < n; i++) a[i] = g[i] * sigm(g[i]) * u[i];
}

static void swiglu_bwd_scalar(float *dg, float *du, const float *da, const float *g, const float *u, int64_t n) {
	for (int64_t i = 0; i < n; i++) {
		float s = sigm(g[i]);
		du[i] = da[i] * g[i] * s;
		dg[i] = da[i] * u[i] * s * (1 + g[i] * (1 - s));
	}
}

static double softmax_scalar(float *r, int64_t n) {
	float m = r[0];
	for (int64_t j = 1; j < n; j++) m = r[j] > m ? r[j] : m;
	double sum = 0;
	for (int64_t j = 0; j < n; j++) {
		r[j] = expf(r[j] - m);
		sum += r[j];
	}
	float inv = (float)(1 / sum);
	for (int64_t j = 0; j < n; j++) r[j] *= inv;
	return (double)m + log(sum);
}

static void attn_bwd_row_scalar(float *p, float *ds, int64_t n, float l, float d, float scale, float pscale) {
	for (int64_t j = 0; j < n; j++) {
		volatile float x = p[j] * pscale; // rounded, never fused into the subtraction (inlined into FMA code)
		float pj = expf(x - l);
		p[j] = pj;
		ds[j] = pj * (ds[j] - d) * scale;
	}
}

// RMSNorm over rows of d: the sums in f64, as the reference (ref_train.go).
static void rmsnorm_fwd_scalar(float *out, float *rstd, const float *x, const float *w, int64_t rows, int64_t d,
                               float eps) {
	for (int64_t r = 0; r < rows; r++) {
		const float *xr = x + r * d;
		double ss = 0;
		for (int64_t i = 0; i < d; i++) ss += (double)xr[i] * (double)xr[i];
		float s = (float)(1 / sqrt(ss / (double)d + (double)eps));
		rstd[r] = s;
		for (int64_t i = 0; i < d; i++) out[r * d + i] = xr[i] * s * w[i];
	}
}

static float rmsnorm_bwd_c(const float *dy, const float *x, const float *w, float s, int64_t d) {
	double gx = 0;
	for (int64_t i = 0; i < d; i++) gx += (double)dy[i] * (double)w[i] * (double)x[i];
	return (float)(gx / (double)d) * s * s * s;
}

static void rmsnorm_bwd_scalar(float *dx, const float *dy, const float *x, const float *w, const float *rstd,
                               int64_t rows, int64_t d) {
	for (int64_t r = 0; r < rows; r++) {
		const float *xr = x + r * d, *dyr = dy + r * d;
		float s = rstd[r], c = rmsnorm_bwd_c(dyr, xr, w, s, d);
		for (int64_t i = 0; i < d; i++) dx[r * d + i] += s * dyr[i] * w[i] - c * xr[i];
	}
}

#if DT_VEXP

#define MASK16(k) ((__mmask16)((1u << (k)) - 1))
// ROUNDED(x) keeps x as computed, rounded to f32: GCC would otherwise fuse a
// product into the subtraction after it (an FMA, no rounding between), and
// a scale folded into a kernel must give the values of scaling first.
#define ROUNDED(x) __asm__("" : "+v"(x))

// sigmoid512 is 1/(1 + e^-g).
T512 static inline __m512 sigmoid512(__m512 g) {
	__m512 e = exp512(_mm512_sub_ps(_mm512_setzero_ps(), g));
	return _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_add_ps(_mm512_set1_ps(1.0f), e));
}

T512 static void swiglu_fwd_512(float *a, const float *g, const float *u, int64_t n) {
	for (int64_t i = 0; i < n; i += 16) {
		__mmask16 k = n - i >= 16 ? (__mmask16)0xffff : MASK16(n - i);
		__m512 gv = _mm512_maskz_loadu_ps(k, g + i);
		__m512 r = _mm512_mul_ps(_mm512_mul_ps(gv, sigmoid512(gv)), _mm512_maskz_loadu_ps(k, u + i));
		_mm512_mask_storeu_ps(a + i, k, r);
	}
}

T512 static void swiglu_bwd_512(float *dg, float *du, const float *da, const float *g, const float *u, int64_t n) {
	const __m512 one = _mm512_set1_ps(1.0f);
	for (int64_t i = 0; i < n; i += 16) {
		__mmask16 k = n - i >= 16 ? (__mmask16)0xffff : MASK16(n - i);
		__m512 gv = _mm512_maskz_loadu_ps(k, g + i), dav = _mm512_maskz_loadu_ps(k, da + i);
		__m512 s = sigmoid512(gv);
		_mm512_mask_storeu_ps(du + i, k, _mm512_mul_ps(_mm512_mul_ps(dav, gv), s));
		// da·u·s·(1 + g·(1 − s)), in the reference's order
		__m512 t = _mm512_add_ps(one, _mm512_mul_ps(gv, _mm512_sub_ps(one, s)));
		__m512 r = _mm512_mul_ps(_mm512_mul_ps(_mm512_mul_ps(dav, _mm512_maskz_loadu_ps(k, u + i)), s), t);
		_mm512_mask_storeu_ps(dg + i, k, r);
	}
}

// sum512d adds the 16 lanes of v into two f64 accumulators.
T512 static inline void sum512d(__m512 v, __m512d *a, __m512d *b) {
	*a = _mm512_add_pd(*a, _mm512_cvtps_pd(_mm512_castps512_ps256(v)));
	*b = _mm512_add_pd(*b, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))));
}

T512 static double softmax_512(float *r, int64_t n) {
	__m512 mv = _mm512_set1_ps(r[0]);
	for (int64_t j = 0; j < n; j += 16) {
		__mmask16 k = n - j >= 16 ? (__mmask16)0xffff : MASK16(n - j);
		mv = _mm512_mask_max_ps(mv, k, mv, _mm512_maskz_loadu_ps(k, r + j));
	}
	float m = _mm512_reduce_max_ps(mv);
	__m512 mb = _mm512_set1_ps(m);
	__m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
	for (int64_t j = 0; j < n; j += 16) {
		__mmask16 k = n - j >= 16 ? (__mmask16)0xffff : MASK16(n - j);
		__m512 e = _mm512_maskz_mov_ps(k, exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, r + j), mb)));
		_mm512_mask_storeu_ps(r + j, k, e);
		sum512d(e, &s0, &s1);
	}
	double sum = _mm512_reduce_add_pd(_mm512_add_pd(s0, s1));
	__m512 inv = _mm512_set1_ps((float)(1 / sum));
	for (int64_t j = 0; j < n; j += 16) {
		__mmask16 k = n - j >= 16 ? (__mmask16)0xffff : MASK16(n - j);
		_mm512_mask_storeu_ps(r + j, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, r + j), inv));
	}
	return (double)m + log(sum);
}

// softmax_causal_bf16_512 is dt_softmax_causal then dt_bf16_rows in one
// pass less: the scale taken as each score is read, the weights written
// straight to bf16 (the same values, bit for bit).
T512 static void softmax_causal_bf16_512(float *s, uint16_t *p, int64_t rows, int64_t ld, int64_t ldp, int64_t n0,
                                         int64_t m, float scale, float *lse, int64_t lse_stride) {
	const __m512 sv = _mm512_set1_ps(scale);
	for (int64_t i = 0; i < rows; i++) {
		float *r = s + i * ld;
		uint16_t *pr = p + i * ldp;
		int64_t n = n0 + i % m;
		__m512 mv = _mm512_set1_ps(r[0] * scale);
		for (int64_t j = 0; j < n; j += 16) {
			__mmask16 k = n - j >= 16 ? (__mmask16)0xffff : MASK16(n - j);
			mv = _mm512_mask_max_ps(mv, k, mv, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, r + j), sv));
		}
		float mx = _mm512_reduce_max_ps(mv);
		__m512 mb = _mm512_set1_ps(mx);
		__m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
		for (int64_t j = 0; j < n; j += 16) {
			__mmask16 k = n - j >= 16 ? (__mmask16)0xffff : MASK16(n - j);
			__m512 x = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, r + j), sv);
			ROUNDED(x);
			__m512 e = _mm512_maskz_mov_ps(k, exp512(_mm512_sub_ps(x, mb)));
			_mm512_mask_storeu_ps(r + j, k, e);
			sum512d(e, &s0, &s1);
		}
		double sum = _mm512_reduce_add_pd(_mm512_add_pd(s0, s1));
		if (lse) lse[i * lse_stride] = (float)((double)mx + log(sum));
		__m512 inv = _mm512_set1_ps((float)(1 / sum));
		int64_t j = 0;
		for (; j < n; j += 16) {
			__mmask16 k = n - j >= 16 ? (__mmask16)0xffff : MASK16(n - j);
			__m512 w = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, r + j), inv);
			_mm512_mask_cvtepi32_storeu_epi16(pr + j, k, bf16_lanes_512(_mm512_castps_si512(w)));
		}
		memset(pr + n, 0, (size_t)(ldp - n) * 2);
	}
}

T512 static void attn_bwd_row_512(float *p, float *ds, int64_t n, float l, float d, float scale, float pscale) {
	const __m512 lv = _mm512_set1_ps(l), dv = _mm512_set1_ps(d), sv = _mm512_set1_ps(scale), pv = _mm512_set1_ps(pscale);
	for (int64_t j = 0; j < n; j += 16) {
		__mmask16 k = n - j >= 16 ? (__mmask16)0xffff : MASK16(n - j);
		__m512 x = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, p + j), pv);
		ROUNDED(x);
		__m512 pj = exp512(_mm512_sub_ps(x, lv));
		_mm512_mask_storeu_ps(p + j, k, pj);
		__m512 r = _mm512_mul_ps(_mm512_mul_ps(pj, _mm512_sub_ps(_mm512_maskz_loadu_ps(k, ds + j), dv)), sv);
		_mm512_mask_storeu_ps(ds + j, k, r);
	}
}

T512 static void rmsnorm_fwd_512(float *out, float *rstd, const float *x, const float *w, int64_t rows, int64_t d,
                                 float eps) {
	for (int64_t r = 0; r < rows; r++) {
		const float *xr = x + r * d;
		float *o = out + r * d;
		__m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
		for (int64_t j = 0; j < d; j += 16) {
			__mmask16 k = d - j >= 16 ? (__mmask16)0xffff : MASK16(d - j);
			__m512 v = _mm512_maskz_loadu_ps(k, xr + j);
			__m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
			__m512d hi = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
			s0 = _mm512_add_pd(s0, _mm512_mul_pd(lo, lo)); // exact products: the sum rounds alone
			s1 = _mm512_add_pd(s1, _mm512_mul_pd(hi, hi));
		}
		double ss = _mm512_reduce_add_pd(_mm512_add_pd(s0, s1));
		float s = (float)(1 / sqrt(ss / (double)d + (double)eps));
		rstd[r] = s;
		__m512 sv = _mm512_set1_ps(s);
		for (int64_t j = 0; j < d; j += 16) {
			__mmask16 k = d - j >= 16 ? (__mmask16)0xffff : MASK16(d - j);
			__m512 t = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, xr + j), sv);
			_mm512_mask_storeu_ps(o + j, k, _mm512_mul_ps(t, _mm512_maskz_loadu_ps(k, w + j)));
		}
	}
}

T512 static void rmsnorm_bwd_512(float *dx, const float *dy, const float *x, const float *w, const float *rstd,
                                 int64_t rows, int64_t d) {
	for (int64_t r = 0; r < rows; r++) {
		const float *xr = x + r * d, *dyr = dy + r * d;
		float *dxr = dx + r * d;
		__m512d g0 = _mm512_setzero_pd(), g1 = _mm512_setzero_pd();
		for (int64_t j = 0; j < d; j += 16) {
			__mmask16 k = d - j >= 16 ? (__mmask16)0xffff : MASK16(d - j);
			__m512 a = _mm512_maskz_loadu_ps(k, dyr + j), b = _mm512_maskz_loadu_ps(k, w + j),
			       c = _mm512_maskz_loadu_ps(k, xr + j);
#define LO(v) _mm512_cvtps_pd(_mm512_castps512_ps256(v))
#define HI(v) _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)))
			g0 = _mm512_add_pd(g0, _mm512_mul_pd(_mm512_mul_pd(LO(a), LO(b)), LO(c)));
			g1 = _mm512_add_pd(g1, _mm512_mul_pd(_mm512_mul_pd(HI(a), HI(b)), HI(c)));
#undef LO
#undef HI
		}
		float s = rstd[r];
		float c = (float)(_mm512_reduce_add_pd(_mm512_add_pd(g0, g1)) / (double)d) * s * s * s;
		__m512 sv = _mm512_set1_ps(s), cv = _mm512_set1_ps(c);
		for (int64_t j = 0; j < d; j += 16) {
			__mmask16 k = d - j >= 16 ? (__mmask16)0xffff : MASK16(d - j);
			__m512 t = _mm512_mul_ps(_mm512_mul_ps(sv, _mm512_maskz_loadu_ps(k, dyr + j)), _mm512_maskz_loadu_ps(k, w + j));
			t = _mm512_sub_ps(t, _mm512_mul_ps(cv, _mm512_maskz_loadu_ps(k, xr + j)));
			_mm512_mask_storeu_ps(dxr + j, k, _mm512_add_ps(_mm512_maskz_loadu_ps(k, dxr + j), t));
		}
	}
}

T256 static inline __m256 sigmoid256(__m256 g) {
	__m256 e = exp256(_mm256_sub_ps(_mm256_setzero_ps(), g));
	return _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

T256 static void swiglu_fwd_256(float *a, const float *g, const float *u, int64_t n) {
	int64_t i = 0;
	for (; i + 8 <= n; i += 8) {
		__m256 gv = _mm256_loadu_ps(g + i);
		_mm256_storeu_ps(a + i, _mm256_mul_ps(_mm256_mul_ps(gv, sigmoid256(gv)), _mm256_loadu_ps(u + i)));
	}
	swiglu_fwd_scalar(a + i, g + i, u + i, n - i);
}

T256 static void swiglu_bwd_256(float *dg, float *du, const float *da, const float *g, const float *u, int64_t n) {
	const __m256 one = _mm256_set1_ps(1.0f);
	int64_t i = 0;
	for (; i + 8 <= n; i += 8) {
		__m256 gv = _mm256_loadu_ps(g + i), dav = _mm256_loadu_ps(da + i);
		__m256 s = sigmoid256(gv);
		_mm256_storeu_ps(du + i, _mm256_mul_ps(_mm256_mul_ps(dav, gv), s));
		__m256 t = _mm256_add_ps(one, _mm256_mul_ps(gv, _mm256_sub_ps(one, s)));
		_mm256_storeu_ps(dg + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(dav, _mm256_loadu_ps(u + i)), s), t));
	}
	swiglu_bwd_scalar(dg + i, du + i, da + i, g + i, u + i, n - i);
}

T256 static double softmax_256(float *r, int64_t n) {
	float m = r[0];
	int64_t j = 0;
	if (n >= 8) {
		__m256 mv = _mm256_loadu_ps(r);
		for (j = 8; j + 8 <= n; j += 8) mv = _mm256_max_ps(mv, _mm256_loadu_ps(r + j));
		float t[8];
		_mm256_storeu_ps(t, mv);
		for (int i = 0; i < 8; i++) m = t[i] > m ? t[i] : m;
	}
	for (; j < n; j++) m = r[j] > m ? r[j] : m;
	__m256 mb = _mm256_set1_ps(m);
	__m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
	for (j = 0; j + 8 <= n; j += 8) {
		__m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(r + j), mb));
		_mm256_storeu_ps(r + j, e);
		s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
		s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
	}
	double t[4];
	_mm256_storeu_pd(t, _mm256_add_pd(s0, s1));
	double sum = (t[0] + t[1]) + (t[2] + t[3]);
	for (; j < n; j++) {
		r[j] = expf(r[j] - m);
		sum += r[j];
	}
	float inv = (float)(1 / sum);
	__m256 iv = _mm256_set1_ps(inv);
	for (j = 0; j + 8 <= n; j += 8) _mm256_storeu_ps(r + j, _mm256_mul_ps(_mm256_loadu_ps(r + j), iv));
	for (; j < n; j++) r[j] *= inv;
	return (double)m + log(sum);
}

// LO4D and HI4D widen an __m256's halves to f64.
#define LO4D(v) _mm256_cvtps_pd(_mm256_castps256_ps128(v))
#define HI4D(v) _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1))

T256 static void rmsnorm_fwd_256(float *out, float *rstd, const float *x, const float *w, int64_t rows, int64_t d,
                                 float eps) {
	for (int64_t r = 0; r < rows; r++) {
		const float *xr = x + r * d;
		float *o = out + r * d;
		__m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
		int64_t j = 0;
		for (; j + 8 <= d; j += 8) {
			__m256 v = _mm256_loadu_ps(xr + j);
			s0 = _mm256_add_pd(s0, _mm256_mul_pd(LO4D(v), LO4D(v)));
			s1 = _mm256_add_pd(s1, _mm256_mul_pd(HI4D(v), HI4D(v)));
		}
		double t[4];
		_mm256_storeu_pd(t, _mm256_add_pd(s0, s1));
		double ss = (t[0] + t[1]) + (t[2] + t[3]);
		for (int64_t i = j; i < d; i++) ss += (double)xr[i] * (double)xr[i];
		float s = (float)(1 / sqrt(ss / (double)d + (double)eps));
		rstd[r] = s;
		__m256 sv = _mm256_set1_ps(s);
		for (j = 0; j + 8 <= d; j += 8)
			_mm256_storeu_ps(o + j, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(xr + j), sv), _mm256_loadu_ps(w + j)));
		for (; j < d; j++) o[j] = xr[j] * s * w[j];
	}
}

T256 static void rmsnorm_bwd_256(float *dx, const float *dy, const float *x, const float *w, const float *rstd,
                                 int64_t rows, int64_t d) {
	for (int64_t r = 0; r < rows; r++) {
		const float *xr = x + r * d, *dyr = dy + r * d;
		float *dxr = dx + r * d;
		__m256d g0 = _mm256_setzero_pd(), g1 = _mm256_setzero_pd();
		int64_t j = 0;
		for (; j + 8 <= d; j += 8) {
			__m256 a = _mm256_loadu_ps(dyr + j), b = _mm256_loadu_ps(w + j), c = _mm256_loadu_ps(xr + j);
			g0 = _mm256_add_pd(g0, _mm256_mul_pd(_mm256_mul_pd(LO4D(a), LO4D(b)), LO4D(c)));
			g1 = _mm256_add_pd(g1, _mm256_mul_pd(_mm256_mul_pd(HI4D(a), HI4D(b)), HI4D(c)));
		}
		double t[4];
		_mm256_storeu_pd(t, _mm256_add_pd(g0, g1));
		double gx = (t[0] + t[1]) + (t[2] + t[3]);
		for (int64_t i = j; i < d; i++) gx += (double)dyr[i] * (double)w[i] * (double)xr[i];
		float s = rstd[r];
		float c = (float)(gx / (double)d) * s * s * s;
		__m256 sv = _mm256_set1_ps(s), cv = _mm256_set1_ps(c);
		for (j = 0; j + 8 <= d; j += 8) {
			__m256 u = _mm256_mul_ps(_mm256_mul_ps(sv, _mm256_loadu_ps(dyr + j)), _mm256_loadu_ps(w + j));
			u = _mm256_sub_ps(u, _mm256_mul_ps(cv, _mm256_loadu_ps(xr + j)));
			_mm256_storeu_ps(dxr + j, _mm256_add_ps(_mm256_loadu_ps(dxr + j), u));
		}
		for (; j < d; j++) dxr[j] += s * dyr[j] * w[j] - c * xr[j];
	}
}
#undef LO4D
#undef HI4D

T256 static void attn_bwd_row_256(float *p, float *ds, int64_t n, float l, float d, float scale, float pscale) {
	const __m256 lv = _mm256_set1_ps(l), dv = _mm256_set1_ps(d), sv = _mm256_set1_ps(scale), pv = _mm256_set1_ps(pscale);
	int64_t j = 0;
	for (; j + 8 <= n; j += 8) {
		__m256 x = _mm256_mul_ps(_mm256_loadu_ps(p + j), pv);
		ROUNDED(x);
		__m256 pj = exp256(_mm256_sub_ps(x, lv));
		_mm256_storeu_ps(p + j, pj);
		_mm256_storeu_ps(ds + j, _mm256_mul_ps(_mm256_mul_ps(pj, _mm256_sub_ps(_mm256_loadu_ps(ds + j), dv)), sv));
	}
	attn_bwd_row_scalar(p + j, ds + j, n - j, l, d, scale, pscale);
}

#endif

void dt_swiglu_fwd(float *a, const float *g, const float *u, int64_t n) {
#if DT_VEXP
	if (dt_level == DT_AVX512) {
		swiglu_fwd_512(a, g, u, n);
		return;
	}
	if (dt_level == DT_AVX2) {
		swiglu_fwd_256(a, g, u, n);
		return;
	}
#endif
	swiglu_fwd_scalar(a, g, u, n);
}

void dt_swiglu_bwd(float *dg, float *du, const float *da, const float *g, const float *u, int64_t n) {
#if DT_VEXP
	if (dt_level == DT_AVX512) {
		swiglu_bwd_512(dg, du, da, g, u, n);
		return;
	}
	if (dt_level == DT_AVX2) {
		swiglu_bwd_256(dg, du, da, g, u, n);
		return;
	}
#endif
	swiglu_bwd_scalar(dg, du, da, g, u, n);
}

double dt_softmax(float *row, int64_t n) {
#if DT_VEXP
	if (dt_level == DT_AVX512) return softmax_512(row, n);
	if (dt_level == DT_AVX2) return softmax_256(row, n);
#endif
	return softmax_scalar(row, n);
}

void dt_softmax_causal(float *s, int64_t rows, int64_t ld, int64_t n0, int64_t m, float scale) {
	for (int64_t r = 0; r < rows; r++) {
		float *row = s + r * ld;
		int64_t n = n0 + r % m;
		if (scale != 1)
			for (int64_t j = 0; j < n; j++) row[j] *= scale;
		dt_softmax(row, n);
		memset(row + n, 0, (size_t)(ld - n) * 4);
	}
}

void dt_softmax_causal_bf16(float *s, uint16_t *p, int64_t rows, int64_t ld, int64_t ldp, int64_t n0, int64_t m,
                            float scale, float *lse, int64_t lse_stride) {
#if DT_VEXP
	if (dt_level == DT_AVX512) {
		softmax_causal_bf16_512(s, p, rows, ld, ldp, n0, m, scale, lse, lse_stride);
		return;
	}
#endif
	for (int64_t r = 0; r < rows; r++) {
		float *row = s + r * ld;
		int64_t n = n0 + r % m;
		if (scale != 1)
			for (int64_t j = 0; j < n; j++) row[j] *= scale;
		double l = dt_softmax(row, n);
		if (lse) lse[r * lse_stride] = (float)l;
		memset(row + n, 0, (size_t)(ld - n) * 4);
	}
	dt_bf16_rows(p, ldp, s, ld, rows, ld);
}

void dt_attn_bwd_row(float *p, float *ds, int64_t n, float l, float d, float scale, float pscale) {
#if DT_VEXP
	if (dt_level == DT_AVX512) {
		attn_bwd_row_512(p, ds, n, l, d, scale, pscale);
		return;
	}
	if (dt_level == DT_AVX2) {
		attn_bwd_row_256(p, ds, n, l, d, scale, pscale);
		return;
	}
#endif
	attn_bwd_row_scalar(p, ds, n, l, d, scale, pscale);
}

void dt_rmsnorm_fwd(float *out, float *rstd, const float *x, const float *w, int64_t rows, int64_t d, float eps) {
#if DT_VEXP
	if (dt_level == DT_AVX512) {
		rmsnorm_fwd_512(out, rstd, x, w, rows, d, eps);
		return;
	}
	if (dt_level == DT_AVX2) {
		rmsnorm_fwd_256(out, rstd, x, w, rows, d, eps);
		return;
	}
#endif
	rmsnorm_fwd_scalar(out, rstd, x, w, rows, d, eps);
}

void dt_rmsnorm_bwd(float *dx, const float *dy, const float *x, const float *w, const float *rstd, int64_t rows,
                    int64_t d) {
#if DT_VEXP
	if (dt_level == DT_AVX512) {
		rmsnorm_bwd_512(dx, dy, x, w, rstd, rows, d);
		return;
	}
	if (dt_level == DT_AVX2) {
		rmsnorm_bwd_256(dx, dy, x, w, rstd, rows, d);
		return;
	}
#endif
	rmsnorm_bwd_scalar(dx, dy, x, w, rstd, rows, d);
}
