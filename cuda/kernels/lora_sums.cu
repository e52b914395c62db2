// lora_sums.cu: the adapter's column sums taken in a pass over an
// activation's rows (lora_sums.cuh) — the chunks' sums added in order, and
// dy's rows rounded to bf16 (the projection's backward GEMM operand) with
// its adapter's dB += s·dyᵀ·u, where a TF32 GEMM read dy again.
#include "common.cuh"
#include "bf16_rows.cuh"
#include "lora_sums.cuh"

// g(n) += s·Σ over the chunks of part (chunks × n, g's layout), in chunk order.
__global__ void k_lora_sums_add(float *g, const float *part, int64_t n, int chunks, float s) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    float v = part[i];
    for (int c = 1; c < chunks; c++) v += part[c * n + i];
    g[i] += s * v;
  }
}

extern "C" int dc_lora_sums_add(float *g, const float *part, int64_t n, int chunks, float s) {
  if (n <= 0 || chunks <= 0) return 0;
  DC_LAUNCH(dc_blocks(n, 256), 256, 0, k_lora_sums_add)(g, part, n, chunks, s);
  DC_LAUNCHED("lora_sums_add(%lld, %d chunks)", (long long)n, chunks);
  return 0;
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
