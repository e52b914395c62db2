//go:build cgo

// AMX tiles for the bf16 GEMM (gemm_bf16.c): on Xeons from Sapphire Rapids
// on, TDPBF16PS multiplies a 16×32 bf16 tile by a 32×16 one into a 16×16
// f32 tile, 16 times the arithmetic of AVX-512 BF16's vdpbf16ps per cycle,
// whose rate there is below the f32 FMA's. The products and sums are those
// of vdpbf16ps — bf16 pairs multiplied exactly, summed in f32, subnormal
// inputs read as zero and subnormal results flushed — in another order.
//
// The packed strip of gemm_bf16.c (for each pair of k, 64 columns × 2
// values) is already AMX's layout for its second operand: a tile of 16
// pairs × 16 columns is 16 rows of 64 bytes, 256 bytes apart. The first
// operand's tiles are 16 rows of a × 32 values, straight from a.
#include "kernels.h"

#include <string.h>

#if defined(__x86_64__) && defined(__linux__) && !defined(DT_NO_X86)
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#define TAMX __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw")))

static int amx_ok;  // the CPU, the OS and this process allow AMX-BF16
static int amx_use; // and the GEMM uses it (dt_amx_use)

int dt_amx_init(void) {
	unsigned a, b, c, d;
	if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) return 0; // OSXSAVE: xgetbv is there
	if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
	if (!(d & (1u << 22)) || !(d & (1u << 24))) return 0; // AMX-BF16, AMX-TILE
	unsigned lo, hi;
	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	if ((lo & (3u << 17)) != (3u << 17)) return 0; // the OS saves XTILECFG and XTILEDATA
	// Linux hands out the 8 KiB tile state only on request, per process
	// (ARCH_REQ_XCOMP_PERM for XFEATURE_XTILEDATA); without it the first
	// tile instruction would kill the process.
	if (syscall(SYS_arch_prctl, 0x1023, 18) != 0) return 0;
	amx_ok = amx_use = 1;
	return 1;
}

int dt_amx_use(int on) {
	int was = amx_use;
	amx_use = on && amx_ok;
	return was;
}

int dt_amx_active(void) { return amx_use; }

// The tile configuration (palette 1): every tile used is 16 rows of 64
// bytes — tmm0–3 the accumulators, tmm4–5 a's rows, tmm6–7 the strip's.
struct tilecfg {
	uint8_t palette, start_row, reserved[14];
	uint16_t colsb[16];
	uint8_t rows[16];
} __attribute__((aligned(64)));

TAMX void dt_amx_begin(void) {
	struct tilecfg cfg;
	memset(&cfg, 0, sizeof cfg);
	cfg.palette = 1;
	for (int t = 0; t < 8; t++) cfg.colsb[t] = 64, cfg.rows[t] = 16;
	// Not GCC 12's _tile_loadconfig: its asm names only the first 8 bytes
	// as read, and the stores to the rest were dropped as dead.
	__asm__ volatile("ldtilecfg %0" ::"m"(cfg));
}

// dt_amx_end gives the tile state back, so the thread's context switches
// and the core's clocks are as before.
TAMX void dt_amx_end(void) { _tile_release(); }

// dt_amx_rows32 sets (or with add, adds to) c's first mr (≤ 32) rows × nb
// columns the products of a's 32 rows (lda apart) and the packed strip p
// over its first qn pairs of k (a multiple of 16). nb ≤ 64; the strip is
// zero past nb. a's rows past mr are read and their products dropped.
TAMX void dt_amx_rows32(const uint16_t *a, int64_t lda, const uint16_t *p, int64_t qn, float *c, int64_t ldc,
                        int64_t nb, int64_t mr, int add) {
	float t[32 * 64] __attribute__((aligned(64)));
	const int64_t sa = 2 * lda, sb = 4 * 64; // bytes between rows of a and of the strip
	for (int h = 0; 16 * h < nb; h += 2) {
		_tile_zero(0);
		_tile_zero(1);
		_tile_zero(2);
		_tile_zero(3);
		for (int64_t q = 0; q < qn; q += 16) {
			_tile_loadd(4, a + 2 * q, sa);
			_tile_loadd(5, a + 16 * lda + 2 * q, sa);
			_tile_loadd(6, p + 2 * (q * 64 + 16 * h), sb);
			_tile_loadd(7, p + 2 * (q * 64 + 16 * h + 16), sb);
			_tile_dpbf16ps(0, 4, 6);
			_tile_dpbf16ps(1, 4, 7);
			_tile_dpbf16ps(2, 5, 6);
			_tile_dpbf16ps(3, 5, 7);
		}
		_tile_stored(0, t + 16 * h, 4 * 64);
		_tile_stored(1, t + 16 * h + 16, 4 * 64);
		_tile_stored(2, t + 16 * 64 + 16 * h, 4 * 64);
		_tile_stored(3, t + 16 * 64 + 16 * h + 16, 4 * 64);
	}
	for (int i = 0; i < mr; i++) {
		float *ci = c + i * ldc;
		for (int64_t j = 0; j < nb; j += 16) {
			int64_t left = nb - j;
			__mmask16 msk = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
			__m512 r = _mm512_load_ps(t + i * 64 + j);
			if (add) r = _mm512_add_ps(r, _mm512_maskz_loadu_ps(msk, ci + j));
			_mm512_mask_storeu_ps(ci + j, msk, r);
		}
	}
}

#else

int dt_amx_init(void) { return 0; }
int dt_amx_use(int on) {
	(void)on;
	return 0;
}
int dt_amx_active(void) { return 0; }
void dt_amx_begin(void) {}
void dt_amx_end(void) {}
void dt_amx_rows32(const uint16_t *a, int64_t lda, const uint16_t *p, int64_t qn, float *c, int64_t ldc, int64_t nb,
                   int64_t mr, int add) {
	(void)a, (void)lda, (void)p, (void)qn, (void)c, (void)ldc, (void)nb, (void)mr, (void)add;
}

#endif
