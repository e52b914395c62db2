// Kernels of the CPU backend, called from cgo.go. Every kernel has an
// AVX-512, an AVX2+FMA+F16C and a scalar variant, chosen at run time by
// dt_level (see dt_init); x86 variants are compiled with per-function target
// attributes, so the object runs on any x86-64 and the file builds elsewhere.
#ifndef DISTILL_TENSOR_KERNELS_H
#define DISTILL_TENSOR_KERNELS_H

#include <stddef.h>
#include <stdint.h>

enum {
	DT_SCALAR = 0, // portable C
	DT_AVX2 = 1,   // AVX2 + FMA + F16C
	DT_AVX512 = 2, // AVX-512 F + BW
};

enum { DT_F32 = 0, DT_F16 = 1, DT_BF16 = 2 }; // matches tensor.DType

// dt_init detects the CPU and returns the best level; dt_set_level forces a
// lower one (tests exercise every level the CPU has) and returns the level in
// effect.
int dt_init(void);
int dt_set_level(int level);
int dt_get_level(void);
extern int dt_level; // in effect; read by the kernels' dispatch

// dt_matvec: out[n] = dot(W[n, :], x) for rows n in [n0, n1), W (N, K) row-major
// at dtype dt, x (K) f32. xp is a scratch of dt_xp_len(K) floats that
// dt_matvec_prep filled from x (BF16 kernels read x de-interleaved).
size_t dt_xp_len(int64_t K);
void dt_matvec_prep(float *xp, const float *x, int64_t K, int dt);
void dt_matvec(float *out, const void *w, const float *x, const float *xp,
               int64_t n0, int64_t n1, int64_t K, int dt);

// dt_widen: dst[i] = f32(src[i]) for i < n, src at dtype dt.
void dt_widen(float *dst, const void *src, int64_t n, int dt);

// dt_rmsnorm: rows of x (rows, d) into out: x / sqrt(mean(x²) + eps) * w,
// the sum of squares in f64. out may alias x.
void dt_rmsnorm(float *out, const float *x, const float *w, int64_t rows, int64_t d, float eps);

// dt_swiglu: gate[i] = gate[i] / (1 + exp(-gate[i])) * up[i].
void dt_swiglu(float *gate, const float *up, int64_t n);

// dt_add: dst[i] += src[i].
void dt_add(float *dst, const float *src, int64_t n);

// dt_attn: causal attention of g query heads sharing one KV head over keys
// 0..n-1. q, out: g rows of hd floats, qstride apart; k, v: n rows of hd
// values, kvstride apart, floats or with kv16 bf16 (widened exactly as
// read); scores: scratch of g*n floats, and with kv16 dt_attn_wide(hd)
// more. With round_p the softmax's weights are rounded to bf16 before
// they multiply v.
void dt_attn(float *out, const float *q, const void *k, const void *v,
             int64_t g, int64_t qstride, int64_t n, int64_t kvstride, int64_t hd,
             float scale, float *scores, int round_p, int kv16);
// dt_attn_wide: the floats a bf16 cache's rows are widened into (16 keys
// of hd, then 64 values by 64 columns).
static inline int64_t dt_attn_wide(int64_t hd) { return 16 * hd + 64 * 64; }

// dt_have_bf16 says whether the CPU has AVX-512 BF16 (vdpbf16ps).
int dt_have_bf16(void);

// dt_bf16_rows: dst (m rows, ldd apart) = bf16(src (m rows of k, lds apart)),
// rounded to nearest even, each row zero past k up to ldd.
void dt_bf16_rows(uint16_t *dst, int64_t ldd, const float *src, int64_t lds, int64_t m, int64_t k);
// dt_bf16_cols: dst (k rows, ldd apart) = bf16(src (m rows of k, lds
// apart))ᵀ, rounded as dt_bf16_rows, each row zero past m up to ldd.
void dt_bf16_cols(uint16_t *dst, int64_t ldd, const float *src, int64_t lds, int64_t m, int64_t k);
// dt_bf16_round: v's n values rounded to bf16 precision in place.
void dt_bf16_round(float *v, int64_t n);

// dt_gemm_bf16: c(m, n) = a(m, k) · op(b), plus c with acc; op(b) is b(n, k)ᵀ
// or, with bkn, b(k, n). a and b bf16 row-major, c f32, on AVX-512 BF16
// (dt_have_bf16 must be true). a's rows must hold an even number of values,
// zero past k (dt_bf16_rows with ldd even); pack is a scratch of
// dt_gemm_bf16_pack_len() uint16.
size_t dt_gemm_bf16_pack_len(void);
void dt_gemm_bf16(float *c, int64_t ldc, const uint16_t *a, int64_t lda, const uint16_t *b, int64_t ldb,
                  int64_t m, int64_t n, int64_t k, int bkn, int acc, uint16_t *pack);

// The LoRA adapter's training products (lora.c), for rank r where
// dt_lora_width(r) is not 0 (the floats a vector; 0: use BLAS). dt_lora_u:
// u(n, r) = x(n, in; ldx apart)·at, at = Aᵀ (in, r). dt_lora_out: for rows
// o in [o0, o1) of dB (out, r), dB[o] += s·Σ_t dy[t][o]·u[t], and du(n, r)
// = Σ_{o in [o0, o1)} dy[t][o]·B[o] (unscaled; set, not added to).
// dt_lora_in: for columns k in [k0, k1), dA (r, in) += duᵀ·x and out(n, in)
// = du·A, or += with add.
int dt_lora_width(int64_t r);
void dt_lora_u(float *u, const float *x, int64_t ldx, const float *at, int64_t n, int64_t in, int64_t r);
void dt_lora_out(float *du, float *dB, const float *dy, int64_t ldy, const float *B, const float *u, float s,
                 int64_t n, int64_t o0, int64_t o1, int64_t r);
void dt_lora_in(float *dA, float *out, int add, const float *du, const float *x, int64_t ldx, const float *A,
                int64_t n, int64_t in, int64_t k0, int64_t k1, int64_t r);
// dt_transpose: dst (cols, rows) = src (rows, cols)ᵀ.
void dt_transpose(float *dst, const float *src, int64_t rows, int64_t cols);

// AMX tiles for dt_gemm_bf16 (gemm_amx.c). dt_amx_init checks the CPU and
// the OS and asks Linux for the tile state (once, at start-up); dt_amx_use
// turns their use on or off (returning the previous setting; on only where
// init succeeded), dt_amx_active reads it. dt_amx_begin loads the tile
// configuration on this thread, dt_amx_end releases it; between them
// dt_amx_rows32 runs 32 rows of a against a packed strip over qn pairs of k
// (a multiple of 16), setting or adding c's first mr rows × nb.
int dt_amx_init(void);
int dt_amx_use(int on);
int dt_amx_active(void);
void dt_amx_begin(void);
void dt_amx_end(void);
void dt_amx_rows32(const uint16_t *a, int64_t lda, const uint16_t *p, int64_t qn, float *c, int64_t ldc, int64_t nb,
                   int64_t mr, int add);

// Training's element-wise kernels (ops_train.c), each as its Go reference
// in ref_train.go but for the exp (vexp.h) and the order of the f64 sums:
// dt_swiglu_fwd: a = g·σ(g)·u; dt_swiglu_bwd: du = da·g·σ(g), dg =
// da·u·σ(g)·(1 + g·(1 − σ(g))); dt_softmax: row = softmax(row), returns its
// log-sum-exp; dt_attn_bwd_row: p[j] = e^(p[j]·pscale − l), ds[j] =
// p[j]·(ds[j] − d)·scale for j < n.
void dt_swiglu_fwd(float *a, const float *g, const float *u, int64_t n);
void dt_swiglu_bwd(float *dg, float *du, const float *da, const float *g, const float *u, int64_t n);
double dt_softmax(float *row, int64_t n);
// dt_softmax_causal: for each of rows rows of s (ld apart), its first
// n0 + r % m values scaled by scale and replaced by their softmax, the rest
// up to ld zeroed: a block of m queries' attention scores, a head's rows
// after another's.
void dt_softmax_causal(float *s, int64_t rows, int64_t ld, int64_t n0, int64_t m, float scale);
// dt_softmax_causal_bf16: dt_softmax_causal with the weights written to p
// in bf16 instead (rows ldp apart, zero from n0 + r % m to ldp ≥ ld), and
// each row's log-sum-exp (of the scaled scores) to lse[r·lse_stride] where
// lse is not NULL; s is left holding scratch.
void dt_softmax_causal_bf16(float *s, uint16_t *p, int64_t rows, int64_t ld, int64_t ldp, int64_t n0, int64_t m,
                            float scale, float *lse, int64_t lse_stride);
void dt_attn_bwd_row(float *p, float *ds, int64_t n, float l, float d, float scale, float pscale);
// dt_rmsnorm_fwd: each of rows rows of d, out = x·s·w with s = 1/√(Σx²/d +
// eps) (the sum in f64) saved in rstd; dt_rmsnorm_bwd: dx += s·dy·w − c·x,
// c = (Σ dy·w·x / d)·s³ (f64 likewise).
void dt_rmsnorm_fwd(float *out, float *rstd, const float *x, const float *w, int64_t rows, int64_t d, float eps);
void dt_rmsnorm_bwd(float *dx, const float *dy, const float *x, const float *w, const float *rstd, int64_t rows,
                    int64_t d);

// dt_sum_bytes reads n bytes (n a multiple of 64) and returns a checksum; it
// measures read bandwidth.
uint64_t dt_sum_bytes(const void *p, int64_t n);

#endif
