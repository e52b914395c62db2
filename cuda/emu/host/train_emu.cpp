// train_emu.cpp: the training kernels on the host (shim.h) against f64
// references written from their documented semantics and core/train's CPU
// code (rmsNormFwd/Bwd, ropeAt, swigluFwd/Bwd, KD.row, AdamW.Update,
// GradNorm/ClipGradNorm, dropout/dropoutAdd): rmsnorm, rope, swiglu, embed,
// xent, kd, adamw, gradnorm, dropout, elementwise, convert and rows
// (*_kernels.cuh), each launched as its launcher in the .cu launches it —
// same grid, block and shared memory; the launchers' choices (block sizes,
// the by-4 paths and their tails) are copied below and must follow the .cu.
// Run by emu_test.go (make test). Usage: train_emu [group…] (default all:
// norm rope swiglu embed xent kd adamw gradnorm dropout elementwise convert
// rows); exit 1 on a failure.
#include "shim.h"
#include "../../kernels/rmsnorm_kernels.cuh"
#include "../../kernels/rope_kernels.cuh"
#include "../../kernels/swiglu_kernels.cuh"
#include "../../kernels/embed_kernels.cuh"
#include "../../kernels/xent_kernels.cuh"
#include "../../kernels/kd_kernels.cuh"
#include "../../kernels/adamw_kernels.cuh"
#include "../../kernels/gradnorm_kernels.cuh"
#include "../../kernels/dropout_kernels.cuh"
#include "../../kernels/elementwise_kernels.cuh"
#include "../../kernels/convert_kernels.cuh"
#include "../../kernels/rows_kernels.cuh"

#include "ref.h"

// dc_blocks (common.cuh), for the launchers' grids.
static int emu_blocks(int64_t n, int threads) {
  int64_t b = (n + threads - 1) / threads;
  if (b > 65535 * 8) b = 65535 * 8;
  return b < 1 ? 1 : (int)b;
}
// An element-wise launcher's grid-stride launch: dc_blocks(n, 256) blocks of
// 256, or grid blocks where a case walks the stride loop on purpose.
static void launch_ew(int64_t n, int grid, const std::function<void()> &f) {
  emu_launch(grid > 0 ? grid : emu_blocks(n, 256), 1, 256, 0, f);
}

// A bf16 value's f64 from its bits, and the f32 → bf16 rounding (nearest,
// ties to even) worked out in f64 between the two neighbours — apart from
// the shim's bit trick.
static double bf16_value(uint16_t b) { return emu_bf2f(b); }
static uint16_t ref_bf16(float x) {
  uint32_t u;
  memcpy(&u, &x, 4);
  if (std::isnan(x)) return 0x7fc0;  // any quiet NaN: compared as NaN
  uint32_t lo = u & 0xffff0000u, hi = lo + 0x10000u;
  float flo, fhi;
  memcpy(&flo, &lo, 4);
  memcpy(&fhi, &hi, 4);
  if ((lo & 0x7f800000u) == 0x7f800000u) return (uint16_t)(lo >> 16);  // ±inf
  // Past the largest bf16 the upper neighbour is inf, at 2¹²⁸ for rounding.
  double dhi_v = std::isinf(fhi) ? std::copysign(std::ldexp(1.0, 128), x) : (double)fhi;
  double dlo = std::fabs((double)x - flo), dhi = std::fabs(dhi_v - x);
  if (dlo < dhi || (dlo == dhi && ((lo >> 16) & 1) == 0)) return (uint16_t)(lo >> 16);
  return (uint16_t)(hi >> 16);
}
static void check_bf16(const std::string &what, const uint16_t *got, const std::vector<uint16_t> &want) {
  size_t bad = 0, first = 0;
  for (size_t i = 0; i < want.size(); i++) {
    bool wn = (want[i] & 0x7fff) > 0x7f80, gn = (got[i] & 0x7fff) > 0x7f80;
    bool ok = wn ? gn && (got[i] & 0x40) : got[i] == want[i];  // a NaN: quiet
    if (!ok && bad++ == 0) first = i;
  }
  report(what + " (exact)", bad ? INFINITY : 0, bad, first, bad ? got[first] : 0, bad ? want[first] : 0);
}
// An f16 value from its bits, by ldexp.
static double f16_value(uint16_t h) {
  int e = (h >> 10) & 0x1f, m = h & 0x3ff;
  double s = h & 0x8000 ? -1 : 1;
  if (e == 0x1f) return m ? NAN : s * INFINITY;
  if (e == 0) return s * std::ldexp(m, -24);
  return s * std::ldexp(1024 + m, e - 25);
}
static std::vector<uint16_t> rand_bits16(size_t n) {
  std::uniform_int_distribution<int> U(0, 0xffff);
  std::vector<uint16_t> v(n);
  for (auto &x : v) x = (uint16_t)U(rng);
  return v;
}

// ---- rmsnorm.cu ----

static int rms_threads(int d) {  // rmsnorm.cu's
  int t = 32;
  while (t < d && t < 1024) t <<= 1;
  return t > 256 ? 256 : t;
}

// Tolerances: the kernels' sums are f32 — a thread's strided terms, then
// the warp and block trees: ≤ (d/threads + 10) roundings of 6e-8 relative to
// Σ|term| — so 2e-6 of the row's rms; each output is then a few f32
// products (another few 6e-8). The backward's dx subtracts c·x from s·dy·w,
// so its error is relative to the terms' size, not dx's: 1e-5 of the rms.
static void rmsnorm_case(int rows, int d, bool inplace, bool with_rstd) {
  std::string tag = "rmsnorm " + std::to_string(rows) + "x" + std::to_string(d) + (inplace ? " in place" : "") +
                    (with_rstd ? "" : " no rstd");
  float eps = 1e-6f;
  std::vector<float> x = randn((size_t)rows * d, 1.5f, 0.3f), w = randn(d, 0.2f, 1.f);
  if (rows > 1)  // a zero row: rstd = 1/√eps, out 0
    for (int i = 0; i < d; i++) x[(size_t)d + i] = 0;
  std::vector<double> want_out(x.size()), want_rstd(rows);
  for (int r = 0; r < rows; r++) {
    double ss = 0;
    for (int i = 0; i < d; i++) ss += (double)x[(size_t)r * d + i] * x[(size_t)r * d + i];
    double s = 1 / std::sqrt(ss / d + eps);
    want_rstd[r] = s;
    for (int i = 0; i < d; i++) want_out[(size_t)r * d + i] = x[(size_t)r * d + i] * s * w[i];
  }
  std::vector<float> out(x.size(), NAN), rstd(rows, NAN), xin = x;
  float *o = inplace ? xin.data() : out.data(), *rs = with_rstd ? rstd.data() : nullptr;
  const float *xp = xin.data();
  emu_launch(rows, 1, rms_threads(d), 0, [&] { k_rmsnorm_fwd(o, rs, xp, w.data(), d, eps, nullptr, 0); });
  check(tag + " fwd out", o, want_out, 2e-6);
  if (!with_rstd) return;
  check(tag + " fwd rstd", rstd, want_rstd, 2e-6);
  if (inplace) return;

  // Backward from the kernel's own rstd (the reference takes it as given).
  std::vector<float> dy = randn(x.size()), dx = randn(x.size(), 0.5f), dw = randn(d, 0.5f);
  std::vector<double> want_dx = widen(dx), want_dw = widen(dw);
  for (int r = 0; r < rows; r++) {
    double s = rstd[r], gx = 0;
    for (int i = 0; i < d; i++) gx += (double)dy[(size_t)r * d + i] * w[i] * x[(size_t)r * d + i];
    double c = gx / d * s * s * s;
    for (int i = 0; i < d; i++) {
      size_t e = (size_t)r * d + i;
      want_dx[e] += s * dy[e] * w[i] - c * x[e];
      want_dw[i] += (double)dy[e] * x[e] * s;
    }
  }
  emu_launch(rows, 1, rms_threads(d), 0, [&] { k_rmsnorm_bwd_dx(dx.data(), dy.data(), x.data(), w.data(), rstd.data(), d); });
  check(tag + " bwd dx", dx, want_dx, 1e-5);
  // dw: one f32 sum a column over the rows: rows roundings.
  emu_launch((d + 255) / 256, 1, 256, 0, [&] { k_rmsnorm_bwd_dw(dw.data(), dy.data(), x.data(), rstd.data(), rows, d); });
  check(tag + " bwd dw", dw, want_dw, 2e-6);
}

static void rmsnorm_cases() {
  printf("rmsnorm\n");
  rmsnorm_case(3, 64, false, true);     // 64 threads
  rmsnorm_case(2, 17, false, true);     // 32 threads, most idle
  rmsnorm_case(4, 300, false, true);    // 256 threads, a ragged second stride; dw: 2 blocks, 212 idle
  rmsnorm_case(2, 1000, false, true);   // 256 threads, 4 strides; dw: 4 blocks
  rmsnorm_case(2, 300, true, true);     // out aliasing x
  rmsnorm_case(2, 100, false, false);   // rstd null
}

// ---- rope.cu ----

// Tolerance: each output is a·c − b·s from f32 products: ≤ 2 roundings of
// the larger product, ~1.2e-7 relative: 1e-6 of the rms.
static void rope_case(int n, int nh, int hd, bool inverse, int grid) {
  std::string tag = "rope n" + std::to_string(n) + " h" + std::to_string(nh) + " hd" + std::to_string(hd) +
                    (inverse ? " inverse" : "") + (grid ? " grid " + std::to_string(grid) : "");
  int half = hd / 2, max_pos = 50;
  std::vector<float> cs((size_t)max_pos * half), sn(cs.size());
  for (int p = 0; p < max_pos; p++)
    for (int j = 0; j < half; j++) {
      double th = p * std::pow(10000.0, -2.0 * j / hd);
      cs[(size_t)p * half + j] = (float)std::cos(th), sn[(size_t)p * half + j] = (float)std::sin(th);
    }
  std::uniform_int_distribution<int> P(0, max_pos - 1);
  std::vector<int32_t> pos(n);
  for (auto &p : pos) p = P(rng);
  pos[0] = 0;  // a packed sequence's restart: the identity
  if (n > 2) pos[n - 1] = max_pos, pos[n - 2] = -1;  // past the tables: NaN rows, nothing read
  std::vector<float> x = randn((size_t)n * nh * hd);
  std::vector<double> want = widen(x);
  double sign = inverse ? -1 : 1;
  for (int r = 0; r < n; r++)
    for (int h = 0; h < nh; h++)
      for (int j = 0; j < half; j++) {
        size_t o = ((size_t)r * nh + h) * hd;
        if (pos[r] < 0 || pos[r] >= max_pos) {
          want[o + j] = want[o + j + half] = NAN;
          continue;
        }
        double c = cs[(size_t)pos[r] * half + j], s = sign * sn[(size_t)pos[r] * half + j];
        double a = x[o + j], b = x[o + j + half];
        want[o + j] = a * c - b * s, want[o + j + half] = b * c + a * s;
      }
  int64_t total = (int64_t)n * nh * half;
  launch_ew(total, grid, [&] { k_rope(x.data(), pos.data(), cs.data(), sn.data(), n, nh, hd, max_pos, inverse ? -1.f : 1.f); });
  check(tag, x, want, 1e-6);
}

static void rope_cases() {
  printf("rope\n");
  rope_case(5, 3, 64, false, 0);   // 480 pairs: 2 blocks, the second ragged
  rope_case(5, 3, 64, true, 0);
  rope_case(7, 2, 10, false, 0);   // half 5: a row's pairs across threads unaligned
  rope_case(9, 4, 128, true, 2);   // 2304 pairs over 2 blocks: the stride loop
}

// ---- swiglu.cu ----

// dc_swiglu_fwd's choice: by 4 where a, g, u are 16-byte and ab 8-byte
// aligned and n ≥ 4, the rest element by element.
static void launch_swiglu_fwd(float *a, uint16_t *ab, const float *g, const float *u, int64_t n) {
  if (n <= 0) return;
  bool a16 = (((uintptr_t)a | (uintptr_t)g | (uintptr_t)u) & 15) == 0 && ((uintptr_t)ab & 7) == 0;
  if (a16 && n >= 4) {
    int64_t n4 = n / 4;
    launch_ew(n4, 0, [&] { k_swiglu_fwd_x4((float4 *)a, (uint2 *)ab, nullptr, nullptr, (const float4 *)g, (const float4 *)u, n4); });
    a += 4 * n4, g += 4 * n4, u += 4 * n4, n -= 4 * n4;
    if (ab) ab += 4 * n4;
    if (n == 0) return;
  }
  launch_ew(n, 0, [&] { k_swiglu_fwd(a, (__nv_bfloat16 *)ab, nullptr, nullptr, g, u, n); });
}

// Tolerances: σ(g) = 1/(1 + expf(−g)) in f32 (expf within 2 ulp on the
// device), then two or three products: ≤ ~8 roundings, 1e-6 relative.
// ab: the bf16 rounding of the kernel's own f32 a, bit for bit.
static void swiglu_case(int64_t n, int offset, bool with_ab, bool inplace) {
  std::string tag = "swiglu n" + std::to_string(n) + (offset ? " unaligned" : "") + (with_ab ? " +bf16" : "") +
                    (inplace ? " in place" : "");
  std::vector<float> gb = randn(n + offset, 3.f), ub = randn(n + offset), ab(n + offset, NAN);
  // Extremes: σ's exp overflows (σ = 0) or σ = 1.
  gb[offset] = -120.f;
  if (n > 1) gb[offset + 1] = 95.f;
  std::vector<uint16_t> abb(n + 4, 0xffff);
  float *g = gb.data() + offset, *u = ub.data() + offset, *a = inplace ? g : ab.data() + offset;
  std::vector<double> want(n), want_du(n), want_dg(n);
  std::vector<float> da = randn(n);
  for (int64_t i = 0; i < n; i++) {
    double gi = g[i], s = 1 / (1 + std::exp(-gi));
    want[i] = gi * s * u[i];
    want_du[i] = da[i] * gi * s;
    want_dg[i] = da[i] * (double)u[i] * s * (1 + gi * (1 - s));
  }
  std::vector<float> g0(g, g + n), u0(u, u + n);
  launch_swiglu_fwd(a, with_ab ? abb.data() + offset : nullptr, g, u, n);
  check(tag + " fwd", a, want, 1e-6);
  if (with_ab) {
    std::vector<uint16_t> wb(n);
    for (int64_t i = 0; i < n; i++) wb[i] = ref_bf16(a[i]);
    check_bf16(tag + " fwd bf16", abb.data() + offset, wb);
  }
  // Backward: dg and du over g and u where in place (as the launcher allows).
  std::vector<float> gg = g0, uu = u0, dgb(n, NAN), dub(n, NAN);
  float *dg = inplace ? gg.data() : dgb.data(), *du = inplace ? uu.data() : dub.data();
  launch_ew(n, 0, [&] { k_swiglu_bwd(dg, du, da.data(), gg.data(), uu.data(), n); });
  check(tag + " bwd du", du, want_du, 1e-6);
  check(tag + " bwd dg", dg, want_dg, 1e-6);
}

static void swiglu_cases() {
  printf("swiglu\n");
  swiglu_case(1000, 0, true, false);   // by 4, no tail
  swiglu_case(1003, 0, true, false);   // by 4 and a tail of 3
  swiglu_case(1003, 0, false, true);   // a over g
  swiglu_case(3, 0, true, false);      // n < 4: element by element
  swiglu_case(517, 1, true, false);    // unaligned: element by element, 3 blocks
}

// ---- embed.cu ----

// The forward is a copy (bit for bit, NaN rows for ids outside the table);
// the backward's atomics add each id's rows in some order: ≤ (repeats)
// roundings of 6e-8 relative to Σ|term|: 1e-6 of the rms. The table lies
// between guard rows that must stay as they were (an id of −1 or vocab).
static void embed_case(int n, int d, int vocab) {
  std::string tag = "embed n" + std::to_string(n) + " d" + std::to_string(d) + " vocab" + std::to_string(vocab);
  std::uniform_int_distribution<int> I(0, vocab - 1);
  std::vector<int32_t> ids(n);
  for (auto &id : ids) id = I(rng);
  ids[0] = ids[n - 1];  // a repeat
  if (n > 3) ids[1] = -1, ids[2] = vocab;
  size_t tn = (size_t)vocab * d;
  std::vector<float> t32 = randn(tn);
  std::vector<uint16_t> t16 = rand_bits16(tn), tb16 = rand_bits16(tn);  // every class: subnormal, inf, NaN
  for (int dtype = 0; dtype < 3; dtype++) {
    std::vector<float> out((size_t)n * d, 0.f), want(out.size());
    for (int i = 0; i < n; i++)
      for (int j = 0; j < d; j++) {
        size_t e = (size_t)ids[i] * d + j;
        bool in = ids[i] >= 0 && ids[i] < vocab;
        want[(size_t)i * d + j] = !in ? NAN : dtype == 0 ? t32[e] : dtype == 1 ? (float)f16_value(t16[e]) : (float)bf16_value(tb16[e]);
      }
    const void *table = dtype == 0 ? (const void *)t32.data() : dtype == 1 ? (const void *)t16.data() : (const void *)tb16.data();
    launch_ew((int64_t)n * d, 0, [&] { k_embed_fwd(out.data(), table, dtype, ids.data(), n, d, vocab); });
    check_exact(tag + " fwd dtype " + std::to_string(dtype), out, want);
  }
  std::vector<float> buf((size_t)(vocab + 2) * d), dout = randn((size_t)n * d);
  for (auto &v : buf) v = std::normal_distribution<float>(0, 1)(rng);
  std::vector<double> want = widen(buf);
  for (int i = 0; i < n; i++)
    if (ids[i] >= 0 && ids[i] < vocab)
      for (int j = 0; j < d; j++) want[(size_t)(ids[i] + 1) * d + j] += dout[(size_t)i * d + j];
  float *dtable = buf.data() + d;  // guard rows at −1 and vocab
  launch_ew((int64_t)n * d, 0, [&] { k_embed_bwd(dtable, dout.data(), ids.data(), n, d, vocab); });
  check(tag + " bwd (+ guard rows)", buf, want, 1e-6);
}

static void embed_cases() {
  printf("embed\n");
  embed_case(6, 40, 9);      // 240 elements: 1 block, 16 idle
  embed_case(12, 100, 5);    // 1200: 5 blocks, ids repeat often
  embed_case(2, 3, 4);       // tiny
}

// ---- xent.cu ----

// loss = lse(z) − z_t in f64; z becomes scale·(softmax − onehot). The kernel's
// f32 online sums (≤ V/512 + 20 roundings) and expf/logf (2 ulp) give the loss
// within ~2e-7 of |max| + |loss| and each probability within ~1e-6 relative:
// tolerances 1e-6 of the rms (logits near 0) and 1e-5 where every logit is
// about 1000 (the max's f32 ulp, 6e-5, against losses of ~7).
// ninf > 0 makes every ninf-th logit −∞ (a masked logit: adds nothing, its
// gradient 0), never the target.
static void xent_case(int rows, int vocab, float sd, float mean, bool grad, bool per_row, double ltol, int ninf = 0) {
  std::string tag = "xent " + std::to_string(rows) + "x" + std::to_string(vocab) + (mean ? " +" + std::to_string((int)mean) : "") +
                    (grad ? per_row ? " rows" : "" : " no grad") + (ninf ? " −∞" : "");
  std::vector<float> z = randn((size_t)rows * vocab, sd, mean);
  if (ninf)
    for (size_t e = 0; e < z.size(); e += ninf) z[e] = -INFINITY;
  std::vector<float> z0 = z;
  std::uniform_int_distribution<int> T(0, vocab - 1);
  std::vector<int32_t> tg(rows);
  for (int r = 0; r < rows; r++)
    do tg[r] = T(rng);
    while (std::isinf(z[(size_t)r * vocab + tg[r]]));
  if (rows >= 5) tg[rows - 2] = -1, tg[rows - 1] = vocab;  // NaN loss, row untouched
  float scale = 1.f / rows;
  std::vector<float> rsc(rows);
  for (int r = 0; r < rows; r++) rsc[r] = r % 4 == 0 ? 0.75f : r % 4 == 1 ? -1.25f : r % 4 == 2 ? 0.f : 2.f;  // DPO's chosen rows: negative
  std::vector<double> want_loss(rows), want_z = widen(z);
  for (int r = 0; r < rows; r++) {
    const float *zr = z.data() + (size_t)r * vocab;
    if (tg[r] < 0 || tg[r] >= vocab) {
      want_loss[r] = NAN;
      continue;
    }
    double m = -INFINITY, s = 0;
    for (int j = 0; j < vocab; j++) m = std::max(m, (double)zr[j]);
    for (int j = 0; j < vocab; j++) s += std::exp(zr[j] - m);
    double lse = m + std::log(s);
    want_loss[r] = lse - zr[tg[r]];
    if (!grad) continue;
    double sc = per_row ? rsc[r] : scale;
    for (int j = 0; j < vocab; j++)
      want_z[(size_t)r * vocab + j] = sc * (std::exp(zr[j] - lse) - (j == tg[r] ? 1 : 0));
  }
  std::vector<float> loss(rows, 0.f);
  if (per_row)
    emu_launch(rows, 1, 512, 0, [&] { k_xent(loss.data(), z.data(), tg.data(), vocab, 0.f, rsc.data(), 1); });
  else
    emu_launch(rows, 1, 512, 0, [&] { k_xent(loss.data(), z.data(), tg.data(), vocab, scale, nullptr, grad); });
  check(tag + " loss", loss, want_loss, ltol);
  if (grad)
    check(tag + " grad", z, want_z, 1e-6);
  else
    check_exact(tag + " logits kept", z, z0);
}

static void xent_cases() {
  printf("xent\n");
  xent_case(5, 1000, 3.f, 0.f, true, false, 1e-6);    // 2 strides, the second ragged; rows 3, 4 bad targets
  xent_case(2, 100, 2.f, 0.f, true, false, 1e-6);     // fewer than the block: idle threads' (−inf, 0)
  xent_case(1, 5000, 4.f, 0.f, true, false, 1e-6);
  xent_case(2, 700, 3.f, 1000.f, true, false, 1e-5);  // far from 0: the max carries it
  xent_case(5, 600, 3.f, 0.f, false, false, 1e-6);    // loss only
  xent_case(6, 900, 3.f, 0.f, true, true, 1e-6);      // dc_xent_rows: per-row scales 0.75, −1.25, 0, 2
  xent_case(5, 1003, 3.f, 0.f, true, false, 1e-6);    // rows off 16 bytes: scalar heads and tails around the float4s
  xent_case(4, 1003, 3.f, 0.f, true, false, 1e-6);    // … every head length (row 3: three floats) with a gradient
  xent_case(3, 2, 2.f, 0.f, true, false, 1e-6);       // rows shorter than their head: no float4 at all
  xent_case(3, 2050, 3.f, 0.f, true, false, 1e-6, 7); // −∞ logits, a thread's first among them
  xent_case(1, 151936, 3.f, 0.f, true, false, 1e-6);  // Qwen's vocabulary
}

// ---- kd.cu ----

// core/train's KD.row in f64 (logSumExp64, logAddExp), z and t as given.
static double kd_row_ref(const float *z, const float *t, int V, int target, int div, double tau, double alpha,
                         double b, double scale, double *dz) {
  auto lse = [&](const float *x, double ta) {
    double m = -INFINITY, s = 0;
    for (int i = 0; i < V; i++) m = std::max(m, x[i] / ta);
    for (int i = 0; i < V; i++) s += std::exp(x[i] / ta - m);
    return m + std::log(s);
  };
  auto logaddexp = [](double x, double y) {
    double hi = std::max(x, y), lo = std::min(x, y);
    return std::isinf(hi) && hi < 0 ? hi : hi + std::log1p(std::exp(lo - hi));
  };
  double lse1 = lse(z, 1), ce = lse1 - z[target], lseS = lse(z, tau), lseT = lse(t, tau), dv = 0;
  std::vector<double> grad(V);
  if (div == 0) {
    for (int i = 0; i < V; i++) {
      double ls = z[i] / tau - lseS, lt = t[i] / tau - lseT, pt = std::exp(lt), ps = std::exp(ls);
      dv += pt * (lt - ls);
      grad[i] = (ps - pt) / tau;
    }
  } else if (div == 1) {
    for (int i = 0; i < V; i++) {
      double ls = z[i] / tau - lseS, lt = t[i] / tau - lseT, ps = std::exp(ls);
      dv += ps * (ls - lt);
      grad[i] = ps * (ls - lt);
    }
    for (int i = 0; i < V; i++) grad[i] = (grad[i] - std::exp(z[i] / tau - lseS) * dv) / tau;
  } else {
    double lb = std::log(b), l1b = std::log1p(-b), mean = 0;
    for (int i = 0; i < V; i++) {
      double ls = z[i] / tau - lseS, lt = t[i] / tau - lseT, ps = std::exp(ls), pt = std::exp(lt);
      double lm = logaddexp(lb + lt, l1b + ls);
      if (pt > 0) dv += b * pt * (lt - lm);
      if (ps > 0) dv += (1 - b) * ps * (ls - lm);
      double g = ps > 0 ? (1 - b) * (ls - lm) : 0;
      grad[i] = g;
      mean += ps * g;
    }
    for (int i = 0; i < V; i++) grad[i] = std::exp(z[i] / tau - lseS) * (grad[i] - mean) / tau;
  }
  double w = (1 - alpha) * tau * tau;
  for (int i = 0; i < V; i++) dz[i] = scale * (alpha * std::exp(z[i] - lse1) + w * grad[i] - (i == target ? alpha : 0));
  return alpha * ce + w * dv;
}

// The kernel computes in double from f32 inputs as the reference does, then
// rounds: the loss once to f32, each gradient twice (d to f32, then
// scale·d): 1e-6 of the rms (~10 f32 roundings' worth of slack for the
// double sums' order).
static void kd_case(int rows, int vocab, int div, float tau, float alpha, float beta, bool subnormal) {
  std::string tag = "kd " + std::to_string(rows) + "x" + std::to_string(vocab) + " div" + std::to_string(div) + " tau " +
                    std::to_string(tau).substr(0, 4) + " alpha " + std::to_string(alpha).substr(0, 4) +
                    (div == 2 ? " beta " + std::to_string(beta).substr(0, 4) : "") + (subnormal ? " underflow" : "");
  std::vector<float> z = randn((size_t)rows * vocab, 3.f), t = z;
  for (auto &v : t) v += std::normal_distribution<float>(0, 1.5f)(rng);
  if (subnormal)  // student probabilities that underflow (JSD's p_s = 0) or go subnormal
    for (int r = 0; r < rows; r++) {
      z[(size_t)r * vocab + 3] = -3000.f;
      z[(size_t)r * vocab + 5] = -700.f * tau;
      t[(size_t)r * vocab + 7] = -2000.f;
    }
  std::uniform_int_distribution<int> T(0, vocab - 1);
  std::vector<int32_t> tg(rows);
  for (auto &x : tg) x = T(rng);
  if (rows > 2) tg[2] = vocab;  // NaN loss, row untouched
  float scale = 1.f / rows;
  std::vector<double> want_loss(rows), want_z = widen(z);
  for (int r = 0; r < rows; r++) {
    if (tg[r] < 0 || tg[r] >= vocab) {
      want_loss[r] = NAN;
      continue;
    }
    want_loss[r] = kd_row_ref(z.data() + (size_t)r * vocab, t.data() + (size_t)r * vocab, vocab, tg[r], div, tau, alpha,
                              beta, scale, want_z.data() + (size_t)r * vocab);
  }
  std::vector<float> loss(rows, 0.f), z2 = z, loss2(rows, 0.f), rs(rows, scale);
  emu_launch(rows, 1, 512, 0, [&] {
    k_kd_rows(loss.data(), z.data(), t.data(), tg.data(), vocab, div, (double)tau, (double)alpha, (double)beta, scale,
              nullptr);
  });
  check(tag + " loss", loss, want_loss, 1e-6);
  check(tag + " grad", z, want_z, 1e-6);
  // Each row's scale read from memory (a recorded step's), the argument ignored.
  emu_launch(rows, 1, 512, 0, [&] {
    k_kd_rows(loss2.data(), z2.data(), t.data(), tg.data(), vocab, div, (double)tau, (double)alpha, (double)beta, 7.f,
              rs.data());
  });
  check(tag + " grad, row scales", z2, want_z, 1e-6);
}

static void kd_cases() {
  printf("kd\n");
  kd_case(3, 1000, 0, 2.f, 0.5f, 0.5f, false);   // forward KL; row 2 a bad target
  kd_case(2, 1000, 1, 0.5f, 0.3f, 0.5f, false);  // reverse KL
  kd_case(2, 700, 2, 1.f, 0.5f, 0.5f, false);    // JSD
  kd_case(2, 100, 2, 0.25f, 0.f, 0.1f, true);    // JSD, fewer than the block, underflowing p_s
  kd_case(1, 1500, 1, 1.f, 1.f, 0.5f, false);    // α = 1: cross-entropy alone
}

// ---- adamw.cu ----

// core/train's AdamW.Update in f64 from the same f32 constants. The kernel's
// f32 (nvcc may fuse) rounds each moment ~3 times and the step ~6 times:
// 1e-6 of the rms for m and v; p moves by step_size·… ≪ |p|, so its error is
// p's own rounding: 1e-6 too.
static void adamw_case(int64_t n, int step, double lr, double wd) {
  std::string tag = "adamw n" + std::to_string(n) + " step " + std::to_string(step);
  double beta1 = 0.9, beta2 = 0.999, epsd = 1e-8;
  double bc1 = 1 - std::pow(beta1, step), bc2 = 1 - std::pow(beta2, step);
  float b1 = (float)beta1, b2 = (float)beta2, decay = (float)(1 - lr * wd), step_size = (float)(lr / bc1),
        sqrt_bc2 = (float)std::sqrt(bc2), eps = (float)epsd;
  std::vector<float> p = randn(n), g = randn(n, 0.01f), m = randn(n, 0.003f), v(n);
  for (auto &x : v) x = std::fabs(std::normal_distribution<float>(0, 1e-4f)(rng));
  g[0] = 0, m[0] = 0, v[0] = 0;  // a parameter with no gradient yet: m/(√0 + ε) = 0
  std::vector<double> wp(n), wm(n), wv(n);
  for (int64_t i = 0; i < n; i++) {
    double mi = (double)b1 * m[i] + (1 - (double)b1) * g[i], vi = (double)b2 * v[i] + (1 - (double)b2) * (double)g[i] * g[i];
    wm[i] = mi, wv[i] = vi;
    wp[i] = (double)p[i] * decay - (double)step_size * mi / (std::sqrt(vi) / sqrt_bc2 + eps);
  }
  launch_ew(n, 0, [&] { k_adamw(p.data(), g.data(), m.data(), v.data(), n, b1, b2, decay, step_size, sqrt_bc2, eps); });
  check(tag + " m", m, wm, 1e-6);
  check(tag + " v", v, wv, 1e-6);
  check(tag + " p", p, wp, 1e-6);
}

static void adamw_cases() {
  printf("adamw\n");
  adamw_case(1000, 1, 1e-3, 0.1);   // 4 blocks, 24 idle
  adamw_case(257, 50, 3e-4, 0.0);
}

// ---- gradnorm.cu ----

// Σ g² in f64 (each block's tree, then f64 atomics): 1e-12 relative. The
// clip multiplies each element by one f32 factor (max_norm/(norm + 1e-6),
// as ClipGradNorm): bit for bit.
static void sumsq_case(int64_t n, int grid) {
  std::string tag = "sumsq n" + std::to_string(n) + (grid ? " grid " + std::to_string(grid) : "");
  std::vector<float> g = randn(n, 0.7f);
  double want = 0;
  for (float x : g) want += (double)x * x;
  double got = NAN;
  int blocks = emu_blocks(n, 256);  // dc_sumsq: at most 1024 blocks, *sumsq cleared first
  if (blocks > 1024) blocks = 1024;
  got = 0;
  emu_launch(grid ? grid : blocks, 1, 256, 0, [&] { k_sumsq(&got, g.data(), n); });
  double err = std::fabs(got - want) / (1e-12 * want);
  report(tag + " (tol 1e-12)", err, !(err <= 1), 0, got, want);
}

static void clip_case(int64_t n, double sumsq, double max_norm) {
  std::string tag = "clip n" + std::to_string(n) + " norm " + std::to_string(std::sqrt(sumsq)).substr(0, 5) +
                    " max " + std::to_string(max_norm).substr(0, 5);
  std::vector<float> g = randn(n), want = g;
  double norm = std::sqrt(sumsq);
  if (norm > max_norm) {  // ClipGradNorm's rule (a NaN norm clips nothing)
    float c = (float)(max_norm / (norm + 1e-6));
    for (auto &x : want) x *= c;
  }
  launch_ew(n, 0, [&] { k_clip(g.data(), n, &sumsq, max_norm); });
  check_exact(tag, g, want);
}

static void gradnorm_cases() {
  printf("gradnorm\n");
  sumsq_case(1, 0);
  sumsq_case(1000, 0);    // 4 blocks, the last ragged
  sumsq_case(5000, 3);    // the stride loop (as past 1024 blocks)
  clip_case(1000, 400.0, 1.0);   // norm 20 > 1: scaled
  clip_case(300, 0.25, 1.0);     // norm 0.5: kept
  clip_case(300, 1.0, 1.0);      // norm = max: kept
  clip_case(300, NAN, 1.0);      // NaN norm: kept
}

// ---- dropout.cu ----

// core/train's mix (SplitMix64's finaliser), written again here.
static uint64_t ref_mix(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// The masks are the host's bit for bit and each kept element one f32
// product (plus one sum for the backward): exact.
static void dropout_case(int64_t n, double p, uint64_t base) {
  std::string tag = "dropout n" + std::to_string(n) + " p " + std::to_string(p).substr(0, 4);
  uint64_t thresh = (uint64_t)(p * 18446744073709551615.0);
  float keep = (float)(1 / (1 - p));
  std::vector<float> x = randn(n), dst(n, NAN), want(n), g = randn(n), dx = randn(n), want_dx = dx;
  int64_t dropped = 0;
  for (int64_t i = 0; i < n; i++) {
    bool drop = ref_mix(base + (uint64_t)i) < thresh;
    dropped += drop;
    want[i] = drop ? 0.f : x[i] * keep;
    if (!drop) want_dx[i] += g[i] * keep;
  }
  launch_ew(n, 0, [&] { k_dropout(dst.data(), x.data(), n, base, nullptr, thresh, keep); });
  check_exact(tag + " fwd (" + std::to_string(dropped) + " dropped)", dst, want);
  launch_ew(n, 0, [&] { k_dropout_add(dx.data(), g.data(), n, base, nullptr, thresh, keep); });
  check_exact(tag + " bwd", dx, want_dx);
  // The key read from memory (a recorded step's), base ignored.
  std::vector<float> dst2(n, NAN);
  launch_ew(n, 0, [&] { k_dropout(dst2.data(), x.data(), n, base + 1, &base, thresh, keep); });
  check_exact(tag + " fwd, key in memory", dst2, want);
}

static void dropout_cases() {
  printf("dropout\n");
  dropout_case(1000, 0.1, 0x123456789abcdef0ull);
  dropout_case(777, 0.5, ~0ull - 100);  // base + i wraps past 2⁶⁴
}

// ---- elementwise.cu ----

// One IEEE operation an element: exact.
static void elementwise_cases() {
  printf("elementwise\n");
  for (int64_t n : {1, 1000, 1300}) {
    std::vector<float> d = randn(n), s = randn(n), want(n);
    for (int64_t i = 0; i < n; i++) want[i] = d[i] + s[i];
    launch_ew(n, 0, [&] { k_add(d.data(), s.data(), n); });
    check_exact("add n" + std::to_string(n), d, want);
    float sc = -0.37f;
    for (int64_t i = 0; i < n; i++) want[i] = d[i] * sc;
    launch_ew(n, 0, [&] { k_scale(d.data(), sc, n); });
    check_exact("scale n" + std::to_string(n), d, want);
  }
  for (auto [rows, n] : {std::pair<int64_t, int>{5, 7}, {3, 300}, {1, 1}}) {
    std::vector<float> x = randn(rows * n), b = randn(n), want(x.size());
    for (int64_t r = 0; r < rows; r++)
      for (int j = 0; j < n; j++) want[r * n + j] = x[r * n + j] + b[j];
    launch_ew(rows * n, 0, [&] { k_add_bias(x.data(), b.data(), rows * n, n); });
    check_exact("add_bias " + std::to_string(rows) + "x" + std::to_string(n), x, want);
  }
}

// ---- convert.cu ----

// dc_f32_to_bf16's choice: by 4 where src is 16-byte and dst 8-byte aligned
// and n ≥ 4, the tail element by element.
static void launch_f32_to_bf16(uint16_t *dst, const float *src, int64_t n) {
  if (n <= 0) return;
  if (((uintptr_t)src & 15) == 0 && ((uintptr_t)dst & 7) == 0 && n >= 4) {
    int64_t n4 = n / 4;
    launch_ew(n4, 0, [&] { k_f32_to_bf16_x4((uint2 *)dst, (const float4 *)src, n4); });
    src += 4 * n4, dst += 4 * n4, n -= 4 * n4;
    if (n == 0) return;
  }
  launch_ew(n, 0, [&] { k_f32_to_bf16((__nv_bfloat16 *)dst, src, n); });
}

// dc_f32_to_bf16_2d's choice: by 4 when cols and both strides are multiples
// of 4 and src 16-byte, dst 8-byte aligned.
static void launch_f32_to_bf16_2d(uint16_t *dst, int64_t ldd, const float *src, int64_t lds, int64_t rows, int64_t cols,
                                  float scale) {
  if (dc_bf16_rows_by4(dst, ldd, src, lds, cols)) {
    launch_ew(rows * cols / 4, 0,
              [&] { k_f32_to_bf16_2d_x4((uint2 *)dst, ldd / 4, (const float4 *)src, lds / 4, rows, cols / 4, scale); });
    return;
  }
  launch_ew(rows * cols, 0, [&] { k_f32_to_bf16_2d((__nv_bfloat16 *)dst, ldd, src, lds, rows, cols, scale); });
}

// The strided rounding: each row's cols columns, scale·x rounded as
// ref_bf16 rounds it, the other columns of dst untouched (0x1234 kept).
static void convert_2d_cases() {
  struct Case {
    int64_t rows, cols, ldd, lds, off;
    float scale;
  };
  for (Case c : {Case{5, 16, 1552, 16, 1536, 1.f}, Case{7, 1536, 1552, 1536, 0, 1.f}, Case{9, 16, 20, 16, 4, 0.25f},
                 Case{4, 6, 9, 7, 3, 2.f}, Case{3, 12, 16, 12, 1, 1.f}}) {
    std::vector<float> src = randn((size_t)(c.rows * c.lds), 3.f);
    std::vector<uint16_t> db((size_t)(c.rows * c.ldd + c.off), 0x1234), want(db);
    for (int64_t r = 0; r < c.rows; r++)
      for (int64_t j = 0; j < c.cols; j++) want[c.off + r * c.ldd + j] = ref_bf16(src[r * c.lds + j] * c.scale);
    launch_f32_to_bf16_2d(db.data() + c.off, c.ldd, src.data(), c.lds, c.rows, c.cols, c.scale);
    check_bf16("f32_to_bf16_2d " + std::to_string(c.rows) + "x" + std::to_string(c.cols) + " ldd " + std::to_string(c.ldd) +
                   " lds " + std::to_string(c.lds) + " at " + std::to_string(c.off),
               db.data(), want);
  }
}

// Exact: rounding to nearest even (ties, the largest finite values rounding
// to inf, subnormals, a NaN quiet), against ref_bf16; the widenings against
// bf16_value and f16_value over all 65536 patterns.
static void convert_cases() {
  printf("convert\n");
  convert_2d_cases();
  for (auto [n, off] : {std::pair<int64_t, int>{1000, 0}, {1003, 0}, {3, 0}, {601, 1}}) {
    std::vector<float> sb = randn(n + off, 10.f);
    std::uniform_int_distribution<uint32_t> U;
    float *s = sb.data() + off;
    for (int64_t i = 0; i < n; i += 7) {  // raw bit patterns: every class, NaNs among them
      uint32_t u = U(rng);
      memcpy(&s[i], &u, 4);
    }
    const uint32_t special[] = {0x3f808000u, 0x3f818000u, 0x7f7fffffu, 0xff7f8000u, 0x00000001u, 0x80008000u, 0x7f800000u,
                                0x7f800001u, 0xffc00000u, 0x3f80ffffu};  // ties both ways, overflow, subnormals, inf, NaNs
    for (size_t i = 0; i < sizeof special / 4 && (int64_t)i < n; i++) memcpy(&s[i], &special[i], 4);
    std::vector<uint16_t> db(n + off + 4, 0x1234), want(n);
    for (int64_t i = 0; i < n; i++) want[i] = ref_bf16(s[i]);
    launch_f32_to_bf16(db.data() + off, s, n);
    check_bf16("f32_to_bf16 n" + std::to_string(n) + (off ? " unaligned" : ""), db.data() + off, want);
  }
  std::vector<uint16_t> all(65536);
  for (int i = 0; i < 65536; i++) all[i] = (uint16_t)i;
  std::vector<float> out(65536, 0.f), wb(65536), wh(65536);
  for (int i = 0; i < 65536; i++) wb[i] = (float)bf16_value(all[i]), wh[i] = (float)f16_value(all[i]);
  launch_ew(65536, 0, [&] { k_bf16_to_f32(out.data(), (const __nv_bfloat16 *)all.data(), 65536); });
  check_exact("bf16_to_f32 all 65536", out, wb);
  launch_ew(65536, 0, [&] { k_f16_to_f32(out.data(), (const __half *)all.data(), 65536); });
  check_exact("f16_to_f32 all 65536", out, wh);
}

// ---- rows.cu ----

// Copies: exact; a scatter leaves the rows it does not name as they were.
static void rows_cases() {
  printf("rows\n");
  for (auto [k, d] : {std::pair<int, int>{4, 300}, {3, 5}, {2, 513}}) {
    int src_rows = k + 3;
    std::vector<float> src = randn((size_t)src_rows * d), dst((size_t)k * d, NAN), want((size_t)k * d);
    std::vector<int32_t> idx(k);
    std::uniform_int_distribution<int> I(0, src_rows - 1);
    for (auto &i : idx) i = I(rng);
    idx[0] = idx[k - 1];  // a repeated row
    idx[1] = src_rows;    // past src: a NaN row, nothing read
    for (int r = 0; r < k; r++)
      for (int j = 0; j < d; j++) want[(size_t)r * d + j] = idx[r] < src_rows ? src[(size_t)idx[r] * d + j] : NAN;
    emu_launch(k, 1, 256, 0, [&] { k_gather_rows(dst.data(), src.data(), idx.data(), d, src_rows); });
    std::string sh = std::to_string(k) + "x" + std::to_string(d);
    check_exact("gather_rows " + sh, dst, want);
    // Scatter k rows to distinct rows of a taller dst.
    std::vector<float> tall = randn((size_t)src_rows * d), want_tall = tall, rows = randn((size_t)k * d);
    std::vector<int32_t> perm(src_rows);
    for (int i = 0; i < src_rows; i++) perm[i] = i;
    std::shuffle(perm.begin(), perm.end(), rng);
    perm[1] = -1;  // outside dst: nothing written
    for (int r = 0; r < k; r++)
      if (perm[r] >= 0)
        for (int j = 0; j < d; j++) want_tall[(size_t)perm[r] * d + j] = rows[(size_t)r * d + j];
    emu_launch(k, 1, 256, 0, [&] { k_scatter_rows(tall.data(), rows.data(), perm.data(), d, src_rows); });
    check_exact("scatter_rows " + sh, tall, want_tall);
    // Scale k distinct rows of the taller x, one index outside it.
    std::vector<float> sc = randn(k), want_sc = tall;
    for (int r = 0; r < k; r++)
      if (perm[r] >= 0)
        for (int j = 0; j < d; j++) want_sc[(size_t)perm[r] * d + j] = tall[(size_t)perm[r] * d + j] * sc[r];
    emu_launch(k, 1, 256, 0, [&] { k_scale_rows(tall.data(), perm.data(), sc.data(), d, src_rows); });
    check_exact("scale_rows " + sh, tall, want_sc);
  }
}

int main(int argc, char **argv) {
  const std::pair<const char *, void (*)()> groups[] = {
      {"norm", rmsnorm_cases}, {"rope", rope_cases},       {"swiglu", swiglu_cases},     {"embed", embed_cases},
      {"xent", xent_cases},    {"kd", kd_cases},           {"adamw", adamw_cases},       {"gradnorm", gradnorm_cases},
      {"dropout", dropout_cases}, {"elementwise", elementwise_cases}, {"convert", convert_cases}, {"rows", rows_cases}};
  for (auto &[name, run] : groups) {
    bool want = argc == 1;
    for (int i = 1; i < argc; i++) want |= std::string(argv[i]) == name;
    if (want) run();
  }
  for (int i = 1; i < argc; i++) {
    bool known = false;
    for (auto &g : groups) known |= std::string(argv[i]) == g.first;
    if (!known) printf("unknown group %s FAIL\n", argv[i]), fails++;
  }
  printf("%d failures\n", fails);
  return fails != 0;
}
