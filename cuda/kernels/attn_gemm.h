#ifndef DISTILL_ATTN_GEMM_H
#define DISTILL_ATTN_GEMM_H
// attn_gemm.h: attention on the tensor cores (attn_gemm.cu).
#ifdef __cplusplus
extern "C" {
#endif

#ifdef __cplusplus
}
#endif
#endif
