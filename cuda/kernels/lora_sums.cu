// lora_sums.cu: the adapter's column sums taken in a pass over an
// activation's rows (lora_sums.cuh) — the chunks' sums added in order, and
// dy's rows rounded to bf16 (the projection's backward GEMM operand) with
// its adapter's dB += s·dyᵀ·u, where a TF32 GEMM read dy again.
#include "common.cuh"
#include "bf16_rows.cuh"
#include "lora_sums.cuh"

// g(n) += s·Σ over the chunks of part (chunks × n, g's layout), in chunk
// order (set: g = s·Σ); blockIdx.y a member, its g and part sg and
// chunks·n apart.
__global__ void k_lora_sums_add(float *g, int64_t sg, const float *part, int64_t n, int chunks, float s, int set) {
  g += blockIdx.y * sg, part += blockIdx.y * chunks * n;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    float v = part[i];
    for (int c = 1; c < chunks; c++) v += part[c * n + i];
    g[i] = set ? s * v : g[i] + s * v;
  }
}

static int lora_sums_add(float *g, int64_t sg, const float *part, int64_t n, int chunks, int members, float s,
                         bool set = false) {
  if (n <= 0 || chunks <= 0 || members <= 0) return 0;
  DC_LAUNCH(dim3((unsigned)dc_blocks(n, 256), (unsigned)members), 256, 0, k_lora_sums_add)(g, sg, part, n, chunks, s,
                                                                                           set ? 1 : 0);
  DC_LAUNCHED("lora_sums_add(%lld, %d chunks, %d members)", (long long)n, chunks, members);
  return 0;
}

extern "C" int dc_lora_sums_add(float *g, const float *part, int64_t n, int chunks, float s, int set) {
  return lora_sums_add(g, 0, part, n, chunks, 1, s, set != 0);
}

// dst(rows, ldd) = bf16(src(rows, lds)) over cols columns, and dB (cols ×
// r) += s·srcᵀ·u (u: rows × r, 16-byte aligned rows): blocks are (column
// block, row chunk) tiles, a thread 4 columns down rc rows with R sums for
// each; one chunk adds into gB itself, more leave theirs in
// part[chunk][cols][r].
template <int R>
__global__ void __launch_bounds__(128) k_bf16_rows_db(__nv_bfloat16 *dst, int64_t ldd, const float *src, int64_t lds,
                                                      int64_t rows, int64_t cols, const float *u, int r, float *gB,
                                                      float *part, float s, int64_t rc, int64_t cblocks) {
  const int64_t cb = blockIdx.x % cblocks, chunk = blockIdx.x / cblocks;
  const int64_t j = (cb * blockDim.x + threadIdx.x) * 4;  // this thread's first column
  if (j >= cols) return;
  const int64_t r0 = chunk * rc, r1 = r0 + rc < rows ? r0 + rc : rows;
  auto load = [&](int64_t row) { return *reinterpret_cast<const float4 *>(src + row * lds + j); };
  auto use = [&](int64_t row, float4 v) {
    *reinterpret_cast<uint2 *>(dst + row * ldd + j) = dc_pack_bf16x4(v);
    return v;
  };
  lora_col_pass<R>(r0, r1, load, use, u, r, [&](const float(&acc)[4][R]) {
    if (part)
      lora_sums_store<R, true>(acc, part + chunk * (int64_t)r * cols, true, 1.f, j, cols, r);
    else
      lora_sums_store<R, true>(acc, gB, false, s, j, cols, r);
  });
}

// ~64 rows a chunk, as many chunks as part (part_len floats) holds; then
// the chunks summed in order.
extern "C" int dc_bf16_rows_db(uint16_t *dst, int64_t ldd, const float *src, int64_t lds, int64_t rows, int64_t cols,
                               const float *u, int r, float *gB, float *part, int64_t part_len, float s) {
  const bool ok = rows >= 0 && cols >= 0 && cols % 4 == 0 && ldd % 4 == 0 && lds % 4 == 0 && ldd >= cols &&
                  lds >= cols && r >= 4 && r <= 32 && r % 4 == 0 && ((uintptr_t)dst & 7) == 0 &&
                  (((uintptr_t)src | (uintptr_t)u | (uintptr_t)gB | (uintptr_t)part) & 15) == 0;
  if (!ok)
    return dc_fail("columns and strides multiples of 4, aligned rows, r a multiple of 4 up to 32",
                   "bf16_rows_db(%lld×%lld, ldd %lld, lds %lld, r %d)", (long long)rows, (long long)cols, (long long)ldd,
                   (long long)lds, r);
  if (rows == 0 || cols == 0) return 0;
  const int64_t cblocks = (cols + 511) / 512;
  int64_t chunks, rc;
  lora_col_chunks(rows, (int64_t)r * cols, part_len, chunks, rc);
  if (chunks * cblocks > INT32_MAX) return dc_fail("too many blocks", "bf16_rows_db(%lld×%lld)", (long long)rows, (long long)cols);
  float *pp = chunks > 1 ? part : nullptr;
  auto *d = (__nv_bfloat16 *)dst;
  const unsigned grid = (unsigned)(chunks * cblocks);
  if (r <= 16)
    DC_LAUNCH(grid, 128, 0, k_bf16_rows_db<16>)(d, ldd, src, lds, rows, cols, u, r, gB, pp, s, rc, cblocks);
  else
    DC_LAUNCH(grid, 128, 0, k_bf16_rows_db<32>)(d, ldd, src, lds, rows, cols, u, r, gB, pp, s, rc, cblocks);
  DC_LAUNCHED("bf16_rows_db(%lld×%lld, r %d, %lld chunks)", (long long)rows, (long long)cols, r, (long long)chunks);
  if (chunks <= 1) return 0;
  return dc_lora_sums_add(gB, part, r * cols, (int)chunks, s, 0);
}

// Up to 3 members' masks (k_lora_col_sums).
struct lora_masks {
  lora_mask m[3];
};

// dA_m (r × cols) += du_mᵀ·x̃_m for member m = blockIdx.y of up to 3
// adapters that share x (rows × cols): x̃_m = x, or under LoRA dropout x
// under member m's mask; du_m (rows × r, 16-byte aligned rows) at du +
// m·sdu, dA_m at gA + m·sga. Blocks across x are (column block, row chunk)
// tiles, a thread 4 columns down rc rows with R sums for each; one chunk
// adds into dA itself, more leave theirs in part (member m's chunks at
// m·chunks·r·cols).
template <int R>
__global__ void __launch_bounds__(128) k_lora_col_sums(const float *x, int64_t rows, int64_t cols, const float *du,
                                                       int64_t sdu, int r, float *gA, int64_t sga, float *part,
                                                       int64_t chunks, int64_t rc, int64_t cblocks, lora_masks M) {
  const int m = blockIdx.y;
  const int64_t cb = blockIdx.x % cblocks, chunk = blockIdx.x / cblocks;
  const int64_t j = (cb * blockDim.x + threadIdx.x) * 4;
  if (j >= cols) return;
  const int64_t r0 = chunk * rc, r1 = r0 + rc < rows ? r0 + rc : rows;
  const lora_mask mk = M.m[m];
  const uint64_t key = lora_mask_key(mk);
  auto load = [&](int64_t row) { return *reinterpret_cast<const float4 *>(x + row * cols + j); };
  auto use = [&](int64_t row, float4 v) { return mk.on ? lora_masked(v, key + (uint64_t)(row * cols + j), mk) : v; };
  lora_col_pass<R>(r0, r1, load, use, du + m * sdu, r, [&](const float(&acc)[4][R]) {
    if (part)
      lora_sums_store<R, false>(acc, part + (m * chunks + chunk) * (int64_t)r * cols, true, 1.f, j, cols, r);
    else
      lora_sums_store<R, false>(acc, gA + m * sga, false, 1.f, j, cols, r);
  });
}

extern "C" int dc_lora_col_sums(float *gA, const float *x, const float *du, int64_t rows, int64_t cols, int r,
                                int members, float *part, int64_t part_len, int drop, const uint64_t *bases,
                                const uint64_t *base_at, uint64_t thresh, float keep) {
  const bool ok = rows >= 0 && cols >= 0 && cols % 4 == 0 && r >= 4 && r <= 32 && r % 4 == 0 && members >= 1 &&
                  members <= 3 && (((uintptr_t)x | (uintptr_t)du | (uintptr_t)gA | (uintptr_t)part) & 15) == 0;
  if (!ok)
    return dc_fail("columns a multiple of 4, aligned rows, r a multiple of 4 up to 32, 1 to 3 members",
                   "lora_col_sums(%lld×%lld, r %d, %d members)", (long long)rows, (long long)cols, r, members);
  if (rows == 0 || cols == 0) return 0;
  lora_masks M{};
  for (int m = 0; m < members; m++)
    if (drop) M.m[m] = lora_mask{1, base_at ? 0 : bases[m], thresh, base_at ? base_at + m : nullptr, keep};
  const int64_t cblocks = (cols + 511) / 512;
  int64_t chunks, rc;
  lora_col_chunks(rows, (int64_t)members * r * cols, part_len, chunks, rc);
  if (chunks * cblocks > INT32_MAX) return dc_fail("too many blocks", "lora_col_sums(%lld×%lld)", (long long)rows, (long long)cols);
  float *pp = chunks > 1 ? part : nullptr;
  const dim3 grid((unsigned)(chunks * cblocks), (unsigned)members);
  const int64_t sdu = rows * r, sga = (int64_t)r * cols;
  if (r <= 16)
    DC_LAUNCH(grid, 128, 0, k_lora_col_sums<16>)(x, rows, cols, du, sdu, r, gA, sga, pp, chunks, rc, cblocks, M);
  else
    DC_LAUNCH(grid, 128, 0, k_lora_col_sums<32>)(x, rows, cols, du, sdu, r, gA, sga, pp, chunks, rc, cblocks, M);
  DC_LAUNCHED("lora_col_sums(%lld×%lld, r %d, %d members, %lld chunks)", (long long)rows, (long long)cols, r, members,
              (long long)chunks);
  if (chunks <= 1) return 0;
  return lora_sums_add(gA, sga, part, sga, (int)chunks, members, 1.f);
}

// out_m (rows × r) = s·x̃_m·W_mᵀ for member m (blockIdx.y / groups) of up to 3
// adapters sharing x (rows × cols): W_m (r × cols) at W + m·r·cols — their
// A's — or, T (one member), W (cols × r) read transposed — a B, out then
// s·x·B; x̃_m x, or under LoRA dropout x under member m's mask. A warp
// takes RW rows over one chunk of columns ([c0, c1), chunk blockIdx.x of
// width cw, a multiple of 128: each lane 4 columns at a time, each float4
// of W read once for the warp's rows), and leaves each row's sums over its
// chunk in part (member m's chunks at m·chunks·rows·r) — each lane's in
// column order, then the warp's by a butterfly — or, one chunk, s times
// them in out; lora_sums_add adds the chunks in order.
template <int R, int RW, bool T>
__global__ void __launch_bounds__(256) k_lora_row_sums(const float *x, int64_t rows, int64_t cols, const float *W,
                                                       int r, float *out, float *part, float s, int64_t cw, int chunks,
                                                       int groups, lora_masks M) {
  const int lane = threadIdx.x & 31, m = blockIdx.y / groups;  // blockIdx.y: member, then its group of rows
  const int64_t row0 = ((int64_t)(blockIdx.y % groups) * (blockDim.x >> 5) + (threadIdx.x >> 5)) * RW;
  if (row0 >= rows) return;  // the whole warp: no collective below is left waiting
  const int64_t c0 = blockIdx.x * cw, c1 = c0 + cw < cols ? c0 + cw : cols;
  const float *Wm = W + (int64_t)m * r * cols;
  const lora_mask mk = M.m[m];
  const uint64_t key = lora_mask_key(mk);
  auto load = [&](int64_t row, int64_t j) {
    const float4 v = *reinterpret_cast<const float4 *>(x + row * cols + j);
    return mk.on ? lora_masked(v, key + (uint64_t)(row * cols + j), mk) : v;
  };
  auto dot = [&](float(&acc)[RW][R], const float4(&v)[RW], int64_t j) {
    if constexpr (!T) {
      lora_rows_dot<R, RW>(acc, v, Wm, cols, j, r);
    } else {
#pragma unroll
      for (int c = 0; c < 4; c++) {  // W's rows j..j+3, r each: its columns k
        const float4 *w4 = reinterpret_cast<const float4 *>(Wm + (j + c) * r);
#pragma unroll
        for (int k4 = 0; k4 < R / 4; k4++) {
          if (4 * k4 >= r) break;
          const float4 w = __ldg(w4 + k4);
          const float wk[4] = {w.x, w.y, w.z, w.w};
#pragma unroll
          for (int i = 0; i < RW; i++) {
            const float xv = c == 0 ? v[i].x : c == 1 ? v[i].y : c == 2 ? v[i].z : v[i].w;
#pragma unroll
            for (int q = 0; q < 4; q++) acc[i][4 * k4 + q] = fmaf(xv, wk[q], acc[i][4 * k4 + q]);
          }
        }
      }
    }
  };
  float acc[RW][R];
  lora_rows_pass<R, RW>(acc, row0, rows, c0, c1, lane, load, dot);
  lora_rows_reduce<R, RW>(acc, r, [&](int i, int k, float sum) {
    if (lane != 0 || row0 + i >= rows) return;
    if (chunks == 1)
      out[((int64_t)m * rows + row0 + i) * r + k] = s * sum;
    else
      part[(((int64_t)m * chunks + blockIdx.x) * rows + row0 + i) * r + k] = sum;
  });
}

extern "C" int dc_lora_row_sums(float *out, const float *x, const float *W, int64_t rows, int64_t cols, int r,
                                int members, int transposed, float s, float *part, int64_t part_len, int drop,
                                const uint64_t *bases, const uint64_t *base_at, uint64_t thresh, float keep) {
  const bool ok = rows >= 0 && cols >= 0 && cols % 4 == 0 && r >= 1 && r <= 32 && members >= 1 && members <= 3 &&
                  (!transposed || (members == 1 && r % 4 == 0)) &&
                  (((uintptr_t)x | (uintptr_t)W) & 15) == 0;
  if (!ok)
    return dc_fail("columns a multiple of 4, aligned rows, 1 ≤ r ≤ 32 (a multiple of 4 read transposed, one member), 1 to 3 members",
                   "lora_row_sums(%lld×%lld, r %d, %d members)", (long long)rows, (long long)cols, r, members);
  if (rows == 0) return 0;
  if (cols == 0) return dc_fail("no columns to sum", "lora_row_sums(%lld×0)", (long long)rows);
  lora_masks M{};
  for (int m = 0; m < members; m++)
    if (drop) M.m[m] = lora_mask{1, base_at ? 0 : bases[m], thresh, base_at ? base_at + m : nullptr, keep};
  int64_t chunks, cw, groups;
  lora_row_chunks(rows, cols, r, (int64_t)members * rows * r, part_len, chunks, cw, groups);
  if (groups * members > 65535) return dc_fail("too many rows", "lora_row_sums(%lld×%lld)", (long long)rows, (long long)cols);
  const dim3 grid((unsigned)chunks, (unsigned)(groups * members));
  const int ch = (int)chunks, gr = (int)groups;
  if (transposed && r <= 16)
    DC_LAUNCH(grid, 256, 0, k_lora_row_sums<16, 4, true>)(x, rows, cols, W, r, out, part, s, cw, ch, gr, M);
  else if (transposed)
    DC_LAUNCH(grid, 256, 0, k_lora_row_sums<32, 2, true>)(x, rows, cols, W, r, out, part, s, cw, ch, gr, M);
  else if (r <= 16)
    DC_LAUNCH(grid, 256, 0, k_lora_row_sums<16, 4, false>)(x, rows, cols, W, r, out, part, s, cw, ch, gr, M);
  else
    DC_LAUNCH(grid, 256, 0, k_lora_row_sums<32, 2, false>)(x, rows, cols, W, r, out, part, s, cw, ch, gr, M);
  DC_LAUNCHED("lora_row_sums(%lld×%lld, r %d, %d members, %lld chunks)", (long long)rows, (long long)cols, r, members,
              (long long)chunks);
  if (chunks == 1) return 0;
  return lora_sums_add(out, rows * r, part, rows * r, ch, members, s, true);
}
