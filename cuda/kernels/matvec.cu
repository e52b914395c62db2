// matvec.cu: decode's matrix-vector products (the kernels:
// matvec_kernels.cuh) — one weight, or up to three over one input with the
// input's RMSNorm or SwiGLU and each output's bias and residual fused in, so
// a decoded layer is a handful of launches, not twenty (a decoded token of a
// small model is bound by the host's launch rate, not by the weights' bytes).
// The NF4 products factor each 32-code chunk's scale out of its dot product
// (f32, as close to the CPU as any other summation order).
//
// Bytes, and the predicted fraction of bandwidth. Read per row of an NF4
// weight: cols/2 of codes, cols/64 of qabsmax
// (double quant; 4·cols/64 without), 4·cols/16384 of absmax2: ≈ 0.516·cols
// (Qwen2.5-1.5B's 8960×1536 MLP weight: 792 B a row, 7.1 MB in all). For a
// bf16 weight, 2·cols.
//
// k_nf4_matvec (cols a multiple of 32, ≤ 16384, 16-byte aligned codes and x)
// reads each row's codes as 16-byte loads (32 codes a lane), the block's
// scale once per 32 codes, and keeps 4 rows per thread group so a float4 of x
// read from shared memory serves 4 rows. x is staged in shared memory
// transposed ([8][cols/32] float4) so a warp's reads are conflict-free; the
// first two chunks' loads are issued before x is staged and each later
// chunk's as soon as the one two before it is computed, so each thread has
// 64–128 bytes in flight (48–96 KB an SM at 3 blocks of 256 threads).
//
// Predicted for NF4, weights well beyond L2, against 3% for the former
// warp-per-row byte-wide kernel: 60–75% of the device-to-device copy rate
// (≈ 2.4–3.0 TB/s on an H200 whose copy runs at 4.0 TB/s) for the kernel
// itself (BenchmarkNF4MatVec/tall), 45–65% launch to launch at the MLP shape
// (BenchmarkNF4MatVec/mlp: ≈ 2.5–4 µs a 7.1 MB launch). Why not more:
// (1) the NF4 table is a shared-memory lookup per code (a PRMT that builds
// the table address, then an LDS: ≈ 3.3 instructions a code in all), one LDS
// wavefront per 32 codes at ≤ 1 wavefront an SM per clock, plus 8 LDS.128 of
// x per 4·32 codes: 160 wavefronts per 2 KB of codes, a ceiling of
// 12.8 B/clock/SM ≈ 3.3 TB/s at 1.98 GHz on 132 SMs, about the HBM's own read
// rate, so both limits bite together; (2) each block re-reads all of x from
// L2: 4·cols bytes per block of 32 rows at cols < 2048 (TPR 32), fewer rows a
// block for longer rows — L2 traffic of 8/rows-a-block times the weight's
// bytes, 25% at 1536 columns, up to 200% at ≥ 8192 columns, which caps long
// rows (the down projection) lower, ≈ 40–50%; (3) a 7 MB weight streams in
// ≈ 2 µs, so each launch's ramp-up and tail (≈ 1 µs) and the host's launch
// rate (cgo + cudaLaunchKernel, 2–4 µs a launch) cost a visible share:
// BenchmarkNF4MatVec's "tall" variant (4× the rows a launch) shows the
// kernel with that amortised. At 80 registers 3 blocks (24 warps) fit an
// SM: the 280 blocks of an 8960×1536 weight run in one wave.
// bf16 (k_bf16_matvec): 16 bytes = 8 weights a lane per load, two ALU ops and
// one FMA per weight, no table: memory-bound, 70–85% of the copy rate
// predicted for the MLP shape (25% extra L2 traffic for x at 8 rows a block).
#include "common.cuh"
#include "matvec_kernels.cuh"

// TPR for a row of C chunks: the largest power of two ≤ C in [32, 256]
// (so 1–2 chunks a thread up to 512 chunks, all lanes busy in the first).
static int mv_tpr(int C) {
  int t = 32;
  while (t < 256 && 2 * t <= C) t *= 2;
  return t;
}

static int nf4_check(const dc_nf4 *w, const char *op) {
  if (w->rows < 0 || w->cols < 0) return dc_fail("negative shape", "%s(%d×%d)", op, w->rows, w->cols);
  if (w->absmax == nullptr && (w->qabsmax == nullptr || w->absmax2 == nullptr || w->map2 == nullptr))
    return dc_fail("no absmax and no double-quant statistics", "%s(%d×%d)", op, w->rows, w->cols);
  return 0;
}

// Launches kernel k (a fast matvec instantiation) with dyn bytes of dynamic
// shared memory, raising the kernel's limit first when dyn is over the limit
// set so far (raised: per kernel, the attribute stays set). One instantiation
// serves several column counts, so a later, wider call may need more than
// the first (the first GPU run failed 16384 columns after 8192 with
// cudaErrorInvalidValue when the limit was raised only once).
template <typename K>
static int mv_launch(K k, dim3 grid, size_t dyn, size_t &raised, const mv_job &job, const float *x) {
  if (dyn > 32 * 1024 && dyn > raised) {  // the default 48 KB counts static shared memory too
    DC_CHECK(cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)dyn), "cudaFuncSetAttribute(%zu bytes)", dyn);
    raised = dyn;
  }
  DC_LAUNCH(grid, MV_THREADS, dyn, k)(job, x);
  return 0;
}

// The grid of a job: as many blocks as its tallest output needs, one row of
// them per output.
static dim3 mv_grid(const mv_job &job, int rows_per_block) {
  int most = 0;
  for (int i = 0; i < job.n; i++) most = max(most, job.o[i].w.rows);
  return dim3((most + rows_per_block - 1) / rows_per_block, job.n);
}

template <int TPR, bool DQ>
static int nf4_fast(const mv_job &job, const float *x) {
  static size_t raised = 0;  // per instantiation
  return mv_launch(k_nf4_matvec<TPR, DQ>, mv_grid(job, MV_THREADS / TPR * MV_R), (size_t)job.o[0].w.cols * 4, raised, job, x);
}

template <bool DQ>
static int nf4_fast_tpr(const mv_job &job, const float *x) {
  switch (mv_tpr(job.o[0].w.cols / 32)) {
    case 32: return nf4_fast<32, DQ>(job, x);
    case 64: return nf4_fast<64, DQ>(job, x);
    case 128: return nf4_fast<128, DQ>(job, x);
    default: return nf4_fast<256, DQ>(job, x);
  }
}

template <int TPR>
static int bf16_fast(const mv_job &job, const float *x) {
  static size_t raised = 0;
  return mv_launch(k_bf16_matvec<TPR>, mv_grid(job, MV_THREADS / TPR * MV_R), (size_t)job.o[0].w.cols * 4, raised, job, x);
}

// Whether the fast kernels take j over x: one kind of weight (NF4 with one
// kind of scale), every output with rows, cols a multiple of the 16-byte
// chunk's elements and ≤ MV_MAX_COLS, 16-byte aligned weights, x, prologue
// weight and output.
static bool mv_fast_ok(const dc_mv_job *j, const float *x) {
  const int cols = j->cols;
  if (j->n < 1 || cols <= 0 || cols > MV_MAX_COLS || !dc_aligned16(x)) return false;
  if (j->pro_kind != MV_PLAIN && (!dc_aligned16(j->pro) || !dc_aligned16(j->xo))) return false;
  const bool nf4 = j->o[0].nf4.codes != nullptr, dq = j->o[0].nf4.absmax == nullptr;
  for (int i = 0; i < j->n; i++) {
    const dc_mv_out &o = j->o[i];
    if ((o.nf4.codes != nullptr) != nf4) return false;
    if (nf4 && (o.nf4.rows <= 0 || o.nf4.cols != cols || cols % 32 != 0 || !dc_aligned16(o.nf4.codes) || (o.nf4.absmax == nullptr) != dq))
      return false;
    if (!nf4 && (o.rows <= 0 || cols % 8 != 0 || !dc_aligned16(o.bf16))) return false;
  }
  return true;
}

// j in one launch of the fast kernels (mv_fast_ok).
static int mv_fast(const dc_mv_job *j, const float *x) {
  mv_job job{};
  job.n = j->n;
  job.pro = mv_pro{j->pro_kind, j->pro, j->eps, j->xo};
  const bool nf4 = j->o[0].nf4.codes != nullptr;
  for (int i = 0; i < j->n; i++) {
    const dc_mv_out &o = j->o[i];
    job.o[i].w = nf4 ? nf4_of(&o.nf4) : nf4_args{nullptr, nullptr, nullptr, nullptr, nullptr, 0.f, o.rows, j->cols};
    job.o[i].wb = reinterpret_cast<const uint4 *>(o.bf16);
    job.o[i].y = o.y, job.o[i].bias = o.bias, job.o[i].res = o.res;
  }
  if (nf4) return j->o[0].nf4.absmax == nullptr ? nf4_fast_tpr<true>(job, x) : nf4_fast_tpr<false>(job, x);
  switch (mv_tpr(j->cols / 8)) {
    case 32: return bf16_fast<32>(job, x);
    case 64: return bf16_fast<64>(job, x);
    case 128: return bf16_fast<128>(job, x);
    default: return bf16_fast<256>(job, x);
  }
}

// One output of j over x' op by op: the fast kernel alone when it takes the
// shape, else a warp per row; then its bias and residual.
static int mv_one(const dc_mv_job *j, int i, const float *x) {
  dc_mv_job one{};
  one.n = 1, one.cols = j->cols, one.o[0] = j->o[i];
  one.o[0].bias = one.o[0].res = nullptr;
  const dc_mv_out &o = j->o[i];
  const bool nf4 = o.nf4.codes != nullptr;
  const int rows = nf4 ? o.nf4.rows : o.rows;
  if (rows == 0) return 0;
  if (mv_fast_ok(&one, x)) {
    if (mv_fast(&one, x) != 0) return -1;
  } else if (nf4) {
    DC_LAUNCH((rows + 7) / 8, 256, 0, k_nf4_matvec_any)(o.y, nf4_of(&o.nf4), x);
  } else {
    DC_LAUNCH((rows + 7) / 8, 256, 0, k_bf16_matvec_any)(o.y, (const __nv_bfloat16 *)o.bf16, x, rows, j->cols);
  }
  DC_LAUNCHED("matvec(%d×%d, %s)", rows, j->cols, nf4 ? "nf4" : "bf16");
  if (o.bias != nullptr && dc_add_bias(o.y, o.bias, 1, rows) != 0) return -1;
  if (o.res != nullptr && dc_add(o.y, o.res, rows) != 0) return -1;
  return 0;
}

extern "C" int dc_mv_fused(const dc_mv_job *j, const float *x) {
  if (j->n < 1 || j->n > MV_OUTS || j->cols < 0) return dc_fail("1 to 3 outputs of cols ≥ 0", "mv_fused(%d outputs, cols %d)", j->n, j->cols);
  if (j->pro_kind != MV_PLAIN && (j->pro == nullptr || j->xo == nullptr || (j->pro_kind != MV_RMSNORM && j->pro_kind != MV_SWIGLU)))
    return dc_fail("a prologue needs its weight and its output", "mv_fused(prologue %d)", j->pro_kind);
  for (int i = 0; i < j->n; i++) {
    const dc_mv_out &o = j->o[i];
    if (o.nf4.codes != nullptr) {
      if (nf4_check(&o.nf4, "mv_fused") != 0) return -1;
      if (o.nf4.cols != j->cols) return dc_fail("weight columns differ from the input's", "mv_fused(output %d: %d×%d, cols %d)", i, o.nf4.rows, o.nf4.cols, j->cols);
    }
    if (o.res != nullptr && o.res == o.y) return dc_fail("res is y", "mv_fused(output %d)", i);
  }
  if (mv_fast_ok(j, x)) {
    if (mv_fast(j, x) != 0) return -1;
    DC_LAUNCHED("mv_fused(%d × %s %d cols, prologue %d)", j->n, j->o[0].nf4.codes ? "nf4" : "bf16", j->cols, j->pro_kind);
    return 0;
  }
  const float *xin = x;  // op by op: the prologue into xo, then each output
  if (j->pro_kind == MV_RMSNORM) {
    if (dc_rmsnorm_fwd(j->xo, nullptr, x, j->pro, 1, j->cols, j->eps) != 0) return -1;
    xin = j->xo;
  } else if (j->pro_kind == MV_SWIGLU) {
    if (dc_swiglu_fwd(j->xo, nullptr, nullptr, nullptr, j->pro, x, j->cols) != 0) return -1;
    xin = j->xo;
  }
  for (int i = 0; i < j->n; i++)
    if (mv_one(j, i, xin) != 0) return -1;
  return 0;
}

extern "C" int dc_nf4_matvec(float *y, const dc_nf4 *w, const float *x) {
  dc_mv_job j{};
  j.n = 1, j.cols = w->cols, j.o[0].nf4 = *w, j.o[0].y = y;
  return dc_mv_fused(&j, x);
}

extern "C" int dc_bf16_matvec(float *y, const uint16_t *w, const float *x, int rows, int cols) {
  dc_mv_job j{};
  j.n = 1, j.cols = cols, j.o[0].bf16 = w, j.o[0].rows = rows, j.o[0].y = y;
  return dc_mv_fused(&j, x);
}
