#ifndef DISTILL_DROPOUT_H
#define DISTILL_DROPOUT_H
// dropout.h: LoRA dropout with core/train's counter-based masks (dropout.cu).
#ifdef __cplusplus
extern "C" {
#endif

// Element i is dropped when mix(base + i) < thresh (SplitMix64's finaliser,
// as core/train/dropout.go): dst = x·mask·keep. base_at, when not null, is
// a device address holding the key in place of base (a recorded step's).
int dc_dropout(float *dst, const float *x, int64_t n, uint64_t base, const uint64_t *base_at, uint64_t thresh,
               float keep);
// dx += g·mask·keep: the gradient through the same mask.
int dc_dropout_add(float *dx, const float *g, int64_t n, uint64_t base, const uint64_t *base_at, uint64_t thresh,
                   float keep);

#ifdef __cplusplus
}
#endif
#endif
