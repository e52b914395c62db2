// Kernels of package quant, called from cgo.go: NF4 (bitsandbytes layout)
// and Q8 quantisation, dequantisation and fused dequant-and-dot matvec. Every
// kernel has an AVX-512, an AVX2+FMA+F16C and a scalar variant chosen at run
// time by q_level (see q_init); the x86 variants are compiled with
// per-function target attributes, so the object runs on any x86-64.
//
// The file is compiled as ISO C11 (-std=c11), so GCC does not contract a*b+c
// into an FMA (its GNU dialects do, by -ffp-contract=fast): a product followed by a sum
// (the double-quantised absmax, map[q]·absmax2 + offset) must round twice, as
// bitsandbytes does, and never be fused; only the dot products use explicit
// FMA intrinsics.
#ifndef DISTILL_QUANT_H
#define DISTILL_QUANT_H

#include <stddef.h>
#include <stdint.h>

enum {
	Q_SCALAR = 0, // portable C
	Q_AVX2 = 1,   // AVX2 + FMA + F16C
	Q_AVX512 = 2, // AVX-512 F + BW
};

enum { Q_F32 = 0, Q_F16 = 1, Q_BF16 = 2 }; // matches tensor.DType

int q_init(void);
int q_set_level(int level);
int q_get_level(void);

// q_nf4_tables copies the kernels' code values and midpoints (16 floats each;
// the 16th midpoint is padding) for the tests.
void q_nf4_tables(float *code, float *mid);

// ---- NF4 -------------------------------------------------------------------
//
// Element e of the flattened tensor has its 4-bit code in byte e/2 of codes,
// in the high nibble when e is even. Block b = e/64 has the scale
//   absmax[b]                                   when absmax != NULL, else
//   (map2[qabs[b]] * absmax2[b/256]) + offset   (double quantisation),
// each operation rounded to f32, and the element's value is
// nf4_code[code] * scale. NF4_ARGS passes one weight.
#define NF4_ARGS const uint8_t *codes, const float *absmax, const uint8_t *qabs, \
                 const float *absmax2, const float *map2, float offset

// q_nf4_quantize quantises blocks [b0, b1) of the n-element tensor src (at
// dtype dt) as bitsandbytes' kQuantizeBlockwise does for NF4: absmax = max
// |w| over the block, x = w * (1/absmax) in f32, code = the number of the 15
// f32 midpoints between consecutive code values that x exceeds (so an x
// exactly on a midpoint takes the lower code, and NaN, as 0·(1/0) in an
// all-zero block, takes code 0). A tail block is padded with zeros; the pad
// nibble of an odd n is written like any other. Returns the index of the
// first NaN or ±Inf element, or -1.
int64_t q_nf4_quantize(uint8_t *codes, float *absmax, const void *src, int dt, int64_t n,
                       int64_t b0, int64_t b1);

// q_nf4_dequant sets dst[i] = value of element e0 + i for e0 + i < e1. With
// bw, every NF4 kernel rounds each value to the nearest bfloat16 (ties to
// even; the value is finite): the weights the bf16 products multiply, as
// bitsandbytes dequantises to a bf16 compute dtype.
void q_nf4_dequant(float *dst, NF4_ARGS, int64_t e0, int64_t e1, int bw);

// q_nf4_dequant_tile sets dst[(n-n0)*ldd + (k-k0)] for rows [n0, n1) and
// columns [k0, k1) of an (N, K) NF4 matrix with K, k0 and k1 multiples of 64.
void q_nf4_dequant_tile(float *dst, int64_t ldd, NF4_ARGS, int64_t K, int64_t n0, int64_t n1,
                        int64_t k0, int64_t k1, int bw);

// q_nf4_dequant_tile_bf16 is q_nf4_dequant_tile with bw, into bfloat16.
void q_nf4_dequant_tile_bf16(uint16_t *dst, int64_t ldd, NF4_ARGS, int64_t K, int64_t n0, int64_t n1,
                             int64_t k0, int64_t k1);

// q_nf4_matvec sets out[n] = W[n, :]·x for rows [n0, n1) of an (N, K) NF4
// matrix with K a multiple of 64, reading each packed byte once. xp holds x
// as q_nf4_prep lays it out for the kernel level in effect (q_nf4_xp_len(K)
// floats).
size_t q_nf4_xp_len(int64_t K);
void q_nf4_prep(float *xp, const float *x, int64_t K);
void q_nf4_matvec(float *out, NF4_ARGS, const float *xp, int64_t K, int64_t n0, int64_t n1, int bw);

// ---- Q8 --------------------------------------------------------------------
//
// Element e is qs[e] * scales[e/32]. As ggml's Q8_0 reference quantiser but
// with the scale kept in f32: amax = max |w| over the block, d = amax/127,
// q = roundf(w * (1/d)) (half away from zero; 0 when d == 0; w / d when 1/d
// overflows), scale = d. Returns as q_nf4_quantize.
int64_t q_q8_quantize(int8_t *qs, float *scales, const void *src, int dt, int64_t n,
                      int64_t b0, int64_t b1);
void q_q8_dequant(float *dst, const int8_t *qs, const float *scales, int64_t e0, int64_t e1);
void q_q8_dequant_tile(float *dst, int64_t ldd, const int8_t *qs, const float *scales,
                       int64_t K, int64_t n0, int64_t n1, int64_t k0, int64_t k1);
// q_q8_matvec: as q_nf4_matvec for K a multiple of 32, x as is.
void q_q8_matvec(float *out, const int8_t *qs, const float *scales, const float *x,
                 int64_t K, int64_t n0, int64_t n1);

#endif
