//go:build cuda

package cuda_test

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"

	"distill/core/tensor"
	"distill/core/train"
	"distill/cuda"
)

// AttnFwdGemm / AttnBwdGemm (the tensor-core attention) against three
// references: an f64 CPU reference here that takes any ranges (bad ones
// included), core/train's attention (packed causal segments, what
// TestAttentionParity uses) or tensor.CPU's decode attention, and the simple
// kernel (AttnFwd / AttnBwd). Each case also runs with the scratch bound
// lowered so that heads, then query rows, go in chunks with a remainder.
//
// Tolerance: the GEMMs round their f32 operands to TF32 (10 stored mantissa
// bits: 2⁻¹¹ relative if rounded to nearest, 2⁻¹⁰ if truncated) and
// accumulate in f32. A score of hd terms then errs by ~1e-3 (scores are of
// size ~1), which moves P, out and lse by about as much; backward adds dP =
// dO·vᵀ (the same), P rebuilt from an lse that carries the forward's error,
// the cancellation in dP − rowsum(dO∘O), and dk, dv summing over the group's
// heads and rows. Each element's error is a random walk over its terms, so it
// is measured against the tensor's RMS as well as the element itself:
// |got − want| ≤ tol·(|want| + max(rms(want), 0.1)); the 0.1 floor is for
// tensors that are 0 in exact arithmetic (one key attended: dS = 0, so dq =
// dk = 0, and TF32 leaves ~2e-3 there). A CPU emulation of exactly these
// products on every case below (TestAttentionGemmEmulated: TF32 by
// truncation, f32 sums, f32 softmax) gave worst ratios of 6.9e-3 for out, 1.3e-2 for dq, 6.4e-3 for dk and dv,
// and 2.7e-3 absolute for lse (round to nearest: 4.3e-3, 7.6e-3, 6.7e-3,
// 1.1e-3). The tolerances are about 4× those, and still an index or mask
// mistake (errors the size of the values, ratios ≳ 0.3; a segment's first
// rows attend one or two keys, so an off-by-one range changes them by ~50%)
// fails by an order of magnitude.
const (
	agFwdTol = 2.5e-2 // out
	agBwdTol = 5e-2   // dq, dk, dv
	agLseTol = 1e-2   // lse, absolute (it is m + log Σ, of size ~1–6, erring as a score)
)

// agNear compares with |got − want| ≤ tol·(|want| + max(rms(want), 0.1)).
func agNear(t *testing.T, name string, got, want []float32, tol float64) {
	t.Helper()
	near(t, name, got, want, tol, tol*max(agRMS(want), 0.1))
}

func agRMS(want []float32) float64 {
	var ss float64
	n := 0
	for _, w := range want {
		if !math.IsNaN(float64(w)) {
			ss += float64(w) * float64(w)
			n++
		}
	}
	return math.Sqrt(ss / float64(max(n, 1)))
}

// agLocate is agNear for a (rows, heads·hd) tensor that, on failure, also
// says where the bad elements are: how many, which rows and heads (a wrong
// chunk, mask or stride shows as a pattern there).
func agLocate(t *testing.T, name string, got, want []float32, tol, atol float64, heads, hd int) {
	t.Helper()
	var bad []string
	n, rowsBad, headsBad := 0, map[int]bool{}, map[int]bool{}
	for e := range want {
		g, w := float64(got[e]), float64(want[e])
		if math.IsNaN(g) == math.IsNaN(w) && !(math.Abs(g-w) > atol+tol*math.Abs(w)) {
			continue
		}
		n++
		row, h, c := e/(heads*hd), e%(heads*hd)/hd, e%hd
		rowsBad[row], headsBad[h] = true, true
		if len(bad) < 8 {
			bad = append(bad, fmt.Sprintf("[row %d head %d col %d] %v want %v", row, h, c, got[e], want[e]))
		}
	}
	if n > 0 {
		t.Logf("%s: %d of %d elements out of tolerance, in %d rows and %d heads (of %d); first: %s",
			name, n, len(want), len(rowsBad), len(headsBad), heads, strings.Join(bad, "; "))
	}
	near(t, name, got, want, tol, atol)
}

// agCase is one attention call: query i attends keys [lo[i], hi[i]).
type agCase struct {
	name                string
	nq, nk, nH, nKV, hd int
	maxLen              int
	lo, hi              []int
	segStart            []int // packed causal segments: core/train's reference applies
	pos0                int   // decode (decodeRef): query t is at position pos0+t
	decodeRef           bool
}

func packedCase(segs []int, nH, nKV, hd int) agCase {
	n, maxLen, segStart := attnCase{segs: segs}.stream()
	hi := make([]int, n)
	for i := range hi {
		hi[i] = i + 1
	}
	name := "packed"
	for i, L := range segs {
		name += map[bool]string{true: "+", false: ""}[i > 0] + strconv.Itoa(L)
	}
	return agCase{name: shapeName("%s_h%d_kv%d_hd%d", name, nH, nKV, hd), nq: n, nk: n, nH: nH, nKV: nKV, hd: hd,
		maxLen: maxLen, lo: segStart, hi: hi, segStart: segStart}
}

// decodeCase: T queries after pos0 cached positions; k, v hold 5 rows past
// pos0+T that no query may read (masked, not skipped: they are finite).
func decodeCase(T, pos0, nH, nKV, hd int) agCase {
	lo, hi := make([]int, T), make([]int, T)
	for t := range hi {
		hi[t] = pos0 + t + 1
	}
	return agCase{name: shapeName("decode_T%d_pos%d_h%d_kv%d_hd%d", T, pos0, nH, nKV, hd), nq: T, nk: pos0 + T + 5,
		nH: nH, nKV: nKV, hd: hd, maxLen: pos0 + T, lo: lo, hi: hi, pos0: pos0, decodeRef: true}
}

// windowCase: causal with a sliding window of w keys (lo > 0 mid-stream).
func windowCase(n, w, nH, nKV, hd int) agCase {
	lo, hi := make([]int, n), make([]int, n)
	for i := range hi {
		lo[i], hi[i] = max(0, i-w+1), i+1
	}
	return agCase{name: shapeName("window%d_n%d_h%d_kv%d_hd%d", w, n, nH, nKV, hd), nq: n, nk: n, nH: nH, nKV: nKV,
		hd: hd, maxLen: w, lo: lo, hi: hi}
}

// badCase: causal rows with some bad ranges (empty, past nk, negative, over
// maxLen), which give NaN rows in out, lse and dq and nothing in dk, dv.
func badCase() agCase {
	const n = 40
	c := windowCase(n, n, 4, 2, 64)
	c.name, c.maxLen = "bad_ranges_n40_h4_kv2_hd64", 38 // rows 38, 39: longer than maxLen
	c.lo[3], c.hi[3] = 3, 3                             // empty
	c.hi[5] = n + 1                                     // past nk
	c.lo[7] = -1                                        // negative
	c.lo[9], c.hi[9] = 9, 8                             // reversed
	c.lo[11], c.hi[11] = 5, math.MinInt32               // garbage: hi − lo would overflow an int
	return c
}

func (c agCase) valid(i int) bool {
	return c.lo[i] >= 0 && c.hi[i] <= c.nk && c.hi[i] > c.lo[i] && c.hi[i]-c.lo[i] <= c.maxLen
}

// ref64 is attention in f64 over any ranges; a bad row gets NaN in out, lse
// and dq, and adds nothing to dk, dv (the kernels' convention).
func (c agCase) ref64(q, k, v, dout []float32, scale float64) (out, lse, dq, dk, dv []float32) {
	qs, ks, group := c.nH*c.hd, c.nKV*c.hd, c.nH/c.nKV
	out, lse, dq = make([]float32, c.nq*qs), make([]float32, c.nq*c.nH), make([]float32, c.nq*qs)
	dk64, dv64 := make([]float64, c.nk*ks), make([]float64, c.nk*ks)
	for i := 0; i < c.nq; i++ {
		for h := 0; h < c.nH; h++ {
			qo, ko := i*qs+h*c.hd, (h/group)*c.hd
			if !c.valid(i) {
				for x := 0; x < c.hd; x++ {
					out[qo+x], dq[qo+x] = float32(math.NaN()), float32(math.NaN())
				}
				lse[i*c.nH+h] = float32(math.NaN())
				continue
			}
			lo, hi := c.lo[i], c.hi[i]
			s := make([]float64, hi-lo)
			m := math.Inf(-1)
			for j := lo; j < hi; j++ {
				var d float64
				for x := 0; x < c.hd; x++ {
					d += float64(q[qo+x]) * float64(k[j*ks+ko+x])
				}
				s[j-lo] = d * scale
				m = max(m, s[j-lo])
			}
			var sum float64
			for j := range s {
				s[j] = math.Exp(s[j] - m)
				sum += s[j]
			}
			o := make([]float64, c.hd)
			for j := lo; j < hi; j++ {
				s[j-lo] /= sum
				for x := 0; x < c.hd; x++ {
					o[x] += s[j-lo] * float64(v[j*ks+ko+x])
				}
			}
			lse[i*c.nH+h] = float32(m + math.Log(sum))
			var dd float64 // rowsum(dO∘O)
			for x := 0; x < c.hd; x++ {
				out[qo+x] = float32(o[x])
				dd += float64(dout[qo+x]) * o[x]
			}
			g := make([]float64, c.hd)
			for j := lo; j < hi; j++ {
				p := s[j-lo]
				var dp float64
				for x := 0; x < c.hd; x++ {
					dp += float64(dout[qo+x]) * float64(v[j*ks+ko+x])
				}
				ds := p * (dp - dd) * scale
				for x := 0; x < c.hd; x++ {
					g[x] += ds * float64(k[j*ks+ko+x])
					dk64[j*ks+ko+x] += ds * float64(q[qo+x])
					dv64[j*ks+ko+x] += p * float64(dout[qo+x])
				}
			}
			for x := 0; x < c.hd; x++ {
				dq[qo+x] = float32(g[x])
			}
		}
	}
	dk, dv = make([]float32, len(dk64)), make([]float32, len(dv64))
	for i := range dk64 {
		dk[i], dv[i] = float32(dk64[i]), float32(dv64[i])
	}
	return
}

// poison is a device buffer of n NaNs: an element a kernel does not write
// stays NaN and fails the comparison.
func poison(t *testing.T, d *cuda.Device, n int) *cuda.Buffer {
	t.Helper()
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(math.NaN())
	}
	return up(t, d, cuda.F32, v)
}

type agResult struct{ out, lse, dq, dk, dv []float32 }

func (r agResult) check(t *testing.T, c agCase, what string, want agResult) {
	t.Helper()
	r.checkTol(t, c, what, want, agFwdTol, agBwdTol, agLseTol)
}

// checkTol is check with the tolerances given: fwd for out, bwd for dq, dk
// and dv (relative, agNear's way), lse absolute.
func (r agResult) checkTol(t *testing.T, c agCase, what string, want agResult, fwd, bwd, lse float64) {
	t.Helper()
	at := func(want []float32, tol float64) float64 { return tol * max(agRMS(want), 0.1) } // agNear's atol
	agLocate(t, what+" out", r.out, want.out, fwd, at(want.out, fwd), c.nH, c.hd)
	agLocate(t, what+" lse", r.lse, want.lse, 0, lse, c.nH, 1)
	agLocate(t, what+" dq", r.dq, want.dq, bwd, at(want.dq, bwd), c.nH, c.hd)
	agLocate(t, what+" dk", r.dk, want.dk, bwd, at(want.dk, bwd), c.nKV, c.hd)
	agLocate(t, what+" dv", r.dv, want.dv, bwd, at(want.dv, bwd), c.nKV, c.hd)
}

func agCases() []agCase {
	return []agCase{
		packedCase([]int{1}, 2, 2, 64),            // NQ 1, MHA
		packedCase([]int{37}, 14, 2, 80),          // GQA 7:1 (Qwen2.5-0.5B heads), hd 80
		packedCase([]int{20, 17}, 4, 2, 128),      // two segments, GQA 2:1
		packedCase([]int{37}, 4, 4, 128),          // MHA, hd 128
		packedCase([]int{300}, 14, 2, 64),         // NQ 300, GQA 7:1
		packedCase([]int{120, 101, 79}, 6, 3, 80), // three segments, GQA 2:1
		packedCase([]int{150, 150}, 12, 2, 128),   // Qwen2.5-1.5B heads (6:1)
		decodeCase(1, 37, 14, 2, 64),
		decodeCase(9, 20, 12, 2, 128),
		decodeCase(5, 0, 4, 4, 80),
		decodeCase(1, 0, 2, 1, 80), // one key attended of six
		windowCase(100, 17, 8, 2, 64),
		badCase(),
	}
}

// The CPU references are checked against each other first (here too, where
// no device is visible), then the kernels against them.
func TestAttentionGemmParity(t *testing.T) {
	for _, c := range agCases() {
		t.Run(c.name, func(t *testing.T) {
			qn, kn := c.nq*c.nH*c.hd, c.nk*c.nKV*c.hd
			q, k, v, dout, scale, want := c.inputs(uint64(c.nq*131 + c.nk*7 + c.nH*c.hd))

			// The f64 reference against core/train's and tensor.CPU's, as
			// a check on it (both f32 with f64 softmax sums: 1e-4).
			var tr *agResult
			if c.segStart != nil {
				out, lse := make([]float32, qn), make([]float32, c.nq*c.nH)
				train.AttentionForward(out, lse, q, k, v, c.nq, c.nH, c.nKV, c.hd, c.segStart, scale)
				dq, dk, dv := make([]float32, qn), make([]float32, kn), make([]float32, kn)
				train.AttentionBackward(dq, dk, dv, dout, q, k, v, out, lse, c.nq, c.nH, c.nKV, c.hd, c.segStart, scale)
				tr = &agResult{out, lse, dq, dk, dv}
				agNear(t, "f64 ref vs train out", want.out, tr.out, 1e-4)
				near(t, "f64 ref vs train lse", want.lse, tr.lse, 0, 1e-5)
				agNear(t, "f64 ref vs train dq", want.dq, tr.dq, 1e-4)
				agNear(t, "f64 ref vs train dk", want.dk, tr.dk, 1e-4)
				agNear(t, "f64 ref vs train dv", want.dv, tr.dv, 1e-4)
			}
			if c.decodeRef {
				out := make([]float32, qn)
				tensor.CPU{}.Attention(out, q, k, v, c.nq, c.pos0, c.nH, c.nKV, c.hd, scale)
				agNear(t, "f64 ref vs tensor.CPU out", want.out, out, 1e-4)
			}

			emulatedSkip(t, c)
			d := device(t)
			if tr != nil {
				gemmRun(t, d, c, q, k, v, dout, scale).check(t, c, "gemm vs train", *tr)
			}

			// The simple kernel, its own outputs into its backward.
			simple := attnRun(t, d, c, q, k, v, dout, scale, d.AttnFwd, d.AttnBwd)
			// The simple kernel against the f64 reference checks that the
			// reference's conventions (bad rows) are the kernel's. Its
			// error sources are TestAttentionParity's (f32 dots and sums:
			// 1e-5 forward, 1e-4 backward, relative and absolute), with more
			// terms here (up to 7 heads × 300 rows into one dk row), so 2×
			// and 3× those.
			near(t, "simple vs f64 ref out", simple.out, want.out, 2e-5, 2e-5)
			near(t, "simple vs f64 ref lse", simple.lse, want.lse, 2e-5, 2e-5)
			near(t, "simple vs f64 ref dq", simple.dq, want.dq, 3e-4, 3e-4)
			near(t, "simple vs f64 ref dk", simple.dk, want.dk, 3e-4, 3e-4)
			near(t, "simple vs f64 ref dv", simple.dv, want.dv, 3e-4, 3e-4)

			defer func(b int) { cuda.AttnGemmScratchBytes = b }(cuda.AttnGemmScratchBytes)
			for _, mode := range c.scratchModes(cuda.AttnGemmScratchBytes) {
				cuda.AttnGemmScratchBytes = mode.scratch
				t.Run(mode.name, func(t *testing.T) {
					got := gemmRun(t, d, c, q, k, v, dout, scale)
					got.check(t, c, "gemm vs f64", want)
					got.check(t, c, "gemm vs simple", simple)
				})
			}
		})
	}
}

func (c agCase) shape(t *testing.T, d *cuda.Device, scale float32) cuda.AttnShape {
	return cuda.AttnShape{NQ: c.nq, NK: c.nk, NH: c.nH, NKV: c.nKV, HD: c.hd, MaxLen: c.maxLen,
		Lo: up(t, d, cuda.I32, i32s(c.lo)), Hi: up(t, d, cuda.I32, i32s(c.hi)), Scale: scale}
}

// inputs are the case's random q, k, v and dout (from seed), its scale
// 1/√hd, and the f64 reference's results on them.
func (c agCase) inputs(seed uint64) (q, k, v, dout []float32, scale float32, want agResult) {
	r := rng(seed)
	qn, kn := c.nq*c.nH*c.hd, c.nk*c.nKV*c.hd
	q, k, v, dout = randn(r, qn, 1), randn(r, kn, 1), randn(r, kn, 1), randn(r, qn, 1)
	scale = float32(1 / math.Sqrt(float64(c.hd)))
	want.out, want.lse, want.dq, want.dk, want.dv = c.ref64(q, k, v, dout, float64(scale))
	return
}

type (
	attnFwd func(out, lse, q, k, v *cuda.Buffer, s cuda.AttnShape) error
	attnBwd func(dq, dk, dv, dout, q, k, v, out, lse *cuda.Buffer, s cuda.AttnShape) error
)

// attnRun runs an attention's forward then its backward (on its own out and
// lse, as a training step does) into poisoned outputs: an element a kernel
// does not write stays NaN (dk, dv included: the ops zero or set them).
func attnRun(t *testing.T, d *cuda.Device, c agCase, q, k, v, dout []float32, scale float32, fwd attnFwd, bwd attnBwd) agResult {
	t.Helper()
	qn, kn := c.nq*c.nH*c.hd, c.nk*c.nKV*c.hd
	s := c.shape(t, d, scale)
	qd, kd, vd, dod := up(t, d, cuda.F32, q), up(t, d, cuda.F32, k), up(t, d, cuda.F32, v), up(t, d, cuda.F32, dout)
	od, ld := poison(t, d, qn), poison(t, d, c.nq*c.nH)
	ok(t, fwd(od, ld, qd, kd, vd, s))
	dqd, dkd, dvd := poison(t, d, qn), poison(t, d, kn), poison(t, d, kn)
	ok(t, bwd(dqd, dkd, dvd, dod, qd, kd, vd, od, ld, s))
	ok(t, d.Sync())
	return agResult{down(t, od), down(t, ld), down(t, dqd), down(t, dkd), down(t, dvd)}
}

// gemmRun is attnRun of AttnFwdGemm and AttnBwdGemm.
func gemmRun(t *testing.T, d *cuda.Device, c agCase, q, k, v, dout []float32, scale float32) agResult {
	t.Helper()
	return attnRun(t, d, c, q, k, v, dout, scale, d.AttnFwdGemm, d.AttnBwdGemm)
}

// Argument checks fail before any device work, naming the op and argument.
func TestAttentionGemmArgs(t *testing.T) {
	d := device(t)
	lo, hi := up(t, d, cuda.I32, []int32{0}), up(t, d, cuda.I32, []int32{1})
	x := zeros(t, d, cuda.F32, 64)
	s := cuda.AttnShape{NQ: 1, NK: 1, NH: 3, NKV: 2, HD: 8, MaxLen: 1, Lo: lo, Hi: hi, Scale: 1}
	if err := d.AttnFwdGemm(x, x, x, x, x, s); err == nil || !strings.Contains(err.Error(), "attn_fwd_gemm: 3 heads over 2 KV heads") {
		t.Errorf("AttnFwdGemm with 3 heads over 2 KV heads: %v", err)
	}
	s.NH, s.NKV = 2, 1
	lse := zeros(t, d, cuda.F32, 1) // NQ·NH = 2 needed
	if err := d.AttnBwdGemm(x, x, x, x, x, x, x, x, lse, s); err == nil || !strings.Contains(err.Error(), "attn_bwd_gemm: lse is f32[1]") {
		t.Errorf("AttnBwdGemm with a short lse: %v", err)
	}
	// No query rows: nothing to do, no error.
	s.NQ = 0
	ok(t, d.AttnFwdGemm(x, x, x, x, x, s))
	ok(t, d.AttnBwdGemm(x, x, x, x, x, x, x, x, x, s))
}

// TestAttentionGemmEmulated runs a CPU transcription of attn_gemm.cu's host
// code (the chunk plan, every cuBLAS call with its arguments as written
// there, the kernels as loops) over an emulation of
// cublasGemmStridedBatchedEx's column-major semantics with TF32 operands, on
// every parity case and scratch mode, against the f64 reference. No device is
// needed: it checks the row-major → column-major mapping, the strides and
// the chunking, and that the tolerances leave at least 2× headroom over
// TF32's error (truncation, the worse conversion). Keep it in step with
// attn_gemm.cu.
func TestAttentionGemmEmulated(t *testing.T) {
	for _, c := range agCases() {
		for _, m := range c.scratchModes(cuda.AttnGemmScratchBytes) {
			t.Run(c.name+"/"+m.name, func(t *testing.T) {
				t.Parallel() // CPU only, and AttnGemmScratchBytes was read above
				q, k, v, dout, scale, want := c.inputs(uint64(c.nq*131 + c.nk*7 + c.nH*c.hd))
				got := c.emulate(q, k, v, dout, scale, m.scratch)
				var lseErr float64
				for i := range want.lse {
					if math.IsNaN(float64(want.lse[i])) != math.IsNaN(float64(got.lse[i])) {
						lseErr = math.Inf(1)
					} else if !math.IsNaN(float64(want.lse[i])) {
						lseErr = max(lseErr, math.Abs(float64(got.lse[i]-want.lse[i])))
					}
				}
				e := [5]float64{ratio(got.out, want.out), lseErr, ratio(got.dq, want.dq), ratio(got.dk, want.dk), ratio(got.dv, want.dv)}
				tol := [5]float64{agFwdTol, agLseTol, agBwdTol, agBwdTol, agBwdTol}
				t.Logf("worst/tolerance: out %.2f lse %.2f dq %.2f dk %.2f dv %.2f", e[0]/tol[0], e[1]/tol[1], e[2]/tol[2], e[3]/tol[3], e[4]/tol[4])
				for i, name := range []string{"out", "lse", "dq", "dk", "dv"} {
					if !(e[i] <= tol[i]/2) {
						t.Errorf("%s: the emulation errs by %.3g, over half the tolerance %g", name, e[i], tol[i])
					}
				}
			})
		}
	}
}

// tf32 truncates x to TF32 (10 stored mantissa bits), the worse of the two
// conversions the tensor cores may see.
func tf32(x float32) float32 { return math.Float32frombits(math.Float32bits(x) &^ 0x1FFF) }

// cublasGemmTF32 is cublasGemmStridedBatchedEx as documented (column-major:
// op(A) m×k, op(B) k×n, C m×n; element (i, j) of a matrix at i + j·ld; batch
// b at offset b·stride), TF32 operands, f32 sums. Offsets index the slices.
func cublasGemmTF32(transa, transb bool, m, n, k int, alpha float32, A []float32, aOff, lda, sA int,
	B []float32, bOff, ldb, sB int, beta float32, C []float32, cOff, ldc, sC, batch int) {
	aI, aL, bL, bJ := 1, lda, 1, ldb // op(A)(i, l) at i·aI + l·aL, op(B)(l, j) at l·bL + j·bJ
	if transa {
		aI, aL = lda, 1
	}
	if transb {
		bL, bJ = ldb, 1
	}
	for bt := 0; bt < batch; bt++ {
		a, b, cc := aOff+bt*sA, bOff+bt*sB, cOff+bt*sC
		for j := 0; j < n; j++ {
			for i := 0; i < m; i++ {
				var sum float32
				for l := 0; l < k; l++ {
					sum += tf32(A[a+i*aI+l*aL]) * tf32(B[b+l*bL+j*bJ])
				}
				if beta == 0 {
					C[cc+i+j*ldc] = alpha * sum
				} else {
					C[cc+i+j*ldc] = alpha*sum + beta*C[cc+i+j*ldc]
				}
			}
		}
	}
}

// agGemm is attn_gemm.cu's GEMM (gemm.cu's dc_gemm_tf32_strided): row-major operands, swapped into cuBLAS.
func agGemm(transA, transB bool, m, n, k int, alpha float32, a []float32, aOff, lda, sa int, b []float32, bOff, ldb, sb int,
	beta float32, c []float32, cOff, ldc, sc, batch int) {
	if m == 0 || n == 0 || batch == 0 {
		return
	}
	cublasGemmTF32(transB, transA, n, m, k, alpha, b, bOff, ldb, sb, a, aOff, lda, sa, beta, c, cOff, ldc, sc, batch)
}

type agScratchMode struct {
	name    string
	scratch int // AttnGemmScratchBytes
}

// scratchModes: whole groups at once; 4 heads a chunk forward, 2 backward (a
// remainder chunk wherever a group is not a multiple); 14 rows a chunk
// forward, 7 backward, one head at a time.
func (c agCase) scratchModes(whole int) []agScratchMode {
	return []agScratchMode{{"whole", whole}, {"heads", 4 * c.nq * c.nk * 4}, {"rows", 14 * c.nk * 4}}
}

// agPlan is ag_plan_for with the Go side's attnGemmWork.
func (c agCase) agPlan(scratch, nbuf int) (hc, nr, work int) {
	group := c.nH / c.nKV
	work = max(min(nbuf*group*c.nq*c.nk, scratch/4), nbuf*c.nk, 1)
	rowsFit := 0
	if c.nk > 0 {
		rowsFit = min(work/(nbuf*c.nk), 1<<30)
	}
	if c.nq > 0 && rowsFit >= c.nq {
		return min(group, rowsFit/c.nq), c.nq, work
	}
	return 1, rowsFit, work
}

// emulate is dc_attn_fwd_gemm then dc_attn_bwd_gemm (on its out and lse)
// transcribed, with the kernels as loops in f32.
func (c agCase) emulate(q, k, v, dout []float32, scale float32, scratch int) agResult {
	nq, nk, nh, nkv, hd := c.nq, c.nk, c.nH, c.nKV, c.hd
	group, qs, kvs := nh/nkv, nh*hd, nkv*hd
	out, lse, dq := make([]float32, nq*qs), make([]float32, nq*nh), make([]float32, nq*qs)
	dk, dv := make([]float32, nk*kvs), make([]float32, nk*kvs)
	nan := float32(math.NaN())
	for i := range out {
		out[i], dq[i] = nan, nan // poisoned, as the device test
	}
	for i := range lse {
		lse[i] = nan
	}

	// Forward.
	phc, pnr, wn := c.agPlan(scratch, 1)
	work := make([]float32, wn)
	for g := 0; g < nkv; g++ {
		for h0 := g * group; h0 < (g+1)*group; h0 += phc {
			hc := min(phc, (g+1)*group-h0)
			for i0 := 0; i0 < nq; i0 += pnr {
				rows := min(pnr, nq-i0)
				ss := rows * nk
				agGemm(false, true, rows, nk, hd, scale, q, i0*qs+h0*hd, qs, hd, k, g*hd, kvs, 0, 0, work, 0, nk, ss, hc)
				for blk := 0; blk < hc*rows; blk++ { // k_ag_softmax
					b, r := blk/rows, blk%rows
					i, h, row := i0+r, h0+b, work[blk*nk:(blk+1)*nk]
					lo, hi := c.lo[i], c.hi[i]
					if !c.valid(i) {
						clear(row)
						lse[i*nh+h] = nan
						continue
					}
					m := float32(math.Inf(-1))
					for j := lo; j < hi; j++ {
						m = max(m, row[j])
					}
					var sum float32
					for j := lo; j < hi; j++ {
						sum += float32(math.Exp(float64(row[j] - m)))
					}
					inv := 1 / sum
					for j := range row {
						if j >= lo && j < hi {
							row[j] = float32(math.Exp(float64(row[j]-m))) * inv
						} else {
							row[j] = 0
						}
					}
					lse[i*nh+h] = m + float32(math.Log(float64(sum)))
				}
				agGemm(false, false, rows, hd, nk, 1, work, 0, nk, ss, v, g*hd, kvs, 0, 0, out, i0*qs+h0*hd, qs, hd, hc)
			}
		}
	}
	for i := 0; i < nq; i++ { // k_ag_bad_rows
		if !c.valid(i) {
			for x := 0; x < qs; x++ {
				out[i*qs+x] = nan
			}
		}
	}

	// Backward.
	phc, pnr, wn = c.agPlan(scratch, 2)
	work = make([]float32, wn)
	dpOff := phc * pnr * nk
	for g := 0; g < nkv; g++ {
		for h0 := g * group; h0 < (g+1)*group; h0 += phc {
			hc := min(phc, (g+1)*group-h0)
			for i0 := 0; i0 < nq; i0 += pnr {
				rows := min(pnr, nq-i0)
				ss := rows * nk
				qo := i0*qs + h0*hd
				agGemm(false, true, rows, nk, hd, scale, q, qo, qs, hd, k, g*hd, kvs, 0, 0, work, 0, nk, ss, hc)
				agGemm(false, true, rows, nk, hd, 1, dout, qo, qs, hd, v, g*hd, kvs, 0, 0, work, dpOff, nk, ss, hc)
				for blk := 0; blk < hc*rows; blk++ { // k_ag_dsoftmax
					b, r := blk/rows, blk%rows
					i, h := i0+r, h0+b
					prow, drow := work[blk*nk:(blk+1)*nk], work[dpOff+blk*nk:dpOff+(blk+1)*nk]
					if !c.valid(i) {
						clear(prow)
						clear(drow)
						continue
					}
					o := i*qs + h*hd
					var dd float32
					for x := 0; x < hd; x++ {
						dd += dout[o+x] * out[o+x]
					}
					l := lse[i*nh+h]
					for j := range prow {
						var pj, ds float32
						if j >= c.lo[i] && j < c.hi[i] {
							pj = float32(math.Exp(float64(prow[j] - l)))
							ds = pj * (drow[j] - dd) * scale
						}
						prow[j], drow[j] = pj, ds
					}
				}
				agGemm(false, false, rows, hd, nk, 1, work, dpOff, nk, ss, k, g*hd, kvs, 0, 0, dq, qo, qs, hd, hc)
				for b := 0; b < hc; b++ {
					qb := qo + b*hd
					agGemm(true, false, nk, hd, rows, 1, work, dpOff+b*ss, nk, 0, q, qb, qs, 0, 1, dk, g*hd, kvs, 0, 1)
					agGemm(true, false, nk, hd, rows, 1, work, b*ss, nk, 0, dout, qb, qs, 0, 1, dv, g*hd, kvs, 0, 1)
				}
			}
		}
	}
	for i := 0; i < nq; i++ {
		if !c.valid(i) {
			for x := 0; x < qs; x++ {
				dq[i*qs+x] = nan
			}
		}
	}
	return agResult{out, lse, dq, dk, dv}
}

// ratio is the worst |got − want|/(|want| + max(rms(want), 0.1)), agNear's measure.
func ratio(got, want []float32) float64 {
	var ss float64
	n := 0
	for _, w := range want {
		if !math.IsNaN(float64(w)) {
			ss += float64(w) * float64(w)
			n++
		}
	}
	rms := math.Sqrt(ss / float64(max(n, 1)))
	worst := 0.0
	for i := range want {
		g, w := float64(got[i]), float64(want[i])
		if math.IsNaN(g) != math.IsNaN(w) {
			return math.Inf(1)
		}
		if math.IsNaN(w) {
			continue
		}
		worst = max(worst, math.Abs(g-w)/(math.Abs(w)+max(rms, 0.1)))
	}
	return worst
}

// BenchmarkAttentionGemm: the tensor-core attentions (cuBLAS in TF32, and
// the flash kernels in bf16, also with their tiles staged asynchronously
// from bf16 copies: flash_async, and so with dk/dv's row statistics
// prefetched: flash_async_prefetch (its forward is flash_async's), or with
// the heaviest blocks of every head dispatched first: flash_async_heavy,
// or with dq added up by the dk/dv kernel: flash_async_fuseddq, or with
// each key block's dk/dv work split between two blocks:
// flash_async_splitkv, each row tile's dq work: flash_async_splitdq, both:
// flash_async_split, and so with heavy blocks first:
// flash_async_split_heavy, or with dk/dv built for three blocks an SM:
// flash_async_occ3, with the fused dq too: flash_async_fuseddq_occ3, or
// the forward, dq and dk/dv with three buffers of tiles:
// flash_async_stages3, flash_async_fuseddq_stages3) over one
// causal
// segment of L tokens, at Qwen2.5-1.5B's heads (12 over 2 KV heads of 128)
// and 0.5B's (14 over 2 of 64). FLOPs are counted as causal, as
// BenchmarkAttention: 2·L²·NH·HD forward, twice that backward (the GEMMs
// compute the full L×L, twice that).
func BenchmarkAttentionGemm(b *testing.B) {
	d := device(b)
	for _, c := range [][4]int{{1024, 12, 2, 128}, {2048, 12, 2, 128}, {1024, 14, 2, 64}, {2048, 14, 2, 64}} {
		L, nH, nKV, hd := c[0], c[1], c[2], c[3]
		b.Run(shapeName("L%d_h%d_kv%d_hd%d", L, nH, nKV, hd), func(b *testing.B) {
			r := rng(uint64(L + hd))
			lo, hi := make([]int32, L), make([]int32, L)
			for i := range hi {
				hi[i] = int32(i + 1)
			}
			s := cuda.AttnShape{NQ: L, NK: L, NH: nH, NKV: nKV, HD: hd, MaxLen: L, Lo: up(b, d, cuda.I32, lo),
				Hi: up(b, d, cuda.I32, hi), Scale: float32(1 / math.Sqrt(float64(hd)))}
			q, k, v := up(b, d, cuda.F32, randn(r, L*nH*hd, 1)), up(b, d, cuda.F32, randn(r, L*nKV*hd, 1)), up(b, d, cuda.F32, randn(r, L*nKV*hd, 1))
			dout := up(b, d, cuda.F32, randn(r, L*nH*hd, 1))
			out, lse := zeros(b, d, cuda.F32, L*nH*hd), zeros(b, d, cuda.F32, L*nH)
			dq, dk, dv := zeros(b, d, cuda.F32, L*nH*hd), zeros(b, d, cuda.F32, L*nKV*hd), zeros(b, d, cuda.F32, L*nKV*hd)
			fwd := 2 * float64(L) * float64(L) * float64(nH) * float64(hd)
			type attnImpl struct {
				name     string
				fwd, bwd func() error
			}
			// flash is the flash kernels with the forward's options fo and
			// the backward's bo set on the shape.
			flash := func(name string, fo, bo func(*cuda.AttnShape)) attnImpl {
				return attnImpl{name, func() error { sa := s; fo(&sa); return d.AttnFwdFlash(out, lse, q, k, v, sa) },
					func() error { sa := s; bo(&sa); return d.AttnBwdFlash(dq, dk, dv, dout, q, k, v, out, lse, sa) }}
			}
			async := func(s *cuda.AttnShape) { s.AsyncTiles = true }
			with := func(set func(*cuda.AttnShape)) func(*cuda.AttnShape) {
				return func(s *cuda.AttnShape) { async(s); set(s) }
			}
			for _, impl := range []attnImpl{
				{"gemm", func() error { return d.AttnFwdGemm(out, lse, q, k, v, s) },
					func() error { return d.AttnBwdGemm(dq, dk, dv, dout, q, k, v, out, lse, s) }},
				flash("flash", func(*cuda.AttnShape) {}, func(*cuda.AttnShape) {}),
				flash("flash_async", async, async),
				flash("flash_async_prefetch", async, with(func(s *cuda.AttnShape) { s.PrefetchStats = true })),
				flash("flash_async_fuseddq", async, with(func(s *cuda.AttnShape) { s.FusedDQ = true })),
				flash("flash_async_heavy", with(func(s *cuda.AttnShape) { s.HeavyFirst = true }), with(func(s *cuda.AttnShape) { s.HeavyFirst = true })),
				flash("flash_async_splitkv", async, with(func(s *cuda.AttnShape) { s.SplitKV = true })),
				flash("flash_async_splitdq", async, with(func(s *cuda.AttnShape) { s.SplitDQ = true })),
				flash("flash_async_split", async, with(func(s *cuda.AttnShape) { s.SplitKV, s.SplitDQ = true, true })),
				flash("flash_async_split_heavy", async, with(func(s *cuda.AttnShape) { s.SplitKV, s.SplitDQ, s.HeavyFirst = true, true, true })),
				flash("flash_async_occ3", async, with(func(s *cuda.AttnShape) { s.DKVOccupancy = true })),
				flash("flash_async_fuseddq_occ3", async, with(func(s *cuda.AttnShape) { s.FusedDQ, s.DKVOccupancy = true, true })),
				flash("flash_async_stages3", with(func(s *cuda.AttnShape) { s.Stages3 = true }), with(func(s *cuda.AttnShape) { s.Stages3 = true })),
				flash("flash_async_fuseddq_stages3", async, with(func(s *cuda.AttnShape) { s.FusedDQ, s.Stages3 = true, true })),
			} {
				ok(b, impl.fwd()) // out, lse for backward; warms cuBLAS and the pool
				b.Run(impl.name+"_fwd", func(b *testing.B) {
					for range b.N {
						ok(b, impl.fwd())
					}
					benchDone(b, d)
					reportRate(b, fwd, "GFLOP/s")
				})
				b.Run(impl.name+"_bwd", func(b *testing.B) {
					for range b.N {
						ok(b, impl.bwd())
					}
					benchDone(b, d)
					reportRate(b, 2*fwd, "GFLOP/s")
				})
			}
		})
	}
}
