// halfconv.h: exact bfloat16 and IEEE half → float32 conversions for the
// scalar kernels. Shared by core/tensor and core/quant (which includes it
// through -I${SRCDIR}/../tensor) so the two packages widen identically.
#ifndef DISTILL_HALFCONV_H
#define DISTILL_HALFCONV_H

#include <stdint.h>
#include <string.h>

static inline float bf16_f32(uint16_t h) {
	uint32_t u = (uint32_t)h << 16;
	float f;
	memcpy(&f, &u, 4);
	return f;
}

static inline float f16_f32(uint16_t h) {
	uint32_t sign = (uint32_t)(h >> 15) << 31;
	uint32_t exp = (h >> 10) & 0x1f;
	uint32_t man = h & 0x3ff;
	uint32_t u;
	if (exp == 0 && man == 0) {
		u = sign;
	} else if (exp == 0) { // subnormal: renormalise
		uint32_t e = 127 - 15 + 1;
		while ((man & 0x400) == 0) {
			man <<= 1;
			e--;
		}
		man &= 0x3ff;
		u = sign | e << 23 | man << 13;
	} else if (exp == 0x1f) {
		u = sign | 0xffu << 23 | man << 13;
	} else {
		u = sign | (exp + 127 - 15) << 23 | man << 13;
	}
	float f;
	memcpy(&f, &u, 4);
	return f;
}

#endif
