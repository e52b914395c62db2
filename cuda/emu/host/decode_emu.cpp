// decode_emu.cpp: the decode kernels on the host (shim.h) against f64
// references: matvec_kernels.cuh's fused matrix-vector products (NF4 with
// plain and double-quantised scales, bf16; one to three outputs; no
// prologue, RMSNorm, SwiGLU; biases and residuals; every thread-group width)
// launched as matvec.cu launches them, and decode_kernels.cuh's k_decode_qkv
// (per-head norms, RoPE, the cache and staging rows), and a batched step's
// k_kv_rows and k_attn_rows — each over f32 and over bf16 caches. Run by emu_test.go
// (make test). Usage: decode_emu; exit 1 on a failure.
#include <type_traits>

#include "shim.h"
#include "../../kernels/distill_cuda.h"
#include "../../kernels/matvec_kernels.cuh"
#include "../../kernels/nf4_dequant_kernels.cuh"
#include "../../kernels/decode_kernels.cuh"

#include "ref.h"

// ---- Fused matrix-vector products ----

// A weight in both forms: the device's storage and, independently decoded
// from it, its f64 values.
struct Weight {
  int rows, cols;
  bool nf4, dq;
  std::vector<uint8_t> codes, qabsmax;
  std::vector<float> absmax, absmax2, map2;
  float offset = 0;
  std::vector<uint16_t> bf16;
  std::vector<double> ref;  // (rows, cols)
  dc_nf4 c() const {
    return dc_nf4{codes.data(), dq ? nullptr : absmax.data(), dq ? qabsmax.data() : nullptr, dq ? absmax2.data() : nullptr,
                  dq ? map2.data() : nullptr, offset, rows, cols};
  }
};

static const double kNF4[16] = {-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
                                -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
                                0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
                                0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0};

static Weight make_weight(int rows, int cols, bool nf4, bool dq) {
  Weight w{rows, cols, nf4, dq, {}, {}, {}, {}, {}, 0.f, {}, {}};
  size_t n = (size_t)rows * cols, blocks = (n + 63) / 64;
  w.ref.resize(n);
  if (!nf4) {
    std::vector<float> v = randn(n, 0.05f);
    for (size_t e = 0; e < n; e++) {
      w.bf16.push_back(__float2bfloat16_rn(v[e]).v);
      w.ref[e] = emu_bf2f(w.bf16.back());
    }
    return w;
  }
  std::uniform_int_distribution<int> byte(0, 255);
  w.codes.resize((n + 1) / 2);
  for (uint8_t &c : w.codes) c = (uint8_t)byte(rng);
  std::vector<double> scale(blocks);
  if (dq) {
    w.qabsmax.resize(blocks);
    for (uint8_t &q : w.qabsmax) q = (uint8_t)byte(rng);
    w.absmax2 = randn((blocks + 255) / 256, 0.01f, 0.05f);
    w.map2 = randn(256, 0.5f, 1.f);
    w.offset = 0.02f;
    for (size_t b = 0; b < blocks; b++)  // each step rounded to f32, as the format defines it
      scale[b] = (double)((float)(w.map2[w.qabsmax[b]] * w.absmax2[b / 256]) + w.offset);
  } else {
    w.absmax = randn(blocks, 0.01f, 0.06f);
    for (size_t b = 0; b < blocks; b++) scale[b] = w.absmax[b];
  }
  for (size_t e = 0; e < n; e++) {
    int nib = e % 2 == 0 ? w.codes[e / 2] >> 4 : w.codes[e / 2] & 15;
    w.ref[e] = (double)(float)(kNF4[nib] * scale[e / 64]);
  }
  return w;
}

struct Out {
  Weight w;
  bool bias, res;
};

// As matvec.cu's mv_tpr.
static int tpr_for(int chunks) {
  int t = 32;
  while (t < 256 && 2 * t <= chunks) t *= 2;
  return t;
}

template <int TPR>
static void launch_tpr(mv_job &job, const float *x, int cols, bool nf4, bool dq) {
  int rpb = MV_THREADS / TPR * MV_R, most = 0;
  for (int i = 0; i < job.n; i++) most = std::max(most, job.o[i].w.rows);
  unsigned gx = (most + rpb - 1) / rpb;
  emu_launch(gx, job.n, MV_THREADS, (size_t)cols * 4, [&] {
    if (!nf4)
      k_bf16_matvec<TPR>(job, x);
    else if (dq)
      k_nf4_matvec<TPR, true>(job, x);
    else
      k_nf4_matvec<TPR, false>(job, x);
  });
}

static void mv_case(std::string name, int cols, std::vector<Out> outs, int pro) {
  bool nf4 = outs[0].w.nf4, dq = outs[0].w.dq;
  name += " cols=" + std::to_string(cols) + " tpr=" + std::to_string(tpr_for(cols / (nf4 ? 32 : 8)));
  printf("%s\n", name.c_str());
  std::vector<float> x = randn(cols), p = pro == MV_RMSNORM ? randn(cols, 0.2f, 1.f) : randn(cols), xo(cols, NAN);
  // x' in f64: the prologue.
  std::vector<double> xr(cols);
  double ss = 0;
  for (float v : x) ss += (double)v * v;
  double rstd = 1 / std::sqrt(ss / cols + 1e-6);
  for (int i = 0; i < cols; i++) {
    double g = p[i];
    xr[i] = pro == MV_PLAIN ? x[i] : pro == MV_RMSNORM ? x[i] * rstd * g : g / (1 + std::exp(-g)) * x[i];
  }
  mv_job job{};
  job.n = (int)outs.size();
  job.pro = mv_pro{pro, pro == MV_PLAIN ? nullptr : p.data(), 1e-6f, pro == MV_PLAIN ? nullptr : xo.data()};
  std::vector<std::vector<float>> ys, biases, ress;
  for (auto &o : outs) {
    ys.push_back(std::vector<float>(o.w.rows, NAN));
    biases.push_back(randn(o.w.rows));
    ress.push_back(randn(o.w.rows));
  }
  for (int i = 0; i < job.n; i++) {
    const Weight &w = outs[i].w;
    dc_nf4 c = w.c();
    job.o[i].w = nf4 ? nf4_of(&c) : nf4_args{nullptr, nullptr, nullptr, nullptr, nullptr, 0.f, w.rows, cols};
    job.o[i].wb = reinterpret_cast<const uint4 *>(w.bf16.data());
    job.o[i].y = ys[i].data();
    job.o[i].bias = outs[i].bias ? biases[i].data() : nullptr;
    job.o[i].res = outs[i].res ? ress[i].data() : nullptr;
  }
  switch (tpr_for(cols / (nf4 ? 32 : 8))) {
    case 32: launch_tpr<32>(job, x.data(), cols, nf4, dq); break;
    case 64: launch_tpr<64>(job, x.data(), cols, nf4, dq); break;
    case 128: launch_tpr<128>(job, x.data(), cols, nf4, dq); break;
    default: launch_tpr<256>(job, x.data(), cols, nf4, dq); break;
  }
  for (int i = 0; i < job.n; i++) {
    const Weight &w = outs[i].w;
    std::vector<double> want(w.rows);
    for (int r = 0; r < w.rows; r++) {
      double acc = 0;
      for (int k = 0; k < cols; k++) acc += w.ref[(size_t)r * cols + k] * xr[k];
      want[r] = acc + (outs[i].bias ? biases[i][r] : 0) + (outs[i].res ? ress[i][r] : 0);
    }
    check("y" + std::to_string(i) + " (" + std::to_string(w.rows) + " rows)", ys[i], want, 2e-5);
  }
  if (pro != MV_PLAIN) check("x' written out", xo, xr, 2e-6);
}

static void mv_cases() {
  auto W = [](int rows, int cols, bool nf4, bool dq) { return make_weight(rows, cols, nf4, dq); };
  mv_case("nf4 plain", 896, {{W(100, 896, true, false), false, false}}, MV_PLAIN);
  mv_case("nf4 dq qkv rmsnorm+bias", 896,
          {{W(130, 896, true, true), true, false}, {W(33, 896, true, true), true, false}, {W(32, 896, true, true), true, false}},
          MV_RMSNORM);
  mv_case("nf4 dq gate/up rmsnorm", 2048, {{W(40, 2048, true, true), false, false}, {W(70, 2048, true, true), false, false}},
          MV_RMSNORM);
  mv_case("nf4 down swiglu+res", 4096, {{W(50, 4096, true, false), false, true}}, MV_SWIGLU);
  mv_case("nf4 dq o res", 8192, {{W(9, 8192, true, true), false, true}}, MV_PLAIN);
  mv_case("bf16 plain", 64, {{W(5, 64, false, false), false, false}}, MV_PLAIN);
  mv_case("bf16 qkv rmsnorm+bias+res", 1024,
          {{W(64, 1024, false, false), true, false}, {W(17, 1024, false, false), false, true}, {W(8, 1024, false, false), true, true}},
          MV_RMSNORM);
  mv_case("bf16 down swiglu+res", 2048, {{W(40, 2048, false, false), false, true}}, MV_SWIGLU);
  mv_case("bf16 wide rmsnorm", 4096, {{W(20, 4096, false, false), false, false}}, MV_RMSNORM);
}

// ---- NF4 dequantisation (nf4.cu: the tile before each GEMM) ----

// Rows [r0, r1) of an NF4 weight into f32 and bf16 as nf4.cu's launcher
// does it (the vector kernel when e0 = r0·cols is a multiple of 8, else the
// generic one), against the weight's values decoded here: the f32 bit for
// bit (code·scale, one rounding, as core/quant), the bf16 its rounding.
// ld > cols (bf16 only, all rows: the adapter's fused tile): rows ld apart,
// the vector kernel when cols and ld are multiples of 8, and the columns
// past cols left as they were.
static void dequant_case(int rows, int cols, bool dq, int r0, int r1, int ld = 0) {
  Weight w = make_weight(rows, cols, true, dq);
  dc_nf4 c = w.c();
  nf4_args a = nf4_of(&c);
  const bool strided = ld > 0;
  if (!strided) ld = cols;
  const int64_t e0 = (int64_t)r0 * cols, n = (int64_t)(r1 - r0) * cols, span = (int64_t)(r1 - r0) * ld;
  const bool vec = e0 % 8 == 0 && (!strided || (cols % 8 == 0 && ld % 8 == 0));
  printf("nf4 dequant %dx%d dq=%d rows [%d, %d) ld %d: %s kernel\n", rows, cols, dq, r0, r1, ld, vec ? "vector" : "generic");
  std::vector<float> want(n);
  std::vector<float> f32(n, NAN);
  std::vector<__nv_bfloat16> b16(span, __float2bfloat16_rn(NAN));
  for (int64_t i = 0; i < n; i++) {
    const int64_t e = e0 + i;
    const int nib = e % 2 == 0 ? w.codes[e / 2] >> 4 : w.codes[e / 2] & 15;
    float scale = dq ? (float)(w.map2[w.qabsmax[e / 64]] * w.absmax2[e / 64 / 256]) + w.offset : w.absmax[e / 64];
    want[i] = (float)kNF4[nib] * scale;
  }
  auto launch = [&](auto *dst, auto ldt) {
    using T = std::remove_pointer_t<decltype(dst)>;
    constexpr bool LD = decltype(ldt)::value;
    if (vec) {
      const int64_t tiles = (e0 + n + DQ_TILE - 1) / DQ_TILE - e0 / DQ_TILE;
      emu_launch((unsigned)std::max<int64_t>(1, (tiles + 7) / 8), 1, 256, 0, [&] {
        if (dq)
          k_nf4_dequant_vec<T, true, LD>(dst, a, e0, n, ld);
        else
          k_nf4_dequant_vec<T, false, LD>(dst, a, e0, n, ld);
      });
    } else {
      emu_launch((unsigned)std::max<int64_t>(1, (n + 255) / 256), 1, 256, 0, [&] { k_nf4_dequant<T, LD>(dst, a, e0, n, ld); });
    }
  };
  if (strided) {
    launch(b16.data(), std::true_type{});
  } else {
    launch(f32.data(), std::false_type{});
    launch(b16.data(), std::false_type{});
    check_exact("f32", f32, want);
  }
  std::vector<float> got16(span), want16(span, NAN);
  for (int64_t i = 0; i < span; i++) got16[i] = emu_bf2f(b16[i].v);
  for (int64_t i = 0; i < n; i++) want16[i / cols * ld + i % cols] = emu_bf2f(__float2bfloat16_rn(want[i]).v);
  check_exact("bf16", got16, want16);
}

// ---- k_nf4_stage (nf4.cu: the fused adapter GEMM's tile and operands) ----

// The stage as dc_nf4_stage launches it (the vector dequantisation's blocks,
// then enough for the largest conversion): the tile as the dequantisation
// writes it and each job as bf16_rows rounds it (scale·x to f32, then
// bf16), everything else untouched. fwd: W with s·B beside each row (ld =
// cols + r), u beside x's rows; else W then A's rows, dy and du side by side.
static void stage_case(int rows, int cols, int r, int n, bool dq, bool fwd) {
  Weight w = make_weight(rows, cols, true, dq);
  dc_nf4 c = w.c();
  nf4_args a = nf4_of(&c);
  const int64_t ld = fwd ? cols + r : cols, tile_n = fwd ? rows * ld : (int64_t)(rows + r) * cols;
  std::vector<__nv_bfloat16> tile(tile_n, __float2bfloat16_rn(NAN));
  struct Job {
    std::vector<float> src;
    std::vector<__nv_bfloat16> *dst;
    int64_t off, ldd, lds, rows, cols;
    float scale;
  };
  const int64_t ldo = (fwd ? cols : rows) + r;  // the operand's rows: x and u, or dy and du
  std::vector<__nv_bfloat16> op(n * ldo, __float2bfloat16_rn(NAN));
  std::vector<Job> jobs;
  if (fwd) {
    jobs.push_back({randn((size_t)rows * r), &tile, cols, ld, r, rows, r, 0.75f});  // s·B beside W's rows
    jobs.push_back({randn((size_t)n * r), &op, cols, ldo, r, n, r, 1.f});           // u beside x
  } else {
    jobs.push_back({randn((size_t)r * cols), &tile, (int64_t)rows * cols, cols, cols, r, cols, 1.f});  // A after W
    jobs.push_back({randn((size_t)n * rows), &op, 0, ldo, rows, n, rows, 1.f});                      // dy
    jobs.push_back({randn((size_t)n * r), &op, rows, ldo, r, n, r, 1.f});                            // du beside it
  }
  nf4_stage_jobs js{};
  int64_t conv = 0;
  for (Job &j : jobs) {
    js.j[js.n++] = dc_bf16_rows{(uint16_t *)(j.dst->data() + j.off), j.ldd, j.src.data(), j.lds, j.rows, j.cols, j.scale};
    const int64_t units = dc_bf16_rows_by4(j.dst->data() + j.off, j.ldd, j.src.data(), j.lds, j.cols) ? j.rows * j.cols / 4 : j.rows * j.cols;
    conv = std::max<int64_t>(conv, (units + 255) / 256);
  }
  const int64_t nw = (int64_t)rows * cols, dqb = ((nw + DQ_TILE - 1) / DQ_TILE + 7) / 8;
  printf("nf4 stage %dx%d r %d n %d dq=%d %s: %lld + %lld blocks\n", rows, cols, r, n, dq, fwd ? "forward" : "backward",
         (long long)dqb, (long long)conv);
  emu_launch((unsigned)(dqb + conv), 1, 256, 0, [&] {
    if (dq && fwd) k_nf4_stage<true, true>(tile.data(), a, ld, dqb, js);
    if (dq && !fwd) k_nf4_stage<true, false>(tile.data(), a, ld, dqb, js);
    if (!dq && fwd) k_nf4_stage<false, true>(tile.data(), a, ld, dqb, js);
    if (!dq && !fwd) k_nf4_stage<false, false>(tile.data(), a, ld, dqb, js);
  });
  std::vector<float> want_tile(tile_n, NAN), want_op(n * ldo, NAN);
  for (int64_t e = 0; e < nw; e++) {
    const int nib = e % 2 == 0 ? w.codes[e / 2] >> 4 : w.codes[e / 2] & 15;
    float scale = dq ? (float)(w.map2[w.qabsmax[e / 64]] * w.absmax2[e / 64 / 256]) + w.offset : w.absmax[e / 64];
    want_tile[e / cols * ld + e % cols] = emu_bf2f(__float2bfloat16_rn((float)kNF4[nib] * scale).v);
  }
  for (Job &j : jobs) {
    std::vector<float> &want = j.dst == &tile ? want_tile : want_op;
    for (int64_t i = 0; i < j.rows; i++)
      for (int64_t k = 0; k < j.cols; k++)
        want[j.off + i * j.ldd + k] = emu_bf2f(__float2bfloat16_rn(j.src[i * j.lds + k] * j.scale).v);
  }
  std::vector<float> got_tile(tile_n), got_op(n * ldo);
  for (int64_t i = 0; i < tile_n; i++) got_tile[i] = emu_bf2f(tile[i].v);
  for (int64_t i = 0; i < n * ldo; i++) got_op[i] = emu_bf2f(op[i].v);
  check_exact("tile", got_tile, want_tile);
  check_exact("operand", got_op, want_op);
}

// A cache buffer as the kernels take it: f32, or bf16 (kv_bf16: each
// element rounded to nearest even when written).
struct KVBuf {
  bool bf16;
  std::vector<float> f;
  std::vector<uint16_t> h;
  KVBuf(const std::vector<float> &v, bool b16) : bf16(b16) {
    if (!bf16) f = v;
    for (float x : v)
      if (bf16) h.push_back(__float2bfloat16_rn(x).v);
  }
  void *ptr() { return bf16 ? (void *)h.data() : (void *)f.data(); }
  // What the buffer holds, as f32.
  std::vector<float> held() const {
    if (!bf16) return f;
    std::vector<float> o;
    for (uint16_t x : h) o.push_back(emu_bf2f(x));
    return o;
  }
};

// x as a cache of the kind holds it.
static float kv_held(float x, bool bf16) { return bf16 ? emu_bf2f(__float2bfloat16_rn(x).v) : x; }

// ---- k_decode_qkv ----

static void qkv_case(int nh, int nkv, int hd, bool norms, bool stage, int pos, int cap, int tables, bool bf16) {
  printf("decode_qkv nh=%d nkv=%d hd=%d norms=%d stage=%d pos=%d cap=%d tables=%d cache %s\n", nh, nkv, hd, norms, stage,
         pos, cap, tables, bf16 ? "bf16" : "f32");
  int half = hd / 2, kvO = nkv * hd;
  std::vector<float> q = randn(nh * hd), k = randn(kvO), v = randn(kvO), qn = randn(hd, 0.2f, 1.f), kn = randn(hd, 0.2f, 1.f);
  std::vector<float> cs(tables * half), sn(tables * half);
  for (int p = 0; p < tables; p++)
    for (int j = 0; j < half; j++) {
      double th = p * std::pow(10000.0, -2.0 * j / hd);
      cs[p * half + j] = (float)std::cos(th), sn[p * half + j] = (float)std::sin(th);
    }
  KVBuf kcb(std::vector<float>((size_t)cap * kvO, 7.f), bf16), vcb(std::vector<float>((size_t)cap * kvO, 7.f), bf16);
  std::vector<float> sk(kvO, 7.f), sv(kvO, 7.f), q0 = q;
  int32_t posv = pos;
  dc_decode_qkv_args a{q.data(), k.data(), v.data(), norms ? qn.data() : nullptr, norms ? kn.data() : nullptr, 1e-6f, &posv,
                       cs.data(), sn.data(), tables, kcb.ptr(), vcb.ptr(), stage ? sk.data() : nullptr,
                       stage ? sv.data() : nullptr, cap, nh, nkv, hd, bf16};
  if (bf16)
    emu_launch(nh + 2 * nkv, 1, 32, 0, [&] { k_decode_qkv<__nv_bfloat16>(a); });
  else
    emu_launch(nh + 2 * nkv, 1, 32, 0, [&] { k_decode_qkv<float>(a); });
  std::vector<float> kc = kcb.held(), vc = vcb.held();
  // f64: each head normalised, then rotated at pos.
  auto head = [&](const std::vector<float> &x, int h, const std::vector<float> &w) {
    std::vector<double> o(hd);
    double ss = 0;
    for (int j = 0; j < hd; j++) ss += (double)x[h * hd + j] * x[h * hd + j];
    double s = norms ? 1 / std::sqrt(ss / hd + 1e-6) : 1;
    for (int j = 0; j < hd; j++) o[j] = x[h * hd + j] * s * (norms ? w[j] : 1.0);
    std::vector<double> r(hd);
    for (int j = 0; j < half; j++) {
      double c = cs[pos * half + j], sv_ = sn[pos * half + j];
      r[j] = o[j] * c - o[j + half] * sv_, r[j + half] = o[j + half] * c + o[j] * sv_;
    }
    return r;
  };
  bool writes = pos >= 0 && pos < cap && pos < tables;
  std::vector<double> wq, wk;
  std::vector<float> wv;
  for (int h = 0; h < nh; h++) {
    auto r = writes ? head(q0, h, qn) : std::vector<double>(q0.begin() + h * hd, q0.begin() + (h + 1) * hd);
    wq.insert(wq.end(), r.begin(), r.end());
  }
  for (int h = 0; h < nkv; h++) {
    auto r = head(k, h, kn);
    wk.insert(wk.end(), r.begin(), r.end());
  }
  for (float x : v) wv.push_back(kv_held(x, bf16));
  check("q", q, wq, 1e-5);
  if (!writes) {  // nothing written anywhere
    bool clean = true;
    for (auto *b : {&kc, &vc, &sk, &sv})
      for (float x : *b) clean &= x == 7.f;
    printf("  out of range writes nothing%s\n", clean ? "" : " FAIL");
    fails += !clean;
    return;
  }
  std::vector<float> rowk(kc.begin() + (size_t)pos * kvO, kc.begin() + (size_t)(pos + 1) * kvO);
  std::vector<float> rowv(vc.begin() + (size_t)pos * kvO, vc.begin() + (size_t)(pos + 1) * kvO);
  check("k cache row", rowk, wk, bf16 ? 4e-3 : 1e-5);  // bf16: within half a unit of the 8th bit
  if (bf16) {  // exactly a bf16 value
    bool held = true;
    for (float x : rowk) held &= kv_held(x, true) == x;
    printf("  k cache row held in bf16%s\n", held ? "" : " FAIL");
    fails += !held;
  }
  check_exact("v cache row", rowv, wv);
  if (stage) {  // what the cache holds
    check_exact("k stage", sk, rowk);
    check_exact("v stage", sv, rowv);
  }
  size_t other = 0;  // rows other than pos untouched
  for (int r = 0; r < cap; r++)
    for (int e = 0; e < kvO; e++)
      if (r != pos) other += kc[(size_t)r * kvO + e] != 7.f || vc[(size_t)r * kvO + e] != 7.f;
  printf("  other cache rows untouched%s\n", other ? " FAIL" : "");
  fails += other != 0;
}

// ---- A batched step: each row over its own cache ----

static void rows_case(int nh, int nkv, int hd, std::vector<int> his, std::vector<int> caps, bool bf16) {
  int nr = (int)his.size(), kvo = nkv * hd;
  printf("attn_rows/kv_rows nh=%d nkv=%d hd=%d rows=%d cache %s\n", nh, nkv, hd, nr, bf16 ? "bf16" : "f32");
  std::vector<KVBuf> kcb, vcb;
  std::vector<void *> kp(nr), vp(nr);
  std::vector<int32_t> pos(nr), cap(nr), hi(nr);
  for (int r = 0; r < nr; r++) {
    kcb.emplace_back(randn((size_t)caps[r] * kvo), bf16), vcb.emplace_back(randn((size_t)caps[r] * kvo), bf16);
    cap[r] = caps[r], hi[r] = his[r], pos[r] = his[r] - 1;  // the new row is the last attended
  }
  for (int r = 0; r < nr; r++) kp[r] = kcb[r].ptr(), vp[r] = vcb[r].ptr();
  std::vector<float> q = randn((size_t)nr * nh * hd), k = randn((size_t)nr * kvo), v = randn((size_t)nr * kvo);
  std::vector<std::vector<float>> kc0(nr), vc0(nr), kc(nr), vc(nr);
  for (int r = 0; r < nr; r++) kc0[r] = kcb[r].held(), vc0[r] = vcb[r].held();
  dc_kv_rows_args ka{k.data(), v.data(), kp.data(), vp.data(), pos.data(), cap.data(), nr, kvo, bf16};
  if (bf16)
    emu_launch(nr, 1, 128, 0, [&] { k_kv_rows<__nv_bfloat16>(ka); });
  else
    emu_launch(nr, 1, 128, 0, [&] { k_kv_rows<float>(ka); });
  for (int r = 0; r < nr; r++) kc[r] = kcb[r].held(), vc[r] = vcb[r].held();
  bool rows_ok = true;
  for (int r = 0; r < nr; r++)
    for (int p = 0; p < caps[r]; p++)
      for (int e = 0; e < kvo; e++) {
        bool mine = p == pos[r];
        float wk = mine ? kv_held(k[(size_t)r * kvo + e], bf16) : kc0[r][(size_t)p * kvo + e];
        float wv = mine ? kv_held(v[(size_t)r * kvo + e], bf16) : vc0[r][(size_t)p * kvo + e];
        rows_ok &= kc[r][(size_t)p * kvo + e] == wk && vc[r][(size_t)p * kvo + e] == wv;
      }
  printf("  kv rows at their positions, nothing else%s\n", rows_ok ? "" : " FAIL");
  fails += !rows_ok;
  std::vector<float> out((size_t)nr * nh * hd, 7.f), lse((size_t)nr * nh, 7.f);
  float scale = 1.f / std::sqrt((float)hd);
  dc_attn_rows_args aa{out.data(), lse.data(), q.data(), kp.data(), vp.data(), hi.data(), cap.data(), nr, nh, nkv, hd, scale, bf16};
  if (bf16)
    emu_launch(nr, nh, AR_WARPS * 32, 0, [&] { k_attn_rows<__nv_bfloat16>(aa); });
  else
    emu_launch(nr, nh, AR_WARPS * 32, 0, [&] { k_attn_rows<float>(aa); });
  // The f64 reference reads what the caches hold (bf16's widened).
  auto check_attn = [&](const std::string &what, const std::vector<float> &out, const std::vector<float> &lse) {
    std::vector<double> wo, wl;
    std::vector<float> go, gl;
    for (int r = 0; r < nr; r++)
      for (int h = 0; h < nh; h++) {
        int g = h / (nh / nkv), n = hi[r];
        const float *qh = &q[((size_t)r * nh + h) * hd];
        if (n <= 0 || n > cap[r]) {  // NaN rows: checked apart
          bool nan = std::isnan(lse[(size_t)r * nh + h]);
          for (int d = 0; d < hd; d++) nan &= std::isnan(out[((size_t)r * nh + h) * hd + d]);
          if (!nan) printf("  %s: row %d head %d: empty range not NaN FAIL\n", what.c_str(), r, h), fails++;
          continue;
        }
        std::vector<double> s(n);
        double mx = -INFINITY;
        for (int j = 0; j < n; j++) {
          double acc = 0;
          for (int d = 0; d < hd; d++) acc += (double)qh[d] * kc[r][(size_t)j * kvo + g * hd + d];
          s[j] = acc * scale, mx = std::max(mx, s[j]);
        }
        double sum = 0;
        for (double x : s) sum += std::exp(x - mx);
        for (int d = 0; d < hd; d++) {
          double o = 0;
          for (int j = 0; j < n; j++) o += std::exp(s[j] - mx) / sum * vc[r][(size_t)j * kvo + g * hd + d];
          wo.push_back(o), go.push_back(out[((size_t)r * nh + h) * hd + d]);
        }
        wl.push_back(mx + std::log(sum)), gl.push_back(lse[(size_t)r * nh + h]);
      }
    check(what + " out", go, wo, 1e-5);
    check(what + " lse", gl, wl, 1e-5);
  };
  check_attn("rows", out, lse);
  // Split into chunks (k_attn_rows_split, then k_attn_rows_merge), as
  // dc_attn_rows_split launches them: one key a chunk, chunks that cut the
  // warps' strides, and one chunk for the longest cache — each with every
  // count of a group's heads a block takes (NG), whatever the group: groups
  // in one block, rounded up, or in several.
  int maxcap = *std::max_element(caps.begin(), caps.end());
  auto split = [&](auto ng, int chunk, int splits, dc_attn_rows_args sa, float *part) {
    constexpr int NG = decltype(ng)::value;
    const int group = nh / nkv, gy = nkv * ((group + NG - 1) / NG);
    if (bf16)
      emu_launch(nr * splits, gy, AR_WARPS * 32, 0, [&] { k_attn_rows_split<__nv_bfloat16, NG>(sa, part, splits, chunk); });
    else
      emu_launch(nr * splits, gy, AR_WARPS * 32, 0, [&] { k_attn_rows_split<float, NG>(sa, part, splits, chunk); });
  };
  for (int chunk : {1, 3, 16, maxcap})
    for (int ng : {1, 2, 4, AR_GROUP}) {
      int splits = (maxcap + chunk - 1) / chunk;
      std::vector<float> so((size_t)nr * nh * hd, 7.f), sl((size_t)nr * nh, 7.f), part((size_t)nr * nh * splits * (hd + 2), NAN);
      dc_attn_rows_args sa = aa;
      sa.out = so.data(), sa.lse = sl.data();
      switch (ng) {
        case 1: split(std::integral_constant<int, 1>{}, chunk, splits, sa, part.data()); break;
        case 2: split(std::integral_constant<int, 2>{}, chunk, splits, sa, part.data()); break;
        case 4: split(std::integral_constant<int, 4>{}, chunk, splits, sa, part.data()); break;
        default: split(std::integral_constant<int, AR_GROUP>{}, chunk, splits, sa, part.data());
      }
      emu_launch(nr, nh, AR_WARPS * 32, 0, [&] { k_attn_rows_merge(sa, part.data(), splits, chunk); });
      check_attn("split by " + std::to_string(chunk) + ", " + std::to_string(ng) + " heads a block", so, sl);
    }
}

// kv_rows with a position past its cache: nothing written (the buffer has
// a spare row past cap to catch a write).
static void rows_past_cap(bool bf16) {
  int kvo = 64, cap = 3;
  KVBuf kc(std::vector<float>((cap + 1) * kvo, 7.f), bf16), vc(std::vector<float>((cap + 1) * kvo, 7.f), bf16);
  std::vector<float> k = randn(kvo), v = randn(kvo);
  void *kp = kc.ptr(), *vp = vc.ptr();
  int32_t pos = cap, capv = cap;
  dc_kv_rows_args ka{k.data(), v.data(), &kp, &vp, &pos, &capv, 1, kvo, bf16};
  if (bf16)
    emu_launch(1, 1, 128, 0, [&] { k_kv_rows<__nv_bfloat16>(ka); });
  else
    emu_launch(1, 1, 128, 0, [&] { k_kv_rows<float>(ka); });
  bool clean = true;
  for (float x : kc.held()) clean &= x == 7.f;
  for (float x : vc.held()) clean &= x == 7.f;
  printf("kv_rows past the cache (%s) writes nothing%s\n", bf16 ? "bf16" : "f32", clean ? "" : " FAIL");
  fails += !clean;
}

int main() {
  mv_cases();
  for (bool dq : {false, true}) {
    dequant_case(64, 64, dq, 0, 64);     // whole groups from element 0
    dequant_case(40, 40, dq, 1, 39);     // e0 = 40: the first and last groups cut
    dequant_case(33, 1000, dq, 1, 33);   // e0 ≡ 8 mod 32
    dequant_case(33, 77, dq, 3, 30);     // e0 = 231: the generic kernel
    dequant_case(20, 8960, dq, 7, 19);   // past 256 blocks: absmax2's index moves
    dequant_case(48, 1536, dq, 0, 48, 1552);  // the fused tile: 16 columns beside each row (vector)
    dequant_case(9, 40, dq, 0, 9, 52);        // ld not a multiple of 8: the generic kernel
    dequant_case(9, 36, dq, 0, 9, 40);        // cols not a multiple of 8: rows start mid-group
    stage_case(40, 96, 8, 37, dq, true);       // q-like: W (40, 96) with s·B beside, u beside x
    stage_case(40, 96, 8, 37, dq, false);      // W then A's rows; dy, du side by side
    stage_case(24, 2048, 16, 300, dq, true);   // more blocks of conversions than of tiles
    stage_case(300, 64, 16, 9, dq, false);     // more tiles than conversions
    stage_case(16, 96, 6, 5, dq, false);       // rows + r, r not a multiple of 4: du one by one
  }
  for (bool bf16 : {false, true}) {  // the caches in f32, then in bf16
    qkv_case(14, 2, 64, false, true, 37, 64, 40, bf16);
    qkv_case(4, 2, 64, true, true, 0, 8, 8, bf16);
    qkv_case(8, 8, 128, true, false, 5, 6, 100, bf16);
    qkv_case(2, 1, 80, true, true, 3, 10, 10, bf16);
    qkv_case(4, 2, 32, false, true, 9, 9, 20, bf16);  // pos == cap: writes nothing
    rows_case(8, 2, 64, {1, 17, 40}, {4, 20, 64}, bf16);
    rows_case(4, 4, 128, {3, 0, 9}, {8, 2, 9}, bf16);  // row 1: an empty range
    rows_case(6, 3, 80, {130, 2}, {140, 5}, bf16);
    rows_case(2, 1, 16, {5}, {5}, bf16);
    rows_case(4, 2, 32, {3, 7}, {4, 5}, bf16);  // row 1: a range past its cache
    rows_case(14, 2, 64, {70, 33}, {80, 40}, bf16);  // Qwen2.5-0.5B's groups of 7
    rows_case(24, 2, 32, {21}, {24}, bf16);          // groups of 12: past AR_GROUP
    rows_past_cap(bf16);
  }
  printf("%d failures\n", fails);
  return fails != 0;
}
