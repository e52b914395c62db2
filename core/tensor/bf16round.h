// bf16round.h: float32 → bfloat16 rounding of 16 lanes (nearest even; a NaN
// stays a NaN, quieted), for the kernels that write bf16 operands: the bf16
// GEMM's rows (gemm_bf16.c) and attention's softmax weights (ops_train.c).
// The scalar form is gemm_bf16.c's f32_bf16.
#ifndef DISTILL_BF16ROUND_H
#define DISTILL_BF16ROUND_H

#if (defined(__x86_64__) || defined(__i386__)) && !defined(DT_NO_X86)
#include <immintrin.h>

// bf16_lanes_512: each lane's f32 bits u as bf16, in the lane's low 16 bits.
static inline __attribute__((target("avx512f"))) __m512i bf16_lanes_512(__m512i u) {
	const __m512i absm = _mm512_set1_epi32(0x7fffffff), inf = _mm512_set1_epi32(0x7f800000);
	const __m512i one = _mm512_set1_epi32(1), half = _mm512_set1_epi32(0x7fff), quiet = _mm512_set1_epi32(0x40);
	__mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, absm), inf);
	__m512i hi = _mm512_srli_epi32(u, 16);
	__m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(half, _mm512_and_si512(hi, one))), 16);
	return _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(hi, quiet));
}
#endif

#endif
