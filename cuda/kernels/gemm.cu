// gemm.cu: row-major GEMMs through cuBLAS (column-major underneath).
//
// Row-major C = op(A)·op(B) is column-major Cᵀ = op(B)ᵀ·op(A)ᵀ, and a
// row-major matrix with row stride ld is its column-major transpose with
// leading dimension ld, so: swap the operands, keep each one's transpose
// flag, and pass (n, m, k).
#include "common.cuh"

extern "C" int dc_gemm_f32(int trans_a, int trans_b, int m, int n, int k, float alpha,
                           const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc) {
  if (m == 0 || n == 0) return 0;
  cublasOperation_t ta = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, tb = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  DC_BLAS(cublasSgemm(dc_blas, tb, ta, n, m, k, &alpha, b, ldb, a, lda, &beta, c, ldc),
          "gemm_f32(transA=%d, transB=%d, m=%d, n=%d, k=%d, lda=%d, ldb=%d, ldc=%d)",
          trans_a, trans_b, m, n, k, lda, ldb, ldc);
  return 0;
}

// gemm_ex: A and B of type ab, C of type cc (f32, or bf16 from bf16
// operands: the sum in f32, rounded as it is stored), on the tensor cores
// with compute type ct (cublasGemmEx) — bf16 operands, or f32 ones rounded
// to TF32.
static int gemm_ex(const char *op, int trans_a, int trans_b, int m, int n, int k, float alpha, const void *a, int lda,
                   const void *b, int ldb, float beta, void *c, int ldc, cudaDataType ab, cudaDataType cc,
                   cublasComputeType_t ct) {
  if (m == 0 || n == 0) return 0;
  cublasOperation_t ta = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, tb = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  DC_BLAS(cublasGemmEx(dc_blas, tb, ta, n, m, k, &alpha, b, ab, ldb, a, ab, lda, &beta, c, cc, ldc, ct,
                       CUBLAS_GEMM_DEFAULT_TENSOR_OP),
          "%s(transA=%d, transB=%d, m=%d, n=%d, k=%d, lda=%d, ldb=%d, ldc=%d)", op, trans_a, trans_b, m, n, k, lda, ldb,
          ldc);
  return 0;
}

extern "C" int dc_gemm_bf16(int trans_a, int trans_b, int m, int n, int k, float alpha,
                            const uint16_t *a, int lda, const uint16_t *b, int ldb, float beta, float *c, int ldc) {
  return gemm_ex("gemm_bf16", trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, CUDA_R_16BF, CUDA_R_32F,
                 CUBLAS_COMPUTE_32F);
}

extern "C" int dc_gemm_bf16_out(int trans_a, int trans_b, int m, int n, int k, float alpha,
                                const uint16_t *a, int lda, const uint16_t *b, int ldb, float beta, uint16_t *c,
                                int ldc) {
  return gemm_ex("gemm_bf16_out", trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, CUDA_R_16BF,
                 CUDA_R_16BF, CUBLAS_COMPUTE_32F);
}

extern "C" int dc_gemm_tf32(int trans_a, int trans_b, int m, int n, int k, float alpha,
                            const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc) {
  return gemm_ex("gemm_tf32", trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, CUDA_R_32F, CUDA_R_32F,
                 CUBLAS_COMPUTE_32F_FAST_TF32);
}

// Strided-batched dc_gemm_tf32 (common.cuh): attention's products over
// heads, and the adapter's for modules that share an input (q, k, v;
// gate, up) as one launch.
int dc_gemm_tf32_strided(const char *what, int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
                         int lda, int64_t sa, const float *b, int ldb, int64_t sb, float beta, float *c, int ldc,
                         int64_t sc, int batch) {
  if (m == 0 || n == 0 || batch == 0) return 0;
  cublasOperation_t ta = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, tb = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  DC_BLAS(cublasGemmStridedBatchedEx(dc_blas, tb, ta, n, m, k, &alpha, b, CUDA_R_32F, ldb, (long long)sb, a, CUDA_R_32F,
                                     lda, (long long)sa, &beta, c, CUDA_R_32F, ldc, (long long)sc, batch,
                                     CUBLAS_COMPUTE_32F_FAST_TF32, CUBLAS_GEMM_DEFAULT_TENSOR_OP),
          "%s: gemm_tf32(transA=%d, transB=%d, m=%d, n=%d, k=%d, lda=%d, strideA=%lld, ldb=%d, strideB=%lld, "
          "ldc=%d, strideC=%lld, batch=%d)",
          what, trans_a, trans_b, m, n, k, lda, (long long)sa, ldb, (long long)sb, ldc, (long long)sc, batch);
  return 0;
}

extern "C" int dc_gemm_tf32_batched(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
                                    int64_t sa, const float *b, int ldb, int64_t sb, float beta, float *c, int ldc,
                                    int64_t sc, int batch) {
  return dc_gemm_tf32_strided("gemm_tf32_batched", trans_a, trans_b, m, n, k, alpha, a, lda, sa, b, ldb, sb, beta, c,
                              ldc, sc, batch);
}
