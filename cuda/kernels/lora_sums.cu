// lora_sums.cu: the adapter's column sums taken in a pass over an
// activation's rows (lora_sums.cuh) — the chunks' sums added in order, and
// dy's rows rounded to bf16 (the projection's backward GEMM operand) with
// its adapter's dB += s·dyᵀ·u, where a TF32 GEMM read dy again.
#include "common.cuh"
#include "bf16_rows.cuh"
#include "lora_sums.cuh"

// g(n) += s·Σ over the chunks of part (chunks × n, g's layout), in chunk
// order; blockIdx.y a member, its g and part sg and chunks·n apart.
__global__ void k_lora_sums_add(float *g, int64_t sg, const float *part, int64_t n, int chunks, float s) {
  g += blockIdx.y * sg, part += blockIdx.y * chunks * n;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    float v = part[i];
    for (int c = 1; c < chunks; c++) v += part[c * n + i];
    g[i] += s * v;
  }
}

static int lora_sums_add(float *g, int64_t sg, const float *part, int64_t n, int chunks, int members, float s) {
  if (n <= 0 || chunks <= 0 || members <= 0) return 0;
  DC_LAUNCH(dim3((unsigned)dc_blocks(n, 256), (unsigned)members), 256, 0, k_lora_sums_add)(g, sg, part, n, chunks, s);
  DC_LAUNCHED("lora_sums_add(%lld, %d chunks, %d members)", (long long)n, chunks, members);
  return 0;
}

extern "C" int dc_lora_sums_add(float *g, const float *part, int64_t n, int chunks, float s) {
  return lora_sums_add(g, 0, part, n, chunks, 1, s);
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
  float acc[4][R];
#pragma unroll
  for (int c = 0; c < 4; c++)
#pragma unroll
    for (int k = 0; k < R; k++) acc[c][k] = 0.f;
  for (int64_t row = r0; row < r1; row++) {
    const float4 v = *reinterpret_cast<const float4 *>(src + row * lds + j);
    __nv_bfloat162 lo = __floats2bfloat162_rn(v.x, v.y), hi = __floats2bfloat162_rn(v.z, v.w);
    *reinterpret_cast<uint2 *>(dst + row * ldd + j) =
        make_uint2(*reinterpret_cast<uint32_t *>(&lo), *reinterpret_cast<uint32_t *>(&hi));
    lora_sums_row<R>(acc, v, u + row * r, r);
  }
  if (part)
    lora_sums_store<R, true>(acc, part + chunk * (int64_t)r * cols, true, 1.f, j, cols, r);
  else
    lora_sums_store<R, true>(acc, gB, false, s, j, cols, r);
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
  int64_t chunks = (rows + 63) / 64;
  const int64_t room = part_len / (r * cols);
  if (chunks > room) chunks = room;
  if (chunks < 1) chunks = 1;
  const int64_t rc = (rows + chunks - 1) / chunks;
  chunks = (rows + rc - 1) / rc;
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
  return dc_lora_sums_add(gB, part, r * cols, (int)chunks, s);
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
  const float *dum = du + m * sdu;
  float acc[4][R];
#pragma unroll
  for (int c = 0; c < 4; c++)
#pragma unroll
    for (int k = 0; k < R; k++) acc[c][k] = 0.f;
  for (int64_t row = r0; row < r1; row++) {
    float4 v = *reinterpret_cast<const float4 *>(x + row * cols + j);
    if (mk.on) v = lora_masked(v, key + (uint64_t)(row * cols + j), mk);
    lora_sums_row<R>(acc, v, dum + row * r, r);
  }
  if (part)
    lora_sums_store<R, false>(acc, part + (m * chunks + chunk) * (int64_t)r * cols, true, 1.f, j, cols, r);
  else
    lora_sums_store<R, false>(acc, gA + m * sga, false, 1.f, j, cols, r);
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
  int64_t chunks = (rows + 63) / 64;
  const int64_t room = part_len / ((int64_t)members * r * cols);
  if (chunks > room) chunks = room;
  if (chunks < 1) chunks = 1;
  const int64_t rc = (rows + chunks - 1) / chunks;
  chunks = (rows + rc - 1) / rc;
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
