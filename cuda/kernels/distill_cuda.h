// distill_cuda.h: the C API of libdistillcuda.a, the CUDA kernels of the
// `cuda` Go package. Plain C with no CUDA headers, so that cgo (and
// `go vet -tags cuda`) can read it on a machine without the toolkit.
//
// Conventions: every function returns 0 on success and -1 on failure, and
// then dc_last_error() holds "op(shapes): cudaErrorName: description". The
// error buffer is process-wide: the Go side serialises every call through
// one mutex and reads the error under it. Buffers are device pointers,
// row-major, shapes given as (rows, cols) in the comments. Everything runs on
// one stream created by dc_init; the host-synchronising calls say so.
#ifndef DISTILL_CUDA_H
#define DISTILL_CUDA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// ---- runtime.cu: device, stream, memory, cuBLAS handle ----
const char *dc_last_error(void);
// dc_device_count sets *n to the visible devices (0, not an error, when the
// driver reports no device or is absent).
int dc_device_count(int *n);
// dc_init selects device dev and creates the stream and the cuBLAS handle.
int dc_init(int dev);
// dc_device_info: name (NUL-terminated, at most len bytes), total memory,
// compute capability, the opt-in shared memory per block and the PCI
// domain, bus and device numbers (NVML finds the same card by them).
int dc_device_info(int dev, char *name, int len, size_t *total_mem, int *major, int *minor, int *smem_optin, int pci[3]);
int dc_mem_info(size_t *free_b, size_t *total_b);
int dc_malloc(void **p, size_t bytes);
int dc_free(void *p);
int dc_h2d(void *dst, const void *src, size_t bytes);  // returns when src may be reused
int dc_d2h(void *dst, const void *src, size_t bytes);  // synchronises the stream
int dc_d2d(void *dst, const void *src, size_t bytes);
int dc_memset0(void *dst, size_t bytes);
int dc_sync(void);
// CUDA graphs: dc_graph_begin records the stream's launches (no
// synchronising call may run until the end); dc_graph_end stops and, with
// keep, instantiates them into *exec (NULL on failure or without keep);
// dc_graph_launch replays one on the stream.
int dc_graph_begin(void);
int dc_graph_end(void **exec, int keep);
int dc_graph_launch(void *exec);
int dc_graph_free(void *exec);
// dc_blas_workspace makes cuBLAS use bytes of device memory at ws as its
// workspace (cublasSetWorkspace) instead of its own: a capture then records
// GEMMs into it, where cuBLAS before 12.2 allocated a new one per capture.
int dc_blas_workspace(void *ws, size_t bytes);

// ---- convert.cu: f32 <-> bf16 (round to nearest even, NaN kept) ----
int dc_f32_to_bf16(uint16_t *dst, const float *src, int64_t n);
// dst(rows, ldd) = bf16(scale·src(rows, lds)) over cols columns of each row,
// the rest of dst's rows untouched: an operand written beside other columns.
typedef struct {
  uint16_t *dst;
  int64_t ldd;
  const float *src;
  int64_t lds, rows, cols;
  float scale;
} dc_bf16_rows;
int dc_f32_to_bf16_2d(uint16_t *dst, int64_t ldd, const float *src, int64_t lds, int64_t rows, int64_t cols, float scale);
int dc_bf16_to_f32(float *dst, const uint16_t *src, int64_t n);
int dc_f16_to_f32(float *dst, const uint16_t *src, int64_t n);

// ---- gemm.cu: row-major C(m, n) = alpha·op(A)·op(B) + beta·C ----
// op(A) is (m, k), op(B) is (k, n); lda, ldb, ldc are row strides, as
// tensor.Gemm. f32: cublasSgemm with TF32 off (the parity reference).
// bf16: A and B bf16, C f32, f32 accumulation on tensor cores (cublasGemmEx,
// CUBLAS_COMPUTE_32F).
int dc_gemm_f32(int trans_a, int trans_b, int m, int n, int k, float alpha,
                const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc);
// tf32: f32 A, B and C on the tensor cores with TF32 inputs (10-bit
// mantissas, ~1e-3 relative), f32 accumulation: the adapter's products.
int dc_gemm_tf32(int trans_a, int trans_b, int m, int n, int k, float alpha,
                 const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc);
int dc_gemm_bf16(int trans_a, int trans_b, int m, int n, int k, float alpha,
                 const uint16_t *a, int lda, const uint16_t *b, int ldb, float beta, float *c, int ldc);
// dc_gemm_bf16 with C in bf16: the f32 sum rounded as it is stored (beta
// reads C widened).
int dc_gemm_bf16_out(int trans_a, int trans_b, int m, int n, int k, float alpha, const uint16_t *a, int lda,
                     const uint16_t *b, int ldb, float beta, uint16_t *c, int ldc);
// tf32, batch of them: operands b at A + b·sa, B + b·sb, C + b·sc (elements;
// stride 0 shares one).
int dc_gemm_tf32_batched(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
                         int64_t sa, const float *b, int ldb, int64_t sb, float beta, float *c, int ldc, int64_t sc,
                         int batch);

// ---- rmsnorm.cu ----
// out(rows, d) = x·rstd·w, rstd(rows) = 1/sqrt(mean(x²)+eps); rstd may be NULL.
// out may alias x.
int dc_rmsnorm_fwd(float *out, float *rstd, const float *x, const float *w, int rows, int d, float eps);
// dc_rmsnorm_fwd that also rounds out into ob's rows (ldb ≥ d apart) as
// bf16: the next GEMM's operand in the same pass.
int dc_rmsnorm_fwd_bf16(float *out, float *rstd, const float *x, const float *w, int rows, int d, float eps,
                        uint16_t *ob, int64_t ldb);
// dx(rows, d) += rstd·dy·w − x·rstd³·Σ(dy·w·x)/d; dw(d) += Σ_rows dy·x·rstd
// when dw is not NULL.
int dc_rmsnorm_bwd(float *dx, float *dw, const float *dy, const float *x, const float *w, const float *rstd, int rows, int d);

// ---- rope.cu: HF rotate-half, pairs (j, j+hd/2) ----
// Rotates rows n of x, each n_heads × hd, at positions pos[n] (int32), with
// cos, sin (max_pos, hd/2) from the host (llama3 / linear scaling are in the
// tables). inverse rotates by −θ (RoPE's backward).
int dc_rope(float *x, const int32_t *pos, const float *cos_t, const float *sin_t,
            int n, int n_heads, int hd, int max_pos, int inverse);

// ---- swiglu.cu ----
// a = silu(g)·u (a may alias g), and optionally a in bf16 (ab) and g and u
// in bf16 (gb, ub: together); dg, du from da (dg, du may alias g, u). The
// _b16 backward reads g and u from their bf16 copies (gb, ub); its a
// (optional) gets silu(g)·u too.
int dc_swiglu_fwd(float *a, uint16_t *ab, uint16_t *gb, uint16_t *ub, const float *g, const float *u, int64_t n);
// a (f32) and ab (bf16), each optional, from bf16 g and u.
int dc_swiglu_fwd_b16(float *a, uint16_t *ab, const uint16_t *gb, const uint16_t *ub, int64_t n);
// The forward (a, ab, and gb, ub from f32 g and u — each optional; b16: g
// and u bf16) with u(rows, r) = ã·Aᵀ for A (r, cols) f32, r ≤ 32, cols a
// multiple of 4 (ã: a, or under LoRA dropout when drop a∘mask·keep, its key
// base or *base_at): part (part_len floats) holds the column chunks' sums.
int dc_swiglu_u(float *a, uint16_t *ab, uint16_t *gb, uint16_t *ub, const void *g, const void *u, int b16,
                const float *A, int r, float *uout, float *part, int64_t part_len, int64_t rows, int64_t cols,
                int drop, uint64_t base, const uint64_t *base_at, uint64_t thresh, float keep);
int dc_swiglu_bwd(float *dg, float *du, const float *da, const float *g, const float *u, int64_t n);
int dc_swiglu_bwd_b16(float *dg, float *du, float *a, const float *da, const uint16_t *gb, const uint16_t *ub,
                      int64_t n);
// dg and du rounded to bf16 into rows ld apart (the projections' operands),
// from f32 g and u or, b16, bf16 ones (a then optional: silu(g)·u); up to 4
// row conversions (dc_bf16_rows) in the same launch.
int dc_swiglu_bwd_rows(uint16_t *dgb, uint16_t *dub, int64_t ld, float *a, const float *da, const void *g, const void *u,
                       int b16, int64_t rows, int64_t cols, const dc_bf16_rows *jobs, int njobs);
// dc_swiglu_bwd_rows by 4 that also adds the down adapter's dA += duᵀ·ã
// (ã: a under LoRA dropout's mask when drop; its key base, or *base_at).
int dc_swiglu_bwd_da(uint16_t *dgb, uint16_t *dub, int64_t ld, const float *da, const void *g, const void *u, int b16,
                     int64_t rows, int64_t cols, float *gA, const float *du, int r, float *part, int64_t part_len,
                     int drop, uint64_t base, const uint64_t *base_at, uint64_t thresh, float keep,
                     const dc_bf16_rows *jobs, int njobs);

// ---- lora_sums.cu ----
// g(n) += s·Σ over chunks of part (chunks × n), in chunk order (set: g = s·Σ).
int dc_lora_sums_add(float *g, const float *part, int64_t n, int chunks, float s, int set);
// dst(rows, ldd) = bf16(src(rows, lds)) over cols columns, with the
// adapter's dB (cols × r) += s·srcᵀ·u (u: rows × r): cols, strides and r
// multiples of 4 (r ≤ 32), rows aligned; part (part_len floats) holds the
// row chunks' sums (too small for two: one chunk, into gB itself).
int dc_bf16_rows_db(uint16_t *dst, int64_t ldd, const float *src, int64_t lds, int64_t rows, int64_t cols,
                    const float *u, int r, float *gB, float *part, int64_t part_len, float s);
// dA_m (r × cols) += du_mᵀ·x̃_m for members m < members (1 to 3) sharing x
// (rows × cols): du_m at du + m·rows·r, dA_m at gA + m·r·cols; x̃_m = x, or
// when drop x under member m's mask (key bases[m], or base_at[m]).
// cols and r multiples of 4 (r ≤ 32), rows aligned; part (part_len
// floats) holds the row chunks' sums.
int dc_lora_col_sums(float *gA, const float *x, const float *du, int64_t rows, int64_t cols, int r, int members,
                     float *part, int64_t part_len, int drop, const uint64_t *bases, const uint64_t *base_at,
                     uint64_t thresh, float keep);
// out_m (rows × r) = s·x̃_m·W_mᵀ for members m < members (1 to 3) sharing x
// (rows × cols): W_m (r × cols) at W + m·r·cols, out_m at out + m·rows·r;
// transposed (one member, r a multiple of 4): W is (cols × r), out = s·x·W.
// x̃_m as dc_lora_col_sums masks it. cols a multiple of 4, r ≤ 32, x and W
// 16-byte aligned; part (part_len floats) holds the column chunks' sums.
int dc_lora_row_sums(float *out, const float *x, const float *W, int64_t rows, int64_t cols, int r, int members,
                     int transposed, float s, float *part, int64_t part_len, int drop, const uint64_t *bases,
                     const uint64_t *base_at, uint64_t thresh, float keep);

// ---- embed.cu ----
// out(n, d) = table[ids[i]] widened; dtype 0 f32, 1 f16, 2 bf16 (tensor.DType).
int dc_embed_fwd(float *out, const void *table, int dtype, const int32_t *ids, int n, int d, int vocab);
// dtable(vocab, d) += scatter of dout(n, d) by ids (atomic adds).
int dc_embed_bwd(float *dtable, const float *dout, const int32_t *ids, int n, int d, int vocab);

// ---- nf4.cu: core/quant's NF4 (bitsandbytes layout) ----
// Block b's scale: absmax[b], or with double quant (absmax == NULL)
// map2[qabsmax[b]]·absmax2[b/256] + offset, each step rounded.
typedef struct {
  const uint8_t *codes;    // (rows·cols+1)/2, high nibble first
  const float *absmax;     // blocks, or NULL under double quant
  const uint8_t *qabsmax;  // blocks
  const float *absmax2;    // ceil(blocks/256)
  const float *map2;       // 256
  float offset;
  int rows, cols;
} dc_nf4;
// Rows [r0, r1) dequantised into dst ((r1−r0), cols), bf16 or f32; bf16
// rows may start ld ≥ cols elements apart (the columns past cols untouched).
int dc_nf4_dequant_bf16(uint16_t *dst, const dc_nf4 *w, int r0, int r1, int64_t ld);
int dc_nf4_dequant_f32(float *dst, const dc_nf4 *w, int r0, int r1);
// All of w into the bf16 tile (rows ld apart) and up to 3 conversions, in
// one launch where the vector kernel can take the tile (else one each):
// the adapter's fused GEMM's operands (its B or A, u or du, dy).
int dc_nf4_stage(uint16_t *tile, const dc_nf4 *w, int64_t ld, const dc_bf16_rows *jobs, int njobs);

// ---- matvec.cu: decode's matrix-vector products ----
// y(rows) = W·x(cols), NF4 dequantised in registers (16-byte loads, 4 rows a
// thread group; see matvec.cu for the shapes each kernel takes).
int dc_nf4_matvec(float *y, const dc_nf4 *w, const float *x);
// y(rows) = W·x for a bf16 W (rows, cols).
int dc_bf16_matvec(float *y, const uint16_t *w, const float *x, int rows, int cols);
// One output of a fused product: y(rows) = W·x' (+ bias) (+ res), W NF4
// (nf4.codes set; rows, cols its own) or bf16 (bf16, rows).
typedef struct {
  dc_nf4 nf4;
  const uint16_t *bf16;
  int rows;
  float *y;
  const float *bias, *res;  // optional (rows)
} dc_mv_out;
// Up to 3 outputs over one input x(cols), all NF4 or all bf16, in one launch
// where the shapes allow (else op by op). x' is x after the prologue: none
// (0); RMSNorm (1) with weight pro (cols) and eps; SwiGLU (2): x' =
// pro·σ(pro)·x, pro the gate (cols). xo (cols; needed with a prologue) gets x'.
typedef struct {
  int n, cols;
  dc_mv_out o[3];
  int pro_kind;
  const float *pro;
  float eps;
  float *xo;
} dc_mv_job;
int dc_mv_fused(const dc_mv_job *j, const float *x);

// ---- decode.cu: one decoded token's q, k, v after the projections ----
// q (nh·hd) normalised per head by q_norm (hd, optional: Qwen3) and rotated
// (RoPE at position pos[0] from tables (tables, hd/2)) in place; k likewise
// into row pos[0] of k_cache (cap, nkv·hd) and k_stage (nkv·hd, optional);
// v copied into v_cache's row and v_stage. The caches hold f32, or bf16
// with kv_bf16 (rounded to nearest even; the stages then get the rounded
// values, what the cache holds). A position outside [0, min(cap, tables))
// writes nothing: the caller checks it.
typedef struct {
  float *q;
  const float *k, *v, *q_norm, *k_norm;
  float eps;
  const int32_t *pos;
  const float *cos_t, *sin_t;
  int tables;
  void *k_cache, *v_cache;
  float *k_stage, *v_stage;
  int cap, nh, nkv, hd, kv_bf16;
} dc_decode_qkv_args;
int dc_decode_qkv(const dc_decode_qkv_args *a);
// A batched decode step, each row (one token of its own sequence) over its
// own cache: k_cache[r], v_cache[r] are row r's layer buffers ((cap[r],
// kvo) each). dc_kv_rows writes row r's new key and value (k, v: (nr, kvo))
// at position pos[r] (outside [0, cap[r]): nothing). dc_attn_rows: out (nr,
// nh·hd) and lse (nr, nh) of row r attending keys [0, hi[r]) of its cache,
// grouped heads, f32; hd ≤ 128; hi[r] ≤ 0 or > cap[r] gives NaN. Every
// cache holds f32, or bf16 with kv_bf16 (written rounded to nearest even,
// widened as read).
typedef struct {
  const float *k, *v;
  void *const *k_cache, *const *v_cache;
  const int32_t *pos, *cap;
  int nr, kvo, kv_bf16;
} dc_kv_rows_args;
int dc_kv_rows(const dc_kv_rows_args *a);
typedef struct {
  float *out, *lse;
  const float *q;
  const void *const *k_cache, *const *v_cache;
  const int32_t *hi, *cap;
  int nr, nh, nkv, hd;
  float scale;
  int kv_bf16;
} dc_attn_rows_args;
int dc_attn_rows(const dc_attn_rows_args *a);
// dc_attn_rows with each row's keys in chunks of chunk keys, a block each
// for (up to 8 of) a GQA group's query heads, then merged (flash-decoding:
// a long cache read by many blocks at once, each key once a group): the
// same out and lse up to the sums' order. part: nr·nh·splits·(hd + 2)
// floats of scratch; splits·chunk must cover every valid hi[r] (keys past
// it are left out).
int dc_attn_rows_split(const dc_attn_rows_args *a, float *part, int splits, int chunk);

// ---- adamw.cu: torch.optim.AdamW, constants precomputed as core/train ----
// m = b1·m + (1−b1)·g; v = b2·v + (1−b2)·g²; p = p·decay −
// step_size·m/(sqrt(v)/sqrt_bc2 + eps).
int dc_adamw(float *p, const float *g, float *m, float *v, int64_t n,
             float b1, float b2, float decay, float step_size, float sqrt_bc2, float eps);

// ---- gradnorm.cu ----
// *sumsq (device double, overwritten) = Σ g², accumulated in f64.
int dc_sumsq(double *sumsq, const float *g, int64_t n);
// g *= max_norm/(sqrt(*sumsq)+1e-6) when that norm exceeds max_norm, reading
// *sumsq on the device (no host round trip).
int dc_clip_scale(float *g, int64_t n, const double *sumsq, double max_norm);

// ---- xent.cu: softmax cross-entropy, one row per block, the vocabulary in
// chunks of the block's width with an online max and sum ----
// loss[r] = logsumexp(logits[r]) − logits[r][target[r]]; logits becomes
// scale·(softmax − onehot(target)) when grad is set.
int dc_xent(float *loss, float *logits, const int32_t *target, int rows, int vocab, float scale, int grad);
// dc_xent with the gradient's scale per row (row_scale[r], device memory):
// logits become row_scale[r]·(softmax − onehot(target)). A negative scale
// raises the target's log-probability (DPO's chosen rows).
int dc_xent_rows(float *loss, float *logits, const int32_t *target, int rows, int vocab, const float *row_scale);

// ---- attention.cu: causal GQA attention, the simple reference version ----
// Query row i (of nq) attends key rows [kv_lo[i], kv_hi[i]); q, out:
// (nq, nh·hd); k, v: (nk, nkv·hd); lse: (nq, nh). One block per (query, head).
int dc_attn_fwd(float *out, float *lse, const float *q, const float *k, const float *v,
                const int32_t *kv_lo, const int32_t *kv_hi, int nq, int nk, int nh, int nkv, int hd,
                int max_len, float scale);
// dq (set), dk and dv (accumulated: zero them first) from dout, out, lse.
int dc_attn_bwd(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                const float *v, const float *out, const float *lse, const int32_t *kv_lo,
                const int32_t *kv_hi, int nq, int nk, int nh, int nkv, int hd, int max_len, float scale);

// ---- elementwise.cu ----
int dc_add(float *dst, const float *src, int64_t n);          // dst += src
int dc_add_bias(float *x, const float *bias, int64_t rows, int n);
int dc_scale(float *x, float s, int64_t n);

#ifdef __cplusplus
}
#endif

// Further kernels' declarations, one header per file.
#include "attn_gemm.h"
#include "attn_flash.h"
#include "rows.h"
#include "dropout.h"
#include "kd.h"
#endif
