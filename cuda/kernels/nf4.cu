// nf4.cu: core/quant's NF4 (bitsandbytes' quantize_4bit layout, block 64,
// high nibble first, optional double-quantised absmax) dequantised on the
// device: into bf16 tiles right before a cuBLAS GEMM, or in registers for the
// decode matrix-vector product.
//
// The arithmetic is core/quant's, operation for operation and each rounded
// (no FMA contraction: __fmul_rn/__fadd_rn), so an f32 dequantisation is
// bit-identical to the CPU's and the bf16 one is its round-to-nearest-even.
#include "common.cuh"

// The 16 code values of QLoRA's NF4 (quant.NF4Code).
__constant__ float dc_nf4_code[16] = {
    -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
    -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
    0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
    0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f};

// The kernels take the struct by value (its pointers are device pointers).
struct nf4_args {
  const uint8_t *codes;
  const float *absmax;
  const uint8_t *qabsmax;
  const float *absmax2;
  const float *map2;
  float offset;
  int rows, cols;
};

__device__ __forceinline__ float nf4_scale(const nf4_args &w, int64_t b) {
  if (w.absmax != nullptr) return w.absmax[b];
  float s = __fmul_rn(w.map2[w.qabsmax[b]], w.absmax2[b / 256]);  // rounded before the add, as the CPU
  return __fadd_rn(s, w.offset);
}

// Element e of the flattened matrix.
__device__ __forceinline__ float nf4_at(const nf4_args &w, int64_t e) {
  uint8_t c = w.codes[e >> 1];
  c = (e & 1) ? (c & 15) : (c >> 4);
  return __fmul_rn(dc_nf4_code[c], nf4_scale(w, e >> 6));
}

template <typename T>
__device__ __forceinline__ T nf4_out(float v);
template <>
__device__ __forceinline__ float nf4_out<float>(float v) { return v; }
template <>
__device__ __forceinline__ __nv_bfloat16 nf4_out<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

// dst((r1−r0), cols) = rows [r0, r1): elements [r0·cols, r1·cols).
template <typename T>
__global__ void k_nf4_dequant(T *dst, nf4_args w, int64_t e0, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    dst[i] = nf4_out<T>(nf4_at(w, e0 + i));
}

// y(rows) = W·x: one warp per row, each lane a strided run of the columns,
// f32 accumulation. Correct for any cols (odd ones shift the nibble phase per
// row; nf4_at handles it per element). Not yet tuned: byte-wide loads.
__global__ void k_nf4_matvec(float *y, nf4_args w, const float *x) {
  int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x & 31;
  if (row >= w.rows) return;
  int64_t base = (int64_t)row * w.cols;
  float acc = 0.f;
  for (int k = lane; k < w.cols; k += 32) acc += nf4_at(w, base + k) * x[k];
  acc = dc_warp_sum(acc);
  if (lane == 0) y[row] = acc;
}

__global__ void k_bf16_matvec(float *y, const __nv_bfloat16 *w, const float *x, int rows, int cols) {
  int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x & 31;
  if (row >= rows) return;
  const __nv_bfloat16 *wr = w + (int64_t)row * cols;
  float acc = 0.f;
  for (int k = lane; k < cols; k += 32) acc += __bfloat162float(wr[k]) * x[k];
  acc = dc_warp_sum(acc);
  if (lane == 0) y[row] = acc;
}

static nf4_args nf4_of(const dc_nf4 *w) {
  return nf4_args{w->codes, w->absmax, w->qabsmax, w->absmax2, w->map2, w->offset, w->rows, w->cols};
}

static int nf4_check(const dc_nf4 *w, int r0, int r1, const char *op) {
  if (r0 < 0 || r1 > w->rows || r0 > r1)
    return dc_fail("row range out of bounds", "%s(rows [%d, %d) of %d×%d)", op, r0, r1, w->rows, w->cols);
  if (w->absmax == nullptr && (w->qabsmax == nullptr || w->absmax2 == nullptr || w->map2 == nullptr))
    return dc_fail("no absmax and no double-quant statistics", "%s(%d×%d)", op, w->rows, w->cols);
  return 0;
}

extern "C" int dc_nf4_dequant_bf16(uint16_t *dst, const dc_nf4 *w, int r0, int r1) {
  if (nf4_check(w, r0, r1, "nf4_dequant_bf16")) return -1;
  int64_t n = (int64_t)(r1 - r0) * w->cols;
  if (n == 0) return 0;
  k_nf4_dequant<__nv_bfloat16><<<dc_blocks(n, 256), 256, 0, dc_stream>>>((__nv_bfloat16 *)dst, nf4_of(w), (int64_t)r0 * w->cols, n);
  DC_LAUNCHED("nf4_dequant_bf16(rows [%d, %d) of %d×%d)", r0, r1, w->rows, w->cols);
  return 0;
}

extern "C" int dc_nf4_dequant_f32(float *dst, const dc_nf4 *w, int r0, int r1) {
  if (nf4_check(w, r0, r1, "nf4_dequant_f32")) return -1;
  int64_t n = (int64_t)(r1 - r0) * w->cols;
  if (n == 0) return 0;
  k_nf4_dequant<float><<<dc_blocks(n, 256), 256, 0, dc_stream>>>(dst, nf4_of(w), (int64_t)r0 * w->cols, n);
  DC_LAUNCHED("nf4_dequant_f32(rows [%d, %d) of %d×%d)", r0, r1, w->rows, w->cols);
  return 0;
}

extern "C" int dc_nf4_matvec(float *y, const dc_nf4 *w, const float *x) {
  if (nf4_check(w, 0, w->rows, "nf4_matvec")) return -1;
  if (w->rows == 0) return 0;
  k_nf4_matvec<<<(w->rows + 7) / 8, 256, 0, dc_stream>>>(y, nf4_of(w), x);
  DC_LAUNCHED("nf4_matvec(%d×%d)", w->rows, w->cols);
  return 0;
}

extern "C" int dc_bf16_matvec(float *y, const uint16_t *w, const float *x, int rows, int cols) {
  if (rows == 0) return 0;
  k_bf16_matvec<<<(rows + 7) / 8, 256, 0, dc_stream>>>(y, (const __nv_bfloat16 *)w, x, rows, cols);
  DC_LAUNCHED("bf16_matvec(%d×%d)", rows, cols);
  return 0;
}
