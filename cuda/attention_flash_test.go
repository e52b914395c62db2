//go:build cuda

package cuda_test

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"distill/core/model"
	"distill/cuda"
)

// AttnFwdFlash / AttnBwdFlash (tiled, bf16 tensor-core products) against
// the f64 reference of TestAttentionGemmParity, on its cases and on some
// that cross the kernels' tiles (64 query rows a block, 64-key tiles, 32-row
// query tiles for dk, dv) with ragged ends and every head size they take.
//
// Tolerance: q, k, v, dout, P and dS are rounded to bf16 (8 significant
// bits, 2⁻⁹ relative) where the cuBLAS path rounds to TF32 (2⁻¹¹), so the
// same error sources are ~4× larger: from the gemm path's emulated worst
// ratios (out 6.9e-3, dq 1.3e-2, dk/dv 6.7e-3, lse 2.7e-3 absolute), about
// 2.8e-2, 5.2e-2, 2.7e-2 and 1.1e-2. The bounds below are ~2–3× those; an
// index or mask mistake moves values by their own size (ratios ≳ 0.3).
const (
	flashFwdTol = 6e-2
	flashBwdTol = 1.2e-1
	flashLseTol = 3e-2
)

func flashCases() []agCase {
	return []agCase{
		packedCase([]int{200, 57, 130}, 12, 2, 128), // 387 rows: tiles cross segments, a ragged last block
		packedCase([]int{130, 70}, 4, 1, 16),        // hd 16, one KV head for all
		packedCase([]int{100}, 6, 2, 32),
		packedCase([]int{90, 9}, 4, 2, 96),
		packedCase([]int{65}, 2, 2, 64), // one row past a block
		// hd 128 over four key tiles and seven query tiles, small enough
		// to emulate: three buffers each reused (Stages3).
		packedCase([]int{200}, 2, 1, 128),
		decodeCase(3, 200, 14, 2, 64), // three rows over 203 keys
		windowCase(150, 40, 4, 2, 80),
		deadBlockCase(64),
		deadBlockCase(128),
	}
}

// deadBlockCase: 130 causal rows whose first 128 attend nothing (empty
// ranges), so at head size 64 two of the forward's and dq's blocks of 64
// rows, at 128 its one block of 128, have no key tile: the kernels' key
// range starts at INT_MAX (fa_block_range), where an index past it would
// wrap on the GPU.
func deadBlockCase(hd int) agCase {
	const n = 130
	c := windowCase(n, n, 2, 1, hd)
	c.name = shapeName("dead_block_n%d_hd%d", n, hd)
	for i := range 128 {
		c.lo[i], c.hi[i] = i, i
	}
	return c
}

func TestAttentionFlashParity(t *testing.T) {
	for _, c := range append(agCases(), flashCases()...) {
		if !cuda.FlashHeadDim(c.hd) {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			q, k, v, dout, scale, want := c.inputs(uint64(c.nq*131 + c.nk*7 + c.nH*c.hd))
			emulatedSkip(t, c)
			d := device(t)
			// Every output poisoned: the kernels set each element (dk, dv
			// too — not accumulated).
			got := attnRun(t, d, c, q, k, v, dout, scale, d.AttnFwdFlash, d.AttnBwdFlash)
			got.checkTol(t, c, "flash vs f64", want, flashFwdTol, flashBwdTol, flashLseTol)
			// The kernels that stage their tiles by cp.async from bf16
			// copies (AsyncTiles), the blocks of either kind heaviest
			// first (HeavyFirst), dk/dv's row statistics prefetched
			// (PrefetchStats), dk/dv built for three blocks an SM at head
			// size 128 (DKVOccupancy: registers spilled, nothing else
			// changed) or with three query tiles' buffers at 64 and 128
			// (Stages3, the forward's and dq's too; the emulated SM's shared
			// memory set so each applies where the case's head size allows:
			// TestFlashBuild): the same products in the same order,
			// so the same out, lse, dq, dk, dv as v1 bit for bit, each
			// option alone and together.
			for _, o := range []struct {
				async, heavy, prefetch, occ, stages bool
				smem, block                         string // an SM's and a block's shared memory, emulated
			}{
				{false, true, false, false, false, "233472", ""}, {true, false, false, false, false, "233472", ""},
				{true, true, false, false, false, "233472", ""}, {true, false, true, false, false, "233472", ""},
				{true, true, true, false, false, "233472", ""}, {true, false, false, true, false, "233472", ""},
				{true, true, true, true, false, "233472", ""}, {true, false, false, false, true, "102400", ""},
				{true, true, true, false, true, "102400", ""}, {true, false, false, false, true, "65536", ""},
				// An SM with room for one 104 KB block: the forward's and dq's
				// three buffers at 128 as well.
				{true, false, false, false, true, "110000", "232448"},
			} {
				t.Setenv("DISTILL_CUDA_EMU_SMEM_SM", o.smem)
				t.Setenv("DISTILL_CUDA_EMU_SMEM_BLOCK", o.block)
				set := func(s *cuda.AttnShape) {
					s.AsyncTiles, s.HeavyFirst, s.PrefetchStats = o.async, o.heavy, o.prefetch
					s.DKVOccupancy, s.Stages3 = o.occ, o.stages
				}
				fwd := func(out, lse, q, k, v *cuda.Buffer, s cuda.AttnShape) error {
					set(&s)
					return d.AttnFwdFlash(out, lse, q, k, v, s)
				}
				bwd := func(dq, dk, dv, dout, q, k, v, out, lse *cuda.Buffer, s cuda.AttnShape) error {
					set(&s)
					return d.AttnBwdFlash(dq, dk, dv, dout, q, k, v, out, lse, s)
				}
				got2 := attnRun(t, d, c, q, k, v, dout, scale, fwd, bwd)
				for _, x := range []struct {
					name      string
					got, want []float32
				}{{"out", got2.out, got.out}, {"lse", got2.lse, got.lse}, {"dq", got2.dq, got.dq}, {"dk", got2.dk, got.dk}, {"dv", got2.dv, got.dv}} {
					sameBits(t, fmt.Sprintf("%+v: %s", o, x.name), x.got, x.want)
				}
			}
			// dq added up by the dk/dv kernel (FusedDQ): the same dk and
			// dv; dq near the f64 reference as v1's is, and near v1's —
			// the same bf16 products (dS rounded as dK's product rounds
			// it) summed in another order, each key block's then the
			// blocks' by atomics: f32 rounding, ~1e-7 of dq's scale on the
			// emulator (also where a GPU's mma rounds dS from Sᵀ = K·Qᵀ
			// one bf16 step from dq's kernel's S = Q·Kᵀ: one term of one
			// element, 2⁻⁸ of it). A row, column or mask mistake moves
			// elements by their own size.
			fused := func(dq, dk, dv, dout, q, k, v, out, lse *cuda.Buffer, s cuda.AttnShape) error {
				s.AsyncTiles, s.FusedDQ = true, true
				return d.AttnBwdFlash(dq, dk, dv, dout, q, k, v, out, lse, s)
			}
			got3 := attnRun(t, d, c, q, k, v, dout, scale, d.AttnFwdFlash, fused)
			sameBits(t, "fused dq: dk", got3.dk, got.dk)
			sameBits(t, "fused dq: dv", got3.dv, got.dv)
			agLocate(t, "fused dq vs f64", got3.dq, want.dq, flashBwdTol, flashBwdTol*max(agRMS(want.dq), 0.1), c.nH, c.hd)
			agLocate(t, "fused dq vs v1", got3.dq, got.dq, 2e-3, 2e-3*max(agRMS(got.dq), 0.1), c.nH, c.hd)
			// That it ran: where rows attend more than two key blocks (64
			// keys each) the sums' other order shows in some element's
			// last bits (over one or two, the two orders can round alike).
			if c.maxLen > 128 && slices.Equal(got3.dq, got.dq) {
				t.Errorf("fused dq: v1's dq bit for bit over ranges of up to %d keys — was the fused kernel run?", c.maxLen)
			}
			// Each key block's query tiles split between two dk/dv blocks
			// (SplitKV) and each row tile's key tiles between two dq
			// blocks (SplitDQ), each alone and together, synchronous and
			// async tiles, with the fused dq too: dq, dk and dv near the
			// f64 reference and near v1's — the same bf16 products, each
			// half summed apart and the halves added: f32 rounding (what
			// a split leaves alone, v1's bit for bit). A tile taken twice
			// or left out moves elements by their own size.
			// (The last two also with dk/dv built for three blocks an SM,
			// and with three query tiles' buffers.)
			for _, o := range []struct{ async, fused, kv, dq, occ, stages bool }{
				{false, false, true, false, false, false}, {false, false, false, true, false, false},
				{false, false, true, true, false, false}, {true, false, true, true, false, false},
				{true, true, true, true, false, false}, {true, true, true, true, true, false}, {true, true, true, true, false, true},
			} {
				t.Setenv("DISTILL_CUDA_EMU_SMEM_SM", map[bool]string{false: "233472", true: "102400"}[o.stages])
				split := func(dq, dk, dv, dout, q, k, v, out, lse *cuda.Buffer, s cuda.AttnShape) error {
					s.AsyncTiles, s.FusedDQ, s.SplitKV, s.SplitDQ = o.async, o.fused, o.kv, o.dq
					s.DKVOccupancy, s.Stages3 = o.occ, o.stages
					return d.AttnBwdFlash(dq, dk, dv, dout, q, k, v, out, lse, s)
				}
				got4 := attnRun(t, d, c, q, k, v, dout, scale, d.AttnFwdFlash, split)
				name := fmt.Sprintf("split %+v", o)
				if !o.fused && !o.dq {
					sameBits(t, name+": dq", got4.dq, got.dq)
				}
				if !o.kv {
					sameBits(t, name+": dk", got4.dk, got.dk)
					sameBits(t, name+": dv", got4.dv, got.dv)
				}
				for _, x := range []struct {
					name      string
					got, want []float32
					heads     int
				}{{"dq", got4.dq, got.dq, c.nH}, {"dk", got4.dk, got.dk, c.nKV}, {"dv", got4.dv, got.dv, c.nKV}} {
					agLocate(t, name+": "+x.name+" vs v1", x.got, x.want, 2e-3, 2e-3*max(agRMS(x.want), 0.1), x.heads, c.hd)
				}
				agLocate(t, name+": dq vs f64", got4.dq, want.dq, flashBwdTol, flashBwdTol*max(agRMS(want.dq), 0.1), c.nH, c.hd)
				agLocate(t, name+": dk vs f64", got4.dk, want.dk, flashBwdTol, flashBwdTol*max(agRMS(want.dk), 0.1), c.nKV, c.hd)
			}
			// Keys and values held in bf16 (a decoder's cache mirror): the
			// forward reads them as they are, the same out and lse as v1
			// over their f32 originals.
			kn, qn := c.nk*c.nKV*c.hd, c.nq*c.nH*c.hd
			k16, v16 := zeros(t, d, cuda.BF16, kn), zeros(t, d, cuda.BF16, kn)
			ok(t, d.ToBF16(k16, up(t, d, cuda.F32, k), kn))
			ok(t, d.ToBF16(v16, up(t, d, cuda.F32, v), kn))
			od, ld := poison(t, d, qn), poison(t, d, c.nq*c.nH)
			ok(t, d.AttnFwdFlash(od, ld, up(t, d, cuda.F32, q), k16, v16, c.shape(t, d, scale)))
			ok(t, d.Sync())
			sameBits(t, "bf16 k, v: out", down(t, od), got.out)
			sameBits(t, "bf16 k, v: lse", down(t, ld), got.lse)
		})
	}
}

// The async kernels' builds (FlashBuild): dk/dv for three blocks an SM
// only with DKVOccupancy at head size 128, where an SM then holds three
// (70 KB of shared memory a block, 75 KB with the fused dq: an H100's
// 228 KB does, an A100's 164 KB or a consumer card's 100 KB does not);
// three buffers of tiles only with Stages3 at head size 64 or 128, each
// kernel where an SM holds as many blocks of it as with two, and never
// past a block's 99 KB (the forward's and dq's 104 KB at 128 on a consumer
// card). The emulation counts shared memory alone (no registers: at 228 KB
// it holds three two-buffer dk/dv blocks against two, where an H100's
// registers allow two of either), so each row below is its arithmetic;
// on a GPU, the card's own, within the same values.
func TestFlashBuild(t *testing.T) {
	d := device(t)
	occ := cuda.AttnShape{NQ: 256, HD: 128, AsyncTiles: true, DKVOccupancy: true}
	st128 := cuda.AttnShape{NQ: 256, HD: 128, AsyncTiles: true, Stages3: true}
	both := occ
	both.Stages3 = true
	st64 := st128
	st64.HD = 64
	fused64 := st64
	fused64.FusedDQ = true
	b := func(m, dkv, fwd, dq int) cuda.FlashBuild {
		return cuda.FlashBuild{DKVMinBlocks: m, DKVStages: dkv, FwdStages: fwd, DQStages: dq}
	}
	def := b(1, 2, 2, 2)
	for _, c := range []struct {
		name string
		s    cuda.AttnShape
		want map[string]cuda.FlashBuild // by shared memory an SM; def where absent
	}{
		{"occupancy", occ, map[string]cuda.FlashBuild{"233472": b(3, 2, 2, 2)}},
		{"three stages at 128", st128, map[string]cuda.FlashBuild{"110000": b(1, 3, 2, 2), "102400": b(1, 3, 2, 2)}},
		{"both at 128", both, map[string]cuda.FlashBuild{"233472": b(3, 2, 2, 2), "110000": b(1, 3, 2, 2),
			"102400": b(1, 3, 2, 2)}},
		// 46 KB three-buffer dk/dv blocks against 37 KB, 55 KB forward and dq
		// ones against 37: the same count at 100 KB for dk/dv, at 64 KB for all.
		{"three stages at 64", st64, map[string]cuda.FlashBuild{"110000": b(1, 3, 2, 2), "102400": b(1, 3, 2, 2),
			"65536": b(1, 3, 3, 3)}},
		// With the fused dq, 51 KB against 42, and no dq kernel.
		{"three stages at 64, fused dq", fused64, map[string]cuda.FlashBuild{"167936": b(1, 3, 2, 2), "110000": b(1, 3, 2, 2),
			"65536": b(1, 3, 3, 2)}},
		// With an H100's 227 KB a block: at 110 KB an SM, one forward or dq
		// block of either kind (70, 104 KB), and dk/dv's 70 and 87.
		{"three stages at 128, 227 KB a block", st128, map[string]cuda.FlashBuild{"102400": b(1, 3, 2, 2), "110000": b(1, 3, 3, 3)}},
		{"nothing asked", cuda.AttnShape{NQ: 256, HD: 128, AsyncTiles: true}, nil},
		{"head size 96", cuda.AttnShape{NQ: 256, HD: 96, AsyncTiles: true, DKVOccupancy: true, Stages3: true}, nil},
	} {
		block := ""
		if strings.Contains(c.name, "227 KB") {
			block = "232448"
		}
		t.Setenv("DISTILL_CUDA_EMU_SMEM_BLOCK", block)
		for _, smem := range []string{"233472", "167936", "110000", "102400", "65536"} {
			t.Setenv("DISTILL_CUDA_EMU_SMEM_SM", smem)
			got, err := d.FlashBuild(c.s)
			ok(t, err)
			want, set := c.want[smem]
			if !set {
				want = def
			}
			in := func(v int, a, b int) bool { return v == a || v == b }
			if cuda.Emulated && got != want || !in(got.DKVMinBlocks, 1, 3) || !in(got.DKVStages, 2, 3) ||
				!in(got.FwdStages, 2, 3) || !in(got.DQStages, 2, 3) || c.want == nil && got != def {
				t.Errorf("%s, %s bytes an SM: %+v, want %+v", c.name, smem, got, want)
			}
		}
	}
}

// sameBits fails unless got is want bit for bit (any NaN matching any NaN),
// naming the first element that differs.
func sameBits(t *testing.T, name string, got, want []float32) {
	t.Helper()
	for i := range got {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) && !(got[i] != got[i] && want[i] != want[i]) {
			t.Errorf("%s[%d] = %v, v1 gives %v", name, i, got[i], want[i])
			return
		}
	}
}

// Argument checks fail before any device work, naming the op and argument.
func TestAttentionFlashArgs(t *testing.T) {
	d := device(t)
	lo, hi := up(t, d, cuda.I32, []int32{0}), up(t, d, cuda.I32, []int32{1})
	x := zeros(t, d, cuda.F32, 256)
	s := cuda.AttnShape{NQ: 1, NK: 1, NH: 2, NKV: 1, HD: 24, MaxLen: 1, Lo: lo, Hi: hi, Scale: 1}
	if err := d.AttnFwdFlash(x, x, x, x, x, s); err == nil || !strings.Contains(err.Error(), "attn_fwd_flash: head size 24") {
		t.Errorf("AttnFwdFlash with head size 24: %v", err)
	}
	s.HD = 16
	if err := d.AttnBwdFlash(x, x, x, x, x.View(1, 64), x, x, x, x, s); err == nil || !strings.Contains(err.Error(), "not on 16 bytes") {
		t.Errorf("AttnBwdFlash with q one float into its buffer: %v", err)
	}
	x16 := zeros(t, d, cuda.BF16, 256)
	if err := d.AttnFwdFlash(x, x, x, x16, x, s); err == nil || !strings.Contains(err.Error(), "attn_fwd_flash: v is f32[256]") {
		t.Errorf("AttnFwdFlash with k in bf16, v in f32: %v", err)
	}
	s.NQ = 0
	ok(t, d.AttnFwdFlash(x, x, x, x, x, s))
	ok(t, d.AttnBwdFlash(x, x, x, x, x, x, x, x, x, s))
}

// core/train's memory plan assumes the flash kernels for exactly the head
// sizes they take.
func TestFlashHeadDimsAgree(t *testing.T) {
	for hd := 1; hd <= 256; hd++ {
		if cuda.FlashHeadDim(hd) != model.FlashAttention(hd) {
			t.Errorf("head size %d: cuda.FlashHeadDim %v, model.FlashAttention %v", hd, cuda.FlashHeadDim(hd), model.FlashAttention(hd))
		}
	}
}

// AttnMerge: attention over [0, hi) computed as two — every row over the
// first 30 keys, and over the rest of its range — and merged, against the
// f64 reference over the whole range.
func TestAttnMergeParity(t *testing.T) {
	for _, hd := range []int{64, 128} {
		c := decodeCase(7, 50, 6, 2, hd)
		t.Run(c.name, func(t *testing.T) {
			qn := c.nq * c.nH * c.hd
			q, k, v, _, scale, want := c.inputs(uint64(hd))
			d := device(t)
			const split = 30
			a, b := c, c
			a.lo, a.hi, a.maxLen = make([]int, c.nq), make([]int, c.nq), split
			b.lo = make([]int, c.nq)
			for i := range a.hi {
				a.hi[i], b.lo[i] = split, split
			}
			qd, kd, vd := up(t, d, cuda.F32, q), up(t, d, cuda.F32, k), up(t, d, cuda.F32, v)
			o1, l1, o2, l2 := poison(t, d, qn), poison(t, d, c.nq*c.nH), poison(t, d, qn), poison(t, d, c.nq*c.nH)
			ok(t, d.AttnFwdFlash(o1, l1, qd, kd, vd, a.shape(t, d, scale)))
			ok(t, d.AttnFwdFlash(o2, l2, qd, kd, vd, b.shape(t, d, scale)))
			ok(t, d.AttnMerge(o1, l1, o2, l2, c.nq*c.nH, c.hd))
			agLocate(t, "merged out", down(t, o1), want.out, flashFwdTol, flashFwdTol*max(agRMS(want.out), 0.1), c.nH, c.hd)
			agLocate(t, "merged lse", down(t, l1), want.lse, 0, flashLseTol, c.nH, 1)
		})
	}
}
