// The LoRA adapter's kernels (lora.c) at one vector width, included once per
// width with LV (floats a vector), LACC (vector accumulators the width's
// registers hold beside a few operands), LATTR (the target attribute) and
// LNAME(x) (the width's suffix) defined. Written with GCC's vector
// extensions: a scalar times a vector broadcasts it, and a·b + c contracts
// to an FMA (-std=gnu11 leaves -ffp-contract=fast on).

typedef float LNAME(vf) __attribute__((vector_size(4 * LV), aligned(4)));
#define VF LNAME(vf)
#define AI __attribute__((always_inline)) inline

// u_rows: u's RB rows (r = NV·LV apart) = x's RB rows (ldx apart) · at
// (in, r), the rows' accumulators in registers over all of k.
static AI LATTR void LNAME(u_rows)(const int RB, const int NV, float *u, const float *x, int64_t ldx,
                                   const float *at, int64_t in, int64_t r) {
	VF acc[LACC][4];
#pragma GCC unroll 16
	for (int i = 0; i < RB; i++)
#pragma GCC unroll 4
		for (int v = 0; v < NV; v++) acc[i][v] = (VF){0};
	for (int64_t k = 0; k < in; k++) {
		VF a[4];
#pragma GCC unroll 4
		for (int v = 0; v < NV; v++) a[v] = *(const VF *)(at + k * r + v * LV);
#pragma GCC unroll 16
		for (int i = 0; i < RB; i++) {
			float xv = x[i * ldx + k];
#pragma GCC unroll 4
			for (int v = 0; v < NV; v++) acc[i][v] += xv * a[v];
		}
	}
#pragma GCC unroll 16
	for (int i = 0; i < RB; i++)
#pragma GCC unroll 4
		for (int v = 0; v < NV; v++) *(VF *)(u + i * r + v * LV) = acc[i][v];
}

#define U_NV(nv)                                                                         \
	do {                                                                                 \
		int64_t i = 0;                                                                   \
		for (; i + LACC / (nv) <= n; i += LACC / (nv))                                   \
			LNAME(u_rows)(LACC / (nv), nv, u + i * r, x + i * ldx, ldx, at, in, r);     \
		for (; i < n; i++) LNAME(u_rows)(1, nv, u + i * r, x + i * ldx, ldx, at, in, r); \
	} while (0)

static LATTR void LNAME(lora_u)(float *u, const float *x, int64_t ldx, const float *at, int64_t n, int64_t in,
                                int64_t r) {
	switch (r / LV) {
	case 1: U_NV(1); break;
	case 2: U_NV(2); break;
	case 3: U_NV(3); break;
	default: U_NV(4); break;
	}
}
#undef U_NV

// out_block: for OB rows o of dB (from o, r apart) and tokens [t0, t1):
// dB[o] += s·Σ_t dy[t][o]·u[t], du[t] (+)= Σ_o dy[t][o]·B[o] — each dy
// value read once for both. dB's rows stay in registers over the tokens.
static AI LATTR void LNAME(out_block)(const int OB, const int NV, float *du, int set, float *dB, const float *dy,
                                      int64_t ldy, const float *B, const float *u, float s, int64_t t0, int64_t t1,
                                      int64_t o, int64_t r) {
	VF acc[LACC][4];
#pragma GCC unroll 16
	for (int b = 0; b < OB; b++)
#pragma GCC unroll 4
		for (int v = 0; v < NV; v++) acc[b][v] = *(const VF *)(dB + (o + b) * r + v * LV);
	// du's row sums over the block in DP chains, not one: a chain of OB
	// dependent FMAs a token bound the loop at its latency. One where the
	// block is two rows or fewer (AVX2 at r = 24, 32), whose registers are
	// full.
	const int DP = OB <= 2 ? 1 : NV == 1 ? 4 : 2;
	for (int64_t t = t0; t < t1; t++) {
		VF su[4], d[4][4];
#pragma GCC unroll 4
		for (int v = 0; v < NV; v++) {
			su[v] = s * *(const VF *)(u + t * r + v * LV);
			d[0][v] = set ? (VF){0} : *(const VF *)(du + t * r + v * LV);
#pragma GCC unroll 4
			for (int c = 1; c < DP; c++) d[c][v] = (VF){0};
		}
		const float *yr = dy + t * ldy + o;
#pragma GCC unroll 16
		for (int b = 0; b < OB; b++) {
			float y = yr[b];
#pragma GCC unroll 4
			for (int v = 0; v < NV; v++) {
				acc[b][v] += y * su[v];
				d[b % DP][v] += y * *(const VF *)(B + (o + b) * r + v * LV);
			}
		}
#pragma GCC unroll 4
		for (int v = 0; v < NV; v++) {
#pragma GCC unroll 4
			for (int c = 1; c < DP; c++) d[0][v] += d[c][v];
			*(VF *)(du + t * r + v * LV) = d[0][v];
		}
	}
#pragma GCC unroll 16
	for (int b = 0; b < OB; b++)
#pragma GCC unroll 4
		for (int v = 0; v < NV; v++) *(VF *)(dB + (o + b) * r + v * LV) = acc[b][v];
}

// Tokens go in chunks (LORA_TC_OUT, LORA_TC_IN) so that each of a chunk's rows of dy (or
// x) is read along its length, one vector after the next, as the blocks
// advance: a block over all tokens at once read one vector a row, each in
// another page, and ran at a third of the speed.
#define OUT_NV(nv)                                                                                   \
	do {                                                                                             \
		const int ob = LACC / (nv);                                                                  \
		for (int64_t t0 = 0; t0 < n; t0 += LORA_TC_OUT) {                                            \
			int64_t t1 = t0 + LORA_TC_OUT < n ? t0 + LORA_TC_OUT : n;                                \
			int64_t o = o0;                                                                          \
			for (; o + ob <= o1; o += ob)                                                            \
				LNAME(out_block)(ob, nv, du, o == o0, dB, dy, ldy, B, u, s, t0, t1, o, r);           \
			for (; o < o1; o++) LNAME(out_block)(1, nv, du, o == o0, dB, dy, ldy, B, u, s, t0, t1, o, r); \
		}                                                                                            \
	} while (0)

static LATTR void LNAME(lora_out)(float *du, float *dB, const float *dy, int64_t ldy, const float *B,
                                  const float *u, float s, int64_t n, int64_t o0, int64_t o1, int64_t r) {
	switch (r / LV) {
	case 1: OUT_NV(1); break;
	case 2: OUT_NV(2); break;
	case 3: OUT_NV(3); break;
	default: OUT_NV(4); break;
	}
}
#undef OUT_NV

// in_block: for JB rows j of dA (from j0) at columns [k, k+LV) and tokens
// [t0, t1): dA[j][k..] += Σ_t du[t][j]·x[t][k..], and dst[t] = src[t] (or
// 0 without src) + Σ_j du[t][j]·A[j][k..] — each du value broadcast once
// for both. dst and src are out's columns or a chunk's partial sums.
static AI LATTR void LNAME(in_block)(const int JB, float *dA, const float *src, int64_t lds, float *dst,
                                     int64_t ldd, const float *du, const float *x, int64_t ldx, const float *A,
                                     int64_t t0, int64_t t1, int64_t k, int64_t j0, int64_t in, int64_t r) {
	VF acc[LACC];
#pragma GCC unroll 16
	for (int b = 0; b < JB; b++) acc[b] = *(const VF *)(dA + (j0 + b) * in + k);
	for (int64_t t = t0; t < t1; t++) {
		VF xv = *(const VF *)(x + t * ldx + k);
		// The row's sum in four chains: one chain of JB dependent FMAs a
		// token bound the loop at its latency.
		VF ov[4] = {src ? *(const VF *)(src + (t - t0) * lds) : (VF){0}, {0}, {0}, {0}};
		const float *g = du + t * r + j0;
#pragma GCC unroll 16
		for (int b = 0; b < JB; b++) {
			acc[b] += g[b] * xv;
			ov[b % 4] += g[b] * *(const VF *)(A + (j0 + b) * in + k);
		}
		*(VF *)(dst + (t - t0) * ldd) = (ov[0] + ov[1]) + (ov[2] + ov[3]);
	}
#pragma GCC unroll 16
	for (int b = 0; b < JB; b++) *(VF *)(dA + (j0 + b) * in + k) = acc[b];
}

// lora_in: out may be x itself (LoRA dropout's buffer holds the dropped x,
// then du·A): a column block of out is written only by the last block of
// dA's rows, after every block has read the same columns of x; the blocks
// before carry their sums in part.
static LATTR void LNAME(lora_in)(float *dA, float *out, int add, const float *du, const float *x, int64_t ldx,
                                 const float *A, int64_t n, int64_t in, int64_t k0, int64_t k1, int64_t r) {
	float part[LORA_TC_IN * LV];
	int64_t kv = k0 + (k1 - k0) / LV * LV; // columns in whole vectors; r is a multiple of LACC
	for (int64_t t0 = 0; t0 < n; t0 += LORA_TC_IN) {
		int64_t t1 = t0 + LORA_TC_IN < n ? t0 + LORA_TC_IN : n;
		for (int64_t k = k0; k < kv; k += LV)
			for (int64_t j0 = 0; j0 < r; j0 += LACC) {
				int first = j0 == 0, last = j0 + LACC >= r;
				const float *src = first ? (add ? out + t0 * in + k : NULL) : part;
				float *dst = last ? out + t0 * in + k : part;
				LNAME(in_block)(LACC, dA, src, first ? in : LV, dst, last ? in : LV, du, x, ldx, A, t0, t1, k, j0,
				                in, r);
			}
	}
	if (kv < k1) lora_in_tail(dA, out, add, du, x, ldx, A, n, in, kv, k1, r);
}

#undef AI
#undef VF
