// ref.h: what the emulation drivers share — a failure count, seeded normal
// inputs, and the comparisons against f64 references (relative to the
// wanted values' rms, NaNs and infinities matched) or bit for bit. Each
// driver is its own program: these are its own statics.
#pragma once
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

static int fails = 0;
static std::mt19937 rng(11);

static std::vector<float> randn(size_t n, float sd = 1.f, float mean = 0.f) {
  std::normal_distribution<float> N(mean, sd);
  std::vector<float> v(n);
  for (float &x : v) x = N(rng);
  return v;
}
static std::vector<double> widen(const std::vector<float> &v) { return std::vector<double>(v.begin(), v.end()); }

static void report(const std::string &what, double worst, size_t bad, size_t first, double got, double want) {
  printf("  %-44s worst/tol %.3g%s", what.c_str(), worst, bad ? " FAIL" : "");
  if (bad) {
    fails++;
    printf(" (%zu bad, first at %zu: got %.9g want %.9g)", bad, first, got, want);
  }
  printf("\n");
}

// got against want: each element within tol·(rms(want) + |want|) (rms over
// the finite wants); a NaN wanted must be NaN, an infinity equal.
static void check(const std::string &what, const float *got, const std::vector<double> &want, double tol) {
  double ss = 0;
  size_t nf = 0;
  for (double w : want)
    if (std::isfinite(w)) ss += w * w, nf++;
  double rms = std::sqrt(ss / std::max<size_t>(nf, 1)), worst = 0;
  size_t bad = 0, first = 0;
  for (size_t i = 0; i < want.size(); i++) {
    double g = got[i], w = want[i], err;
    if (std::isnan(w))
      err = std::isnan(g) ? 0 : INFINITY;
    else if (!std::isfinite(w))
      err = g == w ? 0 : INFINITY;
    else
      err = g == w ? 0 : std::fabs(g - w) / (tol * (rms + std::fabs(w)));
    if (!(err <= 1) && bad++ == 0) first = i;
    if (!(err <= worst)) worst = std::isnan(err) ? INFINITY : err;
  }
  char t[32];
  snprintf(t, sizeof t, " (tol %g)", tol);
  report(what + t, worst, bad, first, bad ? got[first] : 0,
         bad ? want[first] : 0);
}
static void check(const std::string &what, const std::vector<float> &got, const std::vector<double> &want, double tol) {
  check(what, got.data(), want, tol);
}

// Bit for bit (any NaN matching any NaN): what one IEEE operation or a copy
// gives on the device and here alike.
static void check_exact(const std::string &what, const float *got, const std::vector<float> &want) {
  size_t bad = 0, first = 0;
  for (size_t i = 0; i < want.size(); i++) {
    bool ok = std::isnan(want[i]) ? std::isnan(got[i]) : memcmp(&got[i], &want[i], 4) == 0;
    if (!ok && bad++ == 0) first = i;
  }
  report(what + " (exact)", bad ? INFINITY : 0, bad, first, bad ? got[first] : 0, bad ? want[first] : 0);
}
static void check_exact(const std::string &what, const std::vector<float> &got, const std::vector<float> &want) {
  check_exact(what, got.data(), want);
}
