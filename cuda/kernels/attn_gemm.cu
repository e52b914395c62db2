// attn_gemm.cu: grouped-query attention with the matrix products on the
// tensor cores through cuBLAS, forward and backward, with the semantics of
// attention.cu (the simple kernel stays as the reference it is checked
// against).
//
// For one KV head g, a chunk of hc of its query heads h0..h0+hc−1 and a block
// of nr query rows i0..i0+nr−1, the scores S = scale·Q_h·K_gᵀ (nr × nk per
// head) go into scratch (hc, nr, nk) f32, one strided-batched GEMM for the
// chunk: head h's Q is the column slice h·hd of the row-major (nq, nh·hd)
// matrix, so batch entries are hd apart with leading dimension nh·hd, and K_g
// is shared (stride 0). A masked softmax kernel turns each row into P in place
// (keys outside [lo, hi) get exactly 0) and writes lse; O_h = P·V_g is a
// second batched GEMM. Backward rebuilds P from lse in the same way, with dP =
// dO·V_gᵀ, D_i = rowsum(dO∘O), dS = P∘(dP − D)·scale; dQ_h = dS·K_g (batched),
// and dK_g += dS_hᵀ·Q_h, dV_g += P_hᵀ·dO_h as one plain GEMM per head with
// beta = 1, in sequence on the stream: the heads of a group all add into the
// same dK_g, dV_g, so a batched call (one output, several batch entries) would
// race.
//
// Precision: the GEMMs take f32 operands and round them to TF32 on the tensor
// cores (CUBLAS_COMPUTE_32F_FAST_TF32, f32 accumulation and output); softmax,
// lse and D are f32 with expf/logf. The handle's math mode stays
// CUBLAS_DEFAULT_MATH (the f32 GEMM is a parity reference): the compute type
// is passed per call.
//
// The whole nk-wide row goes through the products, the masked keys with
// weight 0, so every key row in [0, nk) (and every q row) must be finite: a
// NaN there would reach other rows through 0·NaN. A bad range (outside
// [0, nk), empty, or longer than max_len) gives its row NaNs in out, lse and
// dq, and adds nothing to dk, dv, as the simple kernel does.
#include "common.cuh"

#define AG_THREADS 256
static inline int ag_min(int a, int b) { return a < b ? a : b; }

#define AG_SHAPE "(nq=%d, nk=%d, heads=%d, kv_heads=%d, hd=%d, max_len=%d)"

__device__ __forceinline__ bool ag_valid(int lo, int hi, int nk, int max_len) {
  return lo >= 0 && hi <= nk && hi > lo && hi - lo <= max_len;  // hi > lo first: no overflow
}

// One block per row (b, r) of the chunk: head h0+b, query i0+r. s (rows·hc,
// nk) holds the scores; it becomes P (0 outside [lo, hi)) and lse[i·nh + h]
// the row's log-sum-exp (NaN for a bad range, whose P row is all 0).
__global__ void k_ag_softmax(float *s, float *lse, const int32_t *kv_lo, const int32_t *kv_hi, int i0, int rows,
                             int h0, int nk, int nh, int max_len) {
  __shared__ float red[33];
  int b = blockIdx.x / rows, r = blockIdx.x % rows, i = i0 + r, h = h0 + b;
  float *row = s + (int64_t)blockIdx.x * nk;  // blockIdx.x = b·rows + r
  int lo = kv_lo[i], hi = kv_hi[i];
  if (!ag_valid(lo, hi, nk, max_len)) {
    for (int j = threadIdx.x; j < nk; j += blockDim.x) row[j] = 0.f;
    if (threadIdx.x == 0) lse[(int64_t)i * nh + h] = NAN;
    return;
  }
  // Online max and sum per thread, then merged over the block.
  float m = -INFINITY, sum = 0.f;
  for (int j = lo + threadIdx.x; j < hi; j += blockDim.x) {
    float x = row[j];
    if (x > m) {
      sum = sum * expf(m - x) + 1.f;  // expf(−inf) = 0 on the first key
      m = x;
    } else {
      sum += expf(x - m);
    }
  }
  float bm = dc_block_max(m, red);
  sum = dc_block_sum(m == -INFINITY ? 0.f : sum * expf(m - bm), red);  // barriers: every read of row is done
  float inv = 1.f / sum;
  for (int j = threadIdx.x; j < nk; j += blockDim.x) row[j] = (j >= lo && j < hi) ? expf(row[j] - bm) * inv : 0.f;
  if (threadIdx.x == 0) lse[(int64_t)i * nh + h] = bm + logf(sum);
}

// Backward's element-wise step, one block per row (b, r) as k_ag_softmax:
// p (scores in, P out) and dp (dO·vᵀ in, dS out), 0 outside [lo, hi) and on
// a bad row's whole width.
__global__ void k_ag_dsoftmax(float *p, float *dp, const float *dout, const float *out, const float *lse,
                              const int32_t *kv_lo, const int32_t *kv_hi, int i0, int rows, int h0, int nk, int nh,
                              int hd, int max_len, float scale) {
  __shared__ float red[33];
  int b = blockIdx.x / rows, r = blockIdx.x % rows, i = i0 + r, h = h0 + b;
  float *prow = p + (int64_t)blockIdx.x * nk, *drow = dp + (int64_t)blockIdx.x * nk;
  int lo = kv_lo[i], hi = kv_hi[i];
  if (!ag_valid(lo, hi, nk, max_len)) {
    for (int j = threadIdx.x; j < nk; j += blockDim.x) prow[j] = drow[j] = 0.f;
    return;
  }
  int64_t qo = (int64_t)i * nh * hd + (int64_t)h * hd;
  float dd = 0.f;
  for (int c = threadIdx.x; c < hd; c += blockDim.x) dd += dout[qo + c] * out[qo + c];
  dd = dc_block_sum(dd, red);
  float l = lse[(int64_t)i * nh + h];
  for (int j = threadIdx.x; j < nk; j += blockDim.x) {
    float pj = 0.f, ds = 0.f;
    if (j >= lo && j < hi) {
      pj = expf(prow[j] - l);
      ds = pj * (drow[j] - dd) * scale;
    }
    prow[j] = pj;
    drow[j] = ds;
  }
}

// x (nq, width): a row whose range is bad becomes NaN (and lse (nq, nh) too
// when given).
// One thread a row: bad rows are rare (none in training), so a bad one's
// thread writes its whole row, and a good one's only reads its range.
__global__ void k_ag_bad_rows(float *x, int width, float *lse, int nh, const int32_t *kv_lo, const int32_t *kv_hi,
                              int nq, int nk, int max_len) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < nq; i += gridDim.x * blockDim.x) {
    if (ag_valid(kv_lo[i], kv_hi[i], nk, max_len)) continue;
    for (int c = 0; c < width; c++) x[(int64_t)i * width + c] = NAN;
    if (lse)
      for (int h = 0; h < nh; h++) lse[(int64_t)i * nh + h] = NAN;
  }
}

// The chunk plan: work holds nbuf score buffers of hc·nr rows of nk floats.
// All heads of a group and all rows when they fit, else fewer heads, else one
// head and fewer rows (at least one row: the caller sizes work ≥ nbuf·nk).
struct ag_plan {
  int hc, nr;
};

static int ag_plan_for(ag_plan *p, int64_t work_floats, int nbuf, const char *op, int nq, int nk, int nh, int nkv,
                       int hd, int max_len) {
  if (nkv <= 0 || nh % nkv != 0 || hd <= 0 || max_len < 0 || nq < 0 || nk < 0)
    return dc_fail("heads must be a multiple of kv heads, sizes ≥ 0", "%s" AG_SHAPE, op, nq, nk, nh, nkv, hd, max_len);
  int group = nh / nkv;
  int64_t rows_fit = nk > 0 ? work_floats / ((int64_t)nbuf * nk) : 0;
  if (nk > 0 && rows_fit < 1) {
    char why[160];
    snprintf(why, sizeof why, "scratch of %lld floats holds less than %d rows of %d keys", (long long)work_floats, nbuf, nk);
    return dc_fail(why, "%s" AG_SHAPE, op, nq, nk, nh, nkv, hd, max_len);
  }
  if (rows_fit > (1 << 30)) rows_fit = 1 << 30;  // hc·nr (a grid size) stays an int
  if (nq > 0 && rows_fit >= nq) {
    int64_t hc = rows_fit / nq;
    p->hc = (int)(hc < group ? hc : group);
    p->nr = nq;
  } else {
    p->hc = 1;
    p->nr = (int)rows_fit;
  }
  return 0;
}

static int ag_bad_rows(const char *op, float *x, int width, float *lse, int nh, const int32_t *kv_lo,
                       const int32_t *kv_hi, int nq, int nk, int nkv, int hd, int max_len) {
  if (nq == 0) return 0;
  DC_LAUNCH(dc_blocks(nq, AG_THREADS), AG_THREADS, 0, k_ag_bad_rows)(x, width, lse, nh, kv_lo, kv_hi, nq, nk, max_len);
  DC_LAUNCHED("%s: bad rows" AG_SHAPE, op, nq, nk, nh, nkv, hd, max_len);
  return 0;
}

extern "C" int dc_attn_fwd_gemm(float *out, float *lse, const float *q, const float *k, const float *v,
                                const int32_t *kv_lo, const int32_t *kv_hi, int nq, int nk, int nh, int nkv, int hd,
                                int max_len, float scale, float *work, int64_t work_floats) {
  const char *op = "attn_fwd_gemm";
  ag_plan p;
  if (ag_plan_for(&p, work_floats, 1, op, nq, nk, nh, nkv, hd, max_len)) return -1;
  if (nq == 0 || nh == 0) return 0;
  int group = nh / nkv, qs = nh * hd, kvs = nkv * hd;
  if (nk > 0) {
    for (int g = 0; g < nkv; g++) {
      for (int h0 = g * group; h0 < (g + 1) * group; h0 += p.hc) {
        int hc = ag_min(p.hc, (g + 1) * group - h0);
        for (int i0 = 0; i0 < nq; i0 += p.nr) {
          int rows = ag_min(p.nr, nq - i0);
          long long ss = (long long)rows * nk;  // one head's scores in work
          // S_b(rows, nk) = scale·Q_b·K_gᵀ: A = Q rows i0.., head h0+b (lda
          // qs, batch stride hd); B = K_g (nk, hd) (ldb kvs, shared), transB;
          // C = work + b·ss (ldc nk). cuBLAS: (T, N, m=nk, n=rows, k=hd) on
          // K_g (col-major hd × nk, ld kvs) and Q_b (col-major hd × rows, ld
          // qs) into the col-major nk × rows S_bᵀ (ld nk).
          if (dc_gemm_tf32_strided("attn_fwd_gemm S=scale·Q·Kᵀ", 0, 1, rows, nk, hd, scale,
                                   q + (int64_t)i0 * qs + (int64_t)h0 * hd, qs, hd, k + (int64_t)g * hd, kvs, 0, 0.f,
                                   work, nk, ss, hc))
            return -1;
          DC_LAUNCH((unsigned)(hc * rows), AG_THREADS, 0, k_ag_softmax)(work, lse, kv_lo, kv_hi, i0, rows, h0, nk,
                                                                             nh, max_len);
          DC_LAUNCHED("%s: softmax(i0=%d, rows=%d, h0=%d, heads=%d)" AG_SHAPE, op, i0, rows, h0, hc, nq, nk, nh, nkv,
                      hd, max_len);
          // O_b(rows, hd) = P_b·V_g: A = P_b (ld nk, batch stride ss); B =
          // V_g (nk, hd) (ldb kvs, shared); C = out rows i0.., head h0+b
          // (ldc qs, batch stride hd). cuBLAS: (N, N, m=hd, n=rows, k=nk) on
          // V_g (col-major hd × nk, ld kvs) and P_b (col-major nk × rows, ld
          // nk) into the col-major hd × rows O_bᵀ (ld qs).
          if (dc_gemm_tf32_strided("attn_fwd_gemm O=P·V", 0, 0, rows, hd, nk, 1.f, work, nk, ss, v + (int64_t)g * hd,
                                   kvs, 0, 0.f, out + (int64_t)i0 * qs + (int64_t)h0 * hd, qs, hd, hc))
            return -1;
        }
      }
    }
  }
  // Bad rows: NaN in out (their P rows were 0, so the GEMM wrote 0) and lse
  // (written by the softmax already, unless nk = 0 skipped it).
  return ag_bad_rows(op, out, qs, nk == 0 ? lse : NULL, nh, kv_lo, kv_hi, nq, nk, nkv, hd, max_len);
}

extern "C" int dc_attn_bwd_gemm(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                                const float *v, const float *out, const float *lse, const int32_t *kv_lo,
                                const int32_t *kv_hi, int nq, int nk, int nh, int nkv, int hd, int max_len,
                                float scale, float *work, int64_t work_floats) {
  const char *op = "attn_bwd_gemm";
  ag_plan p;
  if (ag_plan_for(&p, work_floats, 2, op, nq, nk, nh, nkv, hd, max_len)) return -1;
  if (nq == 0 || nh == 0) return 0;
  int group = nh / nkv, qs = nh * hd, kvs = nkv * hd;
  if (nk > 0) {
    float *pw = work, *dpw = work + (int64_t)p.hc * p.nr * nk;  // the two score buffers
    for (int g = 0; g < nkv; g++) {
      const float *kg = k + (int64_t)g * hd, *vg = v + (int64_t)g * hd;
      float *dkg = dk + (int64_t)g * hd, *dvg = dv + (int64_t)g * hd;
      for (int h0 = g * group; h0 < (g + 1) * group; h0 += p.hc) {
        int hc = ag_min(p.hc, (g + 1) * group - h0);
        for (int i0 = 0; i0 < nq; i0 += p.nr) {
          int rows = ag_min(p.nr, nq - i0);
          long long ss = (long long)rows * nk;
          int64_t qo = (int64_t)i0 * qs + (int64_t)h0 * hd;  // row i0, head h0 in q, dout, dq
          // S_b = scale·Q_b·K_gᵀ into pw: as the forward's first GEMM.
          if (dc_gemm_tf32_strided("attn_bwd_gemm S=scale·Q·Kᵀ", 0, 1, rows, nk, hd, scale, q + qo, qs, hd, kg, kvs, 0,
                                   0.f, pw, nk, ss, hc))
            return -1;
          // dP_b(rows, nk) = dO_b·V_gᵀ into dpw: the same mapping with dout
          // for q and V_g for K_g, alpha 1.
          if (dc_gemm_tf32_strided("attn_bwd_gemm dP=dO·Vᵀ", 0, 1, rows, nk, hd, 1.f, dout + qo, qs, hd, vg, kvs, 0,
                                   0.f, dpw, nk, ss, hc))
            return -1;
          DC_LAUNCH((unsigned)(hc * rows), AG_THREADS, 0, k_ag_dsoftmax)(pw, dpw, dout, out, lse, kv_lo, kv_hi, i0,
                                                                              rows, h0, nk, nh, hd, max_len, scale);
          DC_LAUNCHED("%s: dsoftmax(i0=%d, rows=%d, h0=%d, heads=%d)" AG_SHAPE, op, i0, rows, h0, hc, nq, nk, nh, nkv,
                      hd, max_len);
          // dQ_b(rows, hd) = dS_b·K_g (set): as the forward's O = P·V with
          // dS for P and K_g for V_g, into dq rows i0.., head h0+b.
          if (dc_gemm_tf32_strided("attn_bwd_gemm dQ=dS·K", 0, 0, rows, hd, nk, 1.f, dpw, nk, ss, kg, kvs, 0, 0.f,
                                   dq + qo, qs, hd, hc))
            return -1;
          for (int b = 0; b < hc; b++) {
            int64_t qb = qo + (int64_t)b * hd;
            // dK_g(nk, hd) += dS_bᵀ·Q_b: A = dS_b (rows, nk) (lda nk),
            // transA; B = Q_b (rows, hd) (ldb qs); C = dK_g (ldc kvs), beta
            // 1, one head at a time. cuBLAS: (N, T, m=hd, n=nk, k=rows) on
            // Q_b (col-major hd × rows, ld qs) and dS_b (col-major nk ×
            // rows, ld nk, transposed) into the col-major hd × nk dK_gᵀ (ld
            // kvs).
            if (dc_gemm_tf32_strided("attn_bwd_gemm dK+=dSᵀ·Q", 1, 0, nk, hd, rows, 1.f, dpw + b * ss, nk, 0, q + qb,
                                     qs, 0, 1.f, dkg, kvs, 0, 1))
              return -1;
            // dV_g(nk, hd) += P_bᵀ·dO_b: the same mapping with P_b, dO_b.
            if (dc_gemm_tf32_strided("attn_bwd_gemm dV+=Pᵀ·dO", 1, 0, nk, hd, rows, 1.f, pw + b * ss, nk, 0, dout + qb,
                                     qs, 0, 1.f, dvg, kvs, 0, 1))
              return -1;
          }
        }
      }
    }
  }
  // Bad rows: NaN in dq (their dS rows were 0, so the GEMM wrote 0).
  return ag_bad_rows(op, dq, qs, NULL, nh, kv_lo, kv_hi, nq, nk, nkv, hd, max_len);
}
