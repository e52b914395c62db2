// flash_emu.cpp: attn_flash_kernels.cuh's forward and backward kernels,
// launched as attn_flash.cu launches them but on the host (shim.h), against
// an f64 reference of the same attention (query row i attends keys
// [lo[i], hi[i]); bad ranges give NaN rows), at the tolerances of
// cuda/attention_flash_test.go; and attn_merge, each range attended in two
// halves and merged. Run by emu_test.go (make test): no GPU needed. Usage:
// flash_emu [case index ...] (default: all); exit 1 on a failure.
#include "shim.h"
#include "../../kernels/attn_flash_kernels.cuh"

#include <functional>
#include <random>
#include <string>

static void launch(unsigned gx, unsigned gy, unsigned bd, size_t smem, const std::function<void()> &f) {
  emu_launch(gx, gy, bd, smem, f);
}

// A grid of tiles × heads as attn_flash.cu's fa_grid lays it out: heads
// fastest with hf. The async kernels run so here (and dk/dv with its
// statistics prefetched: FA_PREFETCH) and v1's do not, and their results
// must agree bit for bit: the remapped blocks cover every tile and head
// once, and the prefetched statistics arrive before they are read.
static void launch_tiles(unsigned tiles, unsigned nh, int hf, unsigned bd, size_t smem, const std::function<void()> &f) {
  emu_launch(hf ? nh : tiles, hf ? tiles : nh, bd, smem, f);
}

template <int HD, int QW, bool ASYNC>
void fwd_qw(float *out, float *lse, const float *q, const float *k, const float *v, const emu_bf16 *kb,
            const emu_bf16 *vb, const int32_t *lo, const int32_t *hi, int nq, int nk, int nh, int nkv, int max_len,
            float scale) {
  launch_tiles((nq + 16 * QW - 1) / (16 * QW), nh, ASYNC, QW * 32, ASYNC ? fa_fwd_async_smem<HD>() : fa_fwd_smem<HD>(),
               [&] { k_fa_fwd<HD, QW, ASYNC>(out, lse, q, k, v, kb, vb, lo, hi, nq, nk, nh, nkv, max_len, scale, ASYNC); });
}

// bf16 copies, rounded as dc_f32_to_bf16 rounds them.
static std::vector<emu_bf16> to_bf16(const float *x, size_t n) {
  std::vector<emu_bf16> b(n);
  for (size_t e = 0; e < n; e++) b[e] = __float2bfloat16_rn(x[e]);
  return b;
}

template <int HD>
void fwd(float *out, float *lse, const float *q, const float *k, const float *v, const int32_t *lo, const int32_t *hi,
         int nq, int nk, int nh, int nkv, int max_len, float scale, bool async = false) {
  async = async && nk > 0;
  std::vector<emu_bf16> kb, vb;
  if (async) kb = to_bf16(k, (size_t)nk * nkv * HD), vb = to_bf16(v, (size_t)nk * nkv * HD);
  const bool eight = fa_qw(HD, nq) == 8;
  if (eight && async)
    fwd_qw<HD, 8, true>(out, lse, q, k, v, kb.data(), vb.data(), lo, hi, nq, nk, nh, nkv, max_len, scale);
  else if (eight)
    fwd_qw<HD, 8, false>(out, lse, q, k, v, nullptr, nullptr, lo, hi, nq, nk, nh, nkv, max_len, scale);
  else if (async)
    fwd_qw<HD, 4, true>(out, lse, q, k, v, kb.data(), vb.data(), lo, hi, nq, nk, nh, nkv, max_len, scale);
  else
    fwd_qw<HD, 4, false>(out, lse, q, k, v, nullptr, nullptr, lo, hi, nq, nk, nh, nkv, max_len, scale);
}

// With split (FA_SPLIT_DQ), two blocks a row tile, the second halves' dq
// into dq2, then added to dq (k_add, as attn_flash.cu's dc_add).
template <int HD, int QW, bool ASYNC>
void dq_qw(float *dq, const float *dout, const float *q, const float *k, const float *v, const emu_bf16 *kb,
           const emu_bf16 *vb, const float *lse, const float *D, const int32_t *lo, const int32_t *hi, int nq, int nk,
           int nh, int nkv, int max_len, float scale, bool split) {
  const int splits = split && nk > 0 ? 2 : 1;
  std::vector<float> dq2(splits > 1 ? (size_t)nq * nh * HD : 1, 12345.f);
  launch_tiles((nq + 16 * QW - 1) / (16 * QW) * splits, nh, ASYNC, QW * 32,
               ASYNC ? fa_dq_async_smem<HD>() : fa_dq_smem<HD>(), [&] {
                 k_fa_bwd_dq<HD, QW, ASYNC>(dq, dout, q, k, v, kb, vb, lse, D, lo, hi, nq, nk, nh, nkv, max_len, scale,
                                            ASYNC | (splits > 1 ? FA_SPLIT_DQ : 0), dq2.data());
               });
  if (splits > 1)
    for (size_t e = 0; e < dq2.size(); e++) dq[e] += dq2[e];
}

template <int HD>
void bwd(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k, const float *v,
         const float *out, const float *lse, const int32_t *lo, const int32_t *hi, int nq, int nk, int nh, int nkv,
         int max_len, float scale, float *D, int32_t *tiles, float *part, bool async = false, bool fused = false,
         bool split = false) {
  int64_t rows = (int64_t)nq * nh;
  launch((unsigned)((rows * 32 + 255) / 256), 1, 256, 0, [&] { k_fa_row_dot(D, dout, out, nq, nh, HD); });
  launch((nq + FA_BQ2 - 1) / FA_BQ2, 1, 32, 0, [&] { k_fa_tile_range(tiles, lo, hi, nq, nk, max_len); });
  async = async && nk > 0;
  const size_t qn = (size_t)nq * nh * HD, kn = (size_t)nk * nkv * HD;
  std::vector<emu_bf16> qb, ob, kb, vb;
  if (async) qb = to_bf16(q, qn), ob = to_bf16(dout, qn), kb = to_bf16(k, kn), vb = to_bf16(v, kn);
  fused = fused && async;
  if (fused)  // dq zeroed (bad rows NaN), added up by the dk/dv kernel below
    launch(std::min(nq, 7), 1, 256, 0, [&] { k_fa_dq_init(dq, lo, hi, nq, nk, max_len, nh * HD); });  // blocks stride
  else if (fa_qw(HD, nq) == 8 && async)
    dq_qw<HD, 8, true>(dq, dout, q, k, v, kb.data(), vb.data(), lse, D, lo, hi, nq, nk, nh, nkv, max_len, scale, split);
  else if (fa_qw(HD, nq) == 8)
    dq_qw<HD, 8, false>(dq, dout, q, k, v, nullptr, nullptr, lse, D, lo, hi, nq, nk, nh, nkv, max_len, scale, split);
  else if (async)
    dq_qw<HD, 4, true>(dq, dout, q, k, v, kb.data(), vb.data(), lse, D, lo, hi, nq, nk, nh, nkv, max_len, scale, split);
  else
    dq_qw<HD, 4, false>(dq, dout, q, k, v, nullptr, nullptr, lse, D, lo, hi, nq, nk, nh, nkv, max_len, scale, split);
  if (nk == 0) return;
  // Split (FA_SPLIT_KV): two blocks a key block, each half's shares in
  // part (4·nk·nh·HD floats), summed by group_sum as a group's are.
  const int splits = split ? 2 : 1, sf = split ? FA_SPLIT_KV : 0;
  const bool summed = nh != nkv || split;
  const int64_t share = (int64_t)nk * nh * HD, ss = 2 * share;
  float *ok = summed ? part : dk, *ov = summed ? part + share : dv;
  int64_t os = summed ? (int64_t)nh * HD : (int64_t)nkv * HD;
  const unsigned kt = (nk + FA_BK - 1) / FA_BK * splits;
  if (fused)  // in v1's block order, so the adds reach dq in another order than heads fastest would
    launch_tiles(kt, nh, 0, FA_THREADS, fa_dkv_fused_smem<HD>(), [&] {
      k_fa_bwd_dkv<HD, true, true>(ok, ov, os, dout, q, k, v, ob.data(), qb.data(), lse, D, lo, hi, tiles, nq, nk, nh,
                                   nkv, max_len, scale, FA_PREFETCH | FA_FUSED_DQ | sf, dq, ss);
    });
  else if (async)
    launch_tiles(kt, nh, 1, FA_THREADS, fa_dkv_async_smem<HD>(), [&] {
      k_fa_bwd_dkv<HD, true>(ok, ov, os, dout, q, k, v, ob.data(), qb.data(), lse, D, lo, hi, tiles, nq, nk, nh, nkv,
                             max_len, scale, FA_HEAVY_FIRST | FA_PREFETCH | sf, nullptr, ss);
    });
  else
    launch_tiles(kt, nh, 0, FA_THREADS, fa_dkv_smem<HD>(), [&] {
      k_fa_bwd_dkv<HD, false>(ok, ov, os, dout, q, k, v, nullptr, nullptr, lse, D, lo, hi, tiles, nq, nk, nh, nkv,
                              max_len, scale, sf, nullptr, ss);
    });
  if (summed) {
    int64_t n = (int64_t)nk * nkv * HD;
    int nb = (int)std::min<int64_t>((n + 255) / 256, 8);  // few blocks: the grid-stride loop covers the rest
    launch(nb, 1, 256, 0, [&] { k_fa_group_sum(dk, dv, ok, ov, nk, nh, nkv, HD, splits, ss); });
  }
}

struct Case {
  std::string name;
  int nq, nk, nh, nkv, hd, max_len;
  std::vector<int32_t> lo, hi;
  // Key and value rows past every row's range are NaN (a decoder's cache
  // mirror past what it holds, attended with nk its capacity): the forward
  // must not let them in; backward is not run on such keys (training's are
  // all finite).
  bool nan_tail = false;
};

static Case packed(std::vector<int> segs, int nh, int nkv, int hd) {
  Case c{"packed", 0, 0, nh, nkv, hd, 0, {}, {}};
  int n = 0;
  for (int L : segs) {
    for (int i = 0; i < L; i++) c.lo.push_back(n), c.hi.push_back(n + i + 1);
    n += L;
    c.max_len = std::max(c.max_len, L);
    c.name += "_" + std::to_string(L);
  }
  c.nq = c.nk = n;
  return c;
}
static Case decode(int T, int pos0, int nh, int nkv, int hd) {
  Case c{"decode" + std::to_string(T) + "_" + std::to_string(pos0), T, pos0 + T + 5, nh, nkv, hd, pos0 + T, {}, {}};
  for (int t = 0; t < T; t++) c.lo.push_back(0), c.hi.push_back(pos0 + t + 1);
  return c;
}
// c with its keys extended to nk rows, those past every range NaN.
static Case poisoned(Case c, int nk) {
  c.name += "_nan_tail", c.nk = nk, c.nan_tail = true;
  return c;
}
static Case window(int n, int w, int nh, int nkv, int hd) {
  Case c{"window" + std::to_string(w) + "_" + std::to_string(n), n, n, nh, nkv, hd, w, {}, {}};
  for (int i = 0; i < n; i++) c.lo.push_back(std::max(0, i - w + 1)), c.hi.push_back(i + 1);
  return c;
}
static Case bad() {
  Case c = window(40, 40, 4, 2, 64);
  c.name = "bad";
  c.max_len = 38;
  c.lo[3] = 3, c.hi[3] = 3;
  c.hi[5] = 41;
  c.lo[7] = -1;
  c.lo[9] = 9, c.hi[9] = 8;
  return c;
}

// Bad rows inside tiles whose other rows all attend the same keys (a
// causal segment's tiles below the diagonal): the kernels' unmasked paths
// for full tiles must not take them.
static Case bad_in_full() {
  Case c = packed({100}, 4, 2, 64);
  c.name = "bad_in_full";
  c.lo[50] = -1;
  c.hi[70] = 101;
  return c;
}

static bool valid(const Case &c, int i) {
  int lo = c.lo[i], hi = c.hi[i];
  return lo >= 0 && hi <= c.nk && hi - lo > 0 && hi - lo <= c.max_len;
}

static int fails = 0;

static void cmp(const char *what, const Case &c, const std::vector<float> &got, const std::vector<double> &want,
                double tol) {
  double ss = 0;
  int n = 0;
  for (double w : want)
    if (!std::isnan(w)) ss += w * w, n++;
  double rms = std::sqrt(ss / std::max(n, 1)), atol = tol * std::max(rms, 0.1);
  int bad = 0;
  double worst = 0;
  size_t first = (size_t)-1;
  for (size_t e = 0; e < want.size(); e++) {
    double g = got[e], w = want[e];
    if (std::isnan(g) != std::isnan(w)) {
      bad++;
      if (first == (size_t)-1) first = e;
      continue;
    }
    if (std::isnan(w)) continue;
    double err = std::fabs(g - w) / (atol + tol * std::fabs(w));
    worst = std::max(worst, err);
    if (err > 1) {
      bad++;
      if (first == (size_t)-1) first = e;
    }
  }
  printf("  %-4s worst/tol %.3f%s", what, worst, bad ? " FAIL" : "");
  if (bad) {
    fails++;
    printf(" (%d bad, first at %zu: got %g want %g)", bad, first, got[first], want[first]);
  }
  printf("\n");
}

template <int HD>
static void run(const Case &c) {
  int nq = c.nq, nk = c.nk, nh = c.nh, nkv = c.nkv, group = nh / nkv, qs = nh * HD, ks = nkv * HD;
  std::mt19937 r(nq * 131 + nk * 7 + nh * HD);
  std::normal_distribution<float> N;
  auto randn = [&](size_t n) {
    std::vector<float> x(n);
    for (auto &v : x) v = N(r);
    return x;
  };
  auto q = randn((size_t)nq * qs), k = randn((size_t)nk * ks), v = randn((size_t)nk * ks),
       dout = randn((size_t)nq * qs);
  if (c.nan_tail) {
    int top = *std::max_element(c.hi.begin(), c.hi.end());
    for (size_t e = (size_t)top * ks; e < k.size(); e++) k[e] = v[e] = NAN;
  }
  float scale = 1 / std::sqrt((float)HD);
  const float P = 12345.f;  // poison
  std::vector<float> out(nq * qs, P), lse(nq * nh, P), dq(nq * qs, P), dk(nk * ks + 1, P), dv(nk * ks + 1, P);
  std::vector<float> D(std::max(nq * nh, 1)), part(group > 1 ? 2 * (size_t)nk * nh * HD : 1, P);
  std::vector<int32_t> tiles(std::max(4 * ((nq + 31) / 32), 1));
  fwd<HD>(out.data(), lse.data(), q.data(), k.data(), v.data(), c.lo.data(), c.hi.data(), nq, nk, nh, nkv, c.max_len,
          scale);
  bwd<HD>(dq.data(), dk.data(), dv.data(), dout.data(), q.data(), k.data(), v.data(), out.data(), lse.data(),
          c.lo.data(), c.hi.data(), nq, nk, nh, nkv, c.max_len, scale, D.data(), tiles.data(), part.data());
  dk.pop_back(), dv.pop_back();
  // f64 reference
  std::vector<double> ro(nq * qs), rl(nq * nh), rdq(nq * qs), rdk(nk * ks, 0.), rdv(nk * ks, 0.);
  for (int i = 0; i < nq; i++)
    for (int h = 0; h < nh; h++) {
      int qo = i * qs + h * HD, ko = (h / group) * HD;
      if (!valid(c, i)) {
        for (int x = 0; x < HD; x++) ro[qo + x] = rdq[qo + x] = NAN;
        rl[i * nh + h] = NAN;
        continue;
      }
      int lo = c.lo[i], hi = c.hi[i];
      std::vector<double> s(hi - lo), dp(hi - lo);
      double m = -INFINITY;
      for (int j = lo; j < hi; j++) {
        double d = 0, e = 0;
        for (int x = 0; x < HD; x++) d += (double)q[qo + x] * k[j * ks + ko + x], e += (double)dout[qo + x] * v[j * ks + ko + x];
        s[j - lo] = d * scale, dp[j - lo] = e;
        m = std::max(m, s[j - lo]);
      }
      double sum = 0;
      for (auto &x : s) x = std::exp(x - m), sum += x;
      for (auto &x : s) x /= sum;
      rl[i * nh + h] = m + std::log(sum);
      double Dd = 0;
      for (int x = 0; x < HD; x++) {
        double o = 0;
        for (int j = lo; j < hi; j++) o += s[j - lo] * v[j * ks + ko + x];
        ro[qo + x] = o;
        Dd += o * dout[qo + x];
      }
      for (int x = 0; x < HD; x++) rdq[qo + x] = 0;
      for (int j = lo; j < hi; j++) {
        double ds = s[j - lo] * (dp[j - lo] - Dd) * scale;
        for (int x = 0; x < HD; x++) {
          rdq[qo + x] += ds * k[j * ks + ko + x];
          rdk[j * ks + ko + x] += ds * q[qo + x];
          rdv[j * ks + ko + x] += s[j - lo] * dout[qo + x];
        }
      }
    }
  printf("%s nq=%d nk=%d h=%d kv=%d hd=%d\n", c.name.c_str(), nq, nk, nh, nkv, HD);
  // lse: absolute
  {
    std::vector<double> rl2 = rl;
    double worst = 0;
    int badn = 0;
    for (size_t e = 0; e < rl.size(); e++) {
      if (std::isnan(rl[e]) != std::isnan(lse[e])) {
        badn++;
        continue;
      }
      if (!std::isnan(rl[e])) worst = std::max(worst, std::fabs(rl[e] - lse[e]) / 3e-2);
    }
    printf("  lse  worst/tol %.3f%s\n", worst, (badn || worst > 1) ? " FAIL" : "");
    if (badn || worst > 1) fails++;
  }
  cmp("out", c, out, ro, 6e-2);
  {  // the forward staging its key tiles by cp.async: v1's out, lse bit for bit (NaN tails too)
    std::vector<float> out2(nq * qs, P), lse2(nq * nh, P);
    fwd<HD>(out2.data(), lse2.data(), q.data(), k.data(), v.data(), c.lo.data(), c.hi.data(), nq, nk, nh, nkv,
            c.max_len, scale, true);
    size_t diff = 0;
    for (size_t e = 0; e < out.size(); e++) diff += memcmp(&out[e], &out2[e], 4) != 0;
    for (size_t e = 0; e < lse.size(); e++) diff += memcmp(&lse[e], &lse2[e], 4) != 0;
    printf("  out, lse by the async forward: %s\n", diff ? "FAIL" : "v1's bit for bit");
    if (diff) printf("    %zu of %zu differ\n", diff, out.size() + lse.size()), fails++;
  }
  if (!c.nan_tail) {
    cmp("dq", c, dq, rdq, 1.2e-1);
    cmp("dk", c, dk, rdk, 1.2e-1);
    cmp("dv", c, dv, rdv, 1.2e-1);
    // The asynchronously staged dq and dk/dv kernels: the same products in
    // the same order, so v1's dq, dk and dv bit for bit (poisoned outputs
    // first).
    std::vector<float> dq2(nq * qs, P), dk2(nk * ks, P), dv2(nk * ks, P), part2(part.size(), P);
    bwd<HD>(dq2.data(), dk2.data(), dv2.data(), dout.data(), q.data(), k.data(), v.data(), out.data(), lse.data(),
            c.lo.data(), c.hi.data(), nq, nk, nh, nkv, c.max_len, scale, D.data(), tiles.data(), part2.data(), true);
    size_t diff = 0;
    for (size_t e = 0; e < dk.size(); e++)
      diff += memcmp(&dk[e], &dk2[e], 4) != 0 || memcmp(&dv[e], &dv2[e], 4) != 0;
    for (size_t e = 0; e < dq.size(); e++) diff += memcmp(&dq[e], &dq2[e], 4) != 0;
    printf("  dq, dk, dv by the async kernels: %s\n", diff ? "FAIL" : "v1's bit for bit");
    if (diff) printf("    %zu of %zu differ\n", diff, dk.size() + dq.size()), fails++;

    // The fused dq (dq added up by the dk/dv kernel, poisoned first): dk,
    // dv v1's bit for bit; dq against the f64 reference at dq's tolerance
    // and against v1's dq — the same bf16 products summed in another order
    // (a key block's four 16-key products, then the blocks), so within f32
    // rounding of it: at 1e-3 of the tolerance an index or mask mistake
    // fails by orders of magnitude.
    std::vector<float> dq3(nq * qs, P), dk3(nk * ks, P), dv3(nk * ks, P), part3(part.size(), P);
    bwd<HD>(dq3.data(), dk3.data(), dv3.data(), dout.data(), q.data(), k.data(), v.data(), out.data(), lse.data(),
            c.lo.data(), c.hi.data(), nq, nk, nh, nkv, c.max_len, scale, D.data(), tiles.data(), part3.data(), true,
            true);
    diff = 0;
    for (size_t e = 0; e < dk.size(); e++)
      diff += memcmp(&dk[e], &dk3[e], 4) != 0 || memcmp(&dv[e], &dv3[e], 4) != 0;
    printf("  dk, dv by the fused kernel: %s\n", diff ? "FAIL" : "v1's bit for bit");
    if (diff) printf("    %zu of %zu differ\n", diff, dk.size()), fails++;
    cmp("dq fused", c, dq3, rdq, 1.2e-1);
    std::vector<double> dq1(dq.begin(), dq.end());
    cmp("dq fused vs v1", c, dq3, dq1, 1.2e-4);

    // Each key block's query tiles split between two blocks (FA_SPLIT_KV)
    // and each row tile's key tiles between two dq blocks (FA_SPLIT_DQ),
    // synchronous tiles and async (poisoned first; part sized for the
    // splits): dq, dk and dv against the f64 reference and against v1's —
    // the same bf16 products, each half summed apart and the halves added,
    // so within f32 rounding: at 1e-3 of the tolerance a tile taken twice
    // or left out fails by orders of magnitude.
    std::vector<double> dk1(dk.begin(), dk.end()), dv1(dv.begin(), dv.end());
    for (bool as : {false, true}) {
      std::vector<float> dq4(nq * qs, P), dk4(nk * ks, P), dv4(nk * ks, P), part4(4 * (size_t)nk * nh * HD, P);
      bwd<HD>(dq4.data(), dk4.data(), dv4.data(), dout.data(), q.data(), k.data(), v.data(), out.data(), lse.data(),
              c.lo.data(), c.hi.data(), nq, nk, nh, nkv, c.max_len, scale, D.data(), tiles.data(), part4.data(), as,
              false, true);
      cmp(as ? "dq split async" : "dq split", c, dq4, rdq, 1.2e-1);
      cmp(as ? "dq split async vs v1" : "dq split vs v1", c, dq4, dq1, 1.2e-4);
      cmp(as ? "dk split async" : "dk split", c, dk4, rdk, 1.2e-1);
      cmp(as ? "dv split async" : "dv split", c, dv4, rdv, 1.2e-1);
      cmp(as ? "dk split async vs v1" : "dk split vs v1", c, dk4, dk1, 1.2e-4);
      cmp(as ? "dv split async vs v1" : "dv split vs v1", c, dv4, dv1, 1.2e-4);
    }
  }

  // attn_merge, as the decoder merges a prompt's attention with a branch's:
  // each good row's range split in two, each half attended apart (an empty
  // second half — a one-key row — as the attention of nothing: out 0, lse
  // −inf), merged, against the same reference.
  std::vector<int32_t> mid(nq), bhi(nq);
  for (int i = 0; i < nq; i++) {
    mid[i] = valid(c, i) ? c.lo[i] + std::max(1, (c.hi[i] - c.lo[i]) / 2) : c.lo[i];
    bhi[i] = c.hi[i];
  }
  std::vector<float> o1(nq * qs, P), l1(nq * nh, P), o2(nq * qs, P), l2(nq * nh, P);
  fwd<HD>(o1.data(), l1.data(), q.data(), k.data(), v.data(), c.lo.data(), mid.data(), nq, nk, nh, nkv, c.max_len,
          scale);
  fwd<HD>(o2.data(), l2.data(), q.data(), k.data(), v.data(), mid.data(), bhi.data(), nq, nk, nh, nkv, c.max_len,
          scale);
  for (int i = 0; i < nq; i++)
    if (valid(c, i) && mid[i] == c.hi[i])
      for (int h = 0; h < nh; h++) {
        l2[i * nh + h] = -INFINITY;
        for (int x = 0; x < HD; x++) o2[i * qs + h * HD + x] = 0.f;
      }
  int64_t rows = (int64_t)nq * nh;
  launch((unsigned)((rows * 32 + 255) / 256), 1, 256, 0,
         [&] { k_attn_merge(o1.data(), l1.data(), o2.data(), l2.data(), rows, HD); });
  {
    double worst = 0;
    int badn = 0;
    for (size_t e = 0; e < rl.size(); e++) {
      if (std::isnan(rl[e]) != std::isnan(l1[e])) {
        badn++;
        continue;
      }
      if (!std::isnan(rl[e])) worst = std::max(worst, std::fabs(rl[e] - l1[e]) / 3e-2);
    }
    printf("  mlse worst/tol %.3f%s\n", worst, (badn || worst > 1) ? " FAIL" : "");
    if (badn || worst > 1) fails++;
  }
  cmp("mout", c, o1, ro, 6e-2);
}

static void dispatch(const Case &c) {
  switch (c.hd) {
    case 16: return run<16>(c);
    case 32: return run<32>(c);
    case 64: return run<64>(c);
    case 80: return run<80>(c);
    case 96: return run<96>(c);
    case 128: return run<128>(c);
  }
  abort();
}

int main(int argc, char **argv) {
  std::vector<Case> cases = {
      packed({1}, 2, 2, 64),
      packed({37}, 14, 2, 80),
      packed({20, 17}, 4, 2, 128),
      packed({37}, 4, 4, 128),
      packed({300}, 14, 2, 64),
      packed({120, 101, 79}, 6, 3, 80),
      packed({150, 150}, 12, 2, 128),
      decode(1, 37, 14, 2, 64),
      decode(9, 20, 12, 2, 128),
      decode(5, 0, 4, 4, 80),
      decode(1, 0, 2, 1, 80),
      window(100, 17, 8, 2, 64),
      bad(),
      packed({200, 57, 130}, 12, 2, 128),
      packed({130, 70}, 4, 1, 16),
      packed({100}, 6, 2, 32),
      packed({90, 9}, 4, 2, 96),
      packed({65}, 2, 2, 64),
      decode(3, 200, 14, 2, 64),
      window(150, 40, 4, 2, 80),
      poisoned(decode(1, 37, 14, 2, 64), 64),
      poisoned(decode(1, 100, 4, 2, 128), 256),
      bad_in_full(),
  };
  std::vector<int> which;
  for (int a = 1; a < argc; a++) which.push_back(atoi(argv[a]));
  for (int i = 0; i < (int)cases.size(); i++)
    if (which.empty() || std::find(which.begin(), which.end(), i) != which.end()) dispatch(cases[i]);
  printf("%d failures\n", fails);
  return fails != 0;
}
