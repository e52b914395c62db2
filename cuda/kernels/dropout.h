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
// dx(n, in) += Σ over members m < 3 of keep · mask_m ⊙ (du_m·A_m): du_m
// (n, r) at du + m·sdu, A_m (r, in) at A + m·sa (row-major, elements),
// member m's mask dropout_add's with key bases[m] (or base_at[m] on the
// device): a group's adapter term of the input gradient in one pass.
int dc_lora_dropout_dx(float *dx, const float *du, int64_t sdu, const float *A, int64_t sa, int n, int in, int r,
                       int members, const uint64_t *bases, const uint64_t *base_at, uint64_t thresh, float keep);

#ifdef __cplusplus
}
#endif
#endif
