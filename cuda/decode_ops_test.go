//go:build cuda

package cuda_test

import (
	"fmt"
	"math"
	"slices"
	"testing"

	"distill/cuda"
)

// TestMatVecFusedParity: MatVecFused against the same work op by op
// (RMSNormFwd or SwiGLUFwd, then each output's matvec, AddBias, Add) on the
// device — the q/k/v, gate/up, o and down shapes of a decoded layer, NF4
// (plain and double-quantised scales) and bf16, on the fused kernels'
// shapes and on the fallbacks (odd columns, a misaligned input). Outputs and
// the prologue's output start as NaN, so a row the kernels never write
// fails. Tolerance: both sides are f32; the fused prologue's sum of squares
// runs in another order (a few ulp in rstd), so 1e-5 relative to |want|
// plus 1e-6·√cols.
func TestMatVecFusedParity(t *testing.T) {
	d := device(t)
	type out struct {
		rows      int
		bias, res bool
	}
	cases := []struct {
		name string
		cols int
		nf4  bool
		dq   bool
		pro  cuda.PrologueKind
		outs []out
		skew bool // x one float past a 16-byte boundary: op by op
	}{
		{"qkv", 896, true, true, cuda.RMSNormPrologue, []out{{896, true, false}, {128, true, false}, {128, true, false}}, false},
		{"qkv_plain_scales", 1536, true, false, cuda.RMSNormPrologue, []out{{1536, true, false}, {256, true, false}, {256, true, false}}, false},
		{"o", 896, true, true, cuda.NoPrologue, []out{{896, false, true}}, false},
		{"gate_up", 1536, true, true, cuda.RMSNormPrologue, []out{{8960, false, false}, {8960, false, false}}, false},
		{"down", 8960, true, true, cuda.SwiGLUPrologue, []out{{1536, false, true}}, false},
		{"down_bf16", 4864, false, false, cuda.SwiGLUPrologue, []out{{896, false, true}}, false},
		{"qkv_bf16", 896, false, false, cuda.RMSNormPrologue, []out{{896, true, false}, {128, true, true}, {33, false, false}}, false},
		{"odd_cols", 77, true, true, cuda.RMSNormPrologue, []out{{33, true, false}, {5, false, true}}, false},
		{"odd_cols_bf16", 130, false, false, cuda.SwiGLUPrologue, []out{{7, true, true}}, false},
		{"skewed_x", 896, true, false, cuda.RMSNormPrologue, []out{{130, true, false}, {64, false, true}}, true},
		{"mixed_kinds", 256, true, true, cuda.RMSNormPrologue, []out{{64, true, false}, {32, false, true}}, false}, // output 1 dense: op by op
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := rng(uint64(100 + i))
			k := c.cols
			x := randn(r, k, 1)
			xb := up(t, d, cuda.F32, x)
			if c.skew {
				xb = up(t, d, cuda.F32, append([]float32{0}, x...)).View(1, k)
			}
			pw := randn(r, k, 1)
			pro := cuda.Prologue{Kind: c.pro, Eps: 1e-6}
			xin := xb // the op-by-op path's input to the products
			if c.pro != cuda.NoPrologue {
				pro.W, pro.Out = up(t, d, cuda.F32, pw), up(t, d, cuda.F32, nans(k))
				xin = zeros(t, d, cuda.F32, k)
				if c.pro == cuda.RMSNormPrologue {
					ok(t, d.RMSNormFwd(xin, nil, xb, pro.W, 1, k, 1e-6))
				} else {
					ok(t, d.SwiGLUFwd(xin, pro.W, xb, k))
				}
			}
			var outs []cuda.MatVecOut
			var wants []*cuda.Buffer
			for j, o := range c.outs {
				mo := cuda.MatVecOut{Rows: o.rows, Y: up(t, d, cuda.F32, nans(o.rows))}
				want := zeros(t, d, cuda.F32, o.rows)
				if c.nf4 && !(c.name == "mixed_kinds" && j == 1) {
					mo.NF4 = upNF4(t, d, nf4WeightsSeed(t, o.rows, k, c.dq, uint64(100*i+j))) // same-shaped outputs differ
					ok(t, d.NF4MatVec(want, mo.NF4, xin))
				} else {
					_, hb := bf16Round(randn(r, o.rows*k, 0.02))
					mo.Dense = up(t, d, cuda.BF16, hb)
					ok(t, d.BF16MatVec(want, mo.Dense, xin, o.rows, k))
				}
				if o.bias {
					mo.Bias = up(t, d, cuda.F32, randn(r, o.rows, 1))
					ok(t, d.AddBias(want, mo.Bias, 1, o.rows))
				}
				if o.res {
					mo.Res = up(t, d, cuda.F32, randn(r, o.rows, 1))
					ok(t, d.Add(want, mo.Res, o.rows))
				}
				outs, wants = append(outs, mo), append(wants, want)
			}
			ok(t, d.MatVecFused(xb, k, pro, outs...))
			atol := 1e-6 * math.Sqrt(float64(k))
			for j := range outs {
				near(t, shapeName("y%d (%d rows)", j, c.outs[j].rows), down(t, outs[j].Y), down(t, wants[j]), 1e-5, atol)
			}
			if c.pro != cuda.NoPrologue {
				near(t, "x' written out", down(t, pro.Out), down(t, xin), 1e-5, 1e-6)
			}
		})
	}
	// Bad calls: named errors, nothing launched.
	w := upNF4(t, d, nf4Weights(t, 8, 64, false))
	x, y, g := zeros(t, d, cuda.F32, 64), zeros(t, d, cuda.F32, 8), zeros(t, d, cuda.F32, 64)
	for name, err := range map[string]error{
		"cols":       d.MatVecFused(x, 32, cuda.Prologue{}, cuda.MatVecOut{NF4: w, Y: y}),
		"no outputs": d.MatVecFused(x, 64, cuda.Prologue{}),
		"res is y":   d.MatVecFused(x, 64, cuda.Prologue{}, cuda.MatVecOut{NF4: w, Y: y, Res: y}),
		"no out":     d.MatVecFused(x, 64, cuda.Prologue{Kind: cuda.RMSNormPrologue, W: x}, cuda.MatVecOut{NF4: w, Y: y}),
		"y is x":     d.MatVecFused(x, 64, cuda.Prologue{}, cuda.MatVecOut{NF4: w, Y: x.View(0, 8)}),
		"out is x":   d.MatVecFused(x, 64, cuda.Prologue{Kind: cuda.SwiGLUPrologue, W: g, Out: x}, cuda.MatVecOut{NF4: w, Y: y}),
	} {
		if err == nil {
			t.Errorf("%s: no error", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

// TestDecodeQKVParity: DecodeQKV against RMSNormFwd per head, RoPE and two
// copies, as the decoder's general pass runs them: q in place, k's row and
// v's in the cache at the position and in the staging rows; other cache
// rows untouched; a position past the cache writes nothing. Tolerance: f32
// both sides, the per-head sum of squares in another order: 1e-5.
func TestDecodeQKVParity(t *testing.T) {
	d := device(t)
	for _, c := range []struct {
		nh, nkv, hd, pos, cap int
		norms, stage          bool
	}{
		{14, 2, 64, 37, 64, false, true},
		{16, 8, 128, 0, 4, true, true},
		{12, 2, 128, 99, 100, false, false},
		{4, 2, 80, 3, 10, true, true},
	} {
		t.Run(shapeName("h%d_kv%d_hd%d_pos%d_norms%v", c.nh, c.nkv, c.hd, c.pos, c.norms), func(t *testing.T) {
			r := rng(uint64(c.nh*c.hd + c.pos))
			qO, kvO, half, tables := c.nh*c.hd, c.nkv*c.hd, c.hd/2, c.cap+3
			q, k, v := randn(r, qO, 1), randn(r, kvO, 1), randn(r, kvO, 1)
			cs, sn := make([]float32, tables*half), make([]float32, tables*half)
			for i := range cs {
				cs[i], sn[i] = randn(r, 1, 1)[0], randn(r, 1, 1)[0]
			}
			a := cuda.DecodeQKVArgs{Q: up(t, d, cuda.F32, q), K: up(t, d, cuda.F32, k), V: up(t, d, cuda.F32, v), Eps: 1e-6,
				Pos: up(t, d, cuda.I32, []int32{int32(c.pos)}), Cos: up(t, d, cuda.F32, cs), Sin: up(t, d, cuda.F32, sn), Tables: tables,
				KCache: up(t, d, cuda.F32, nans(c.cap*kvO)), VCache: up(t, d, cuda.F32, nans(c.cap*kvO)),
				Cap: c.cap, NH: c.nh, NKV: c.nkv, HD: c.hd}
			if c.norms {
				a.QNorm, a.KNorm = up(t, d, cuda.F32, randn(r, c.hd, 1)), up(t, d, cuda.F32, randn(r, c.hd, 1))
			}
			if c.stage {
				a.KStage, a.VStage = up(t, d, cuda.F32, nans(kvO)), up(t, d, cuda.F32, nans(kvO))
			}
			// Op by op.
			wq, wk := up(t, d, cuda.F32, q), up(t, d, cuda.F32, k)
			if c.norms {
				ok(t, d.RMSNormFwd(wq, nil, up(t, d, cuda.F32, q), a.QNorm, c.nh, c.hd, 1e-6))
				ok(t, d.RMSNormFwd(wk, nil, up(t, d, cuda.F32, k), a.KNorm, c.nkv, c.hd, 1e-6))
			}
			ok(t, d.RoPE(wq, a.Pos, a.Cos, a.Sin, 1, c.nh, c.hd, tables, false))
			ok(t, d.RoPE(wk, a.Pos, a.Cos, a.Sin, 1, c.nkv, c.hd, tables, false))
			ok(t, d.DecodeQKV(a))
			near(t, "q", down(t, a.Q), down(t, wq), 1e-5, 1e-6)
			kc, vc := down(t, a.KCache), down(t, a.VCache)
			near(t, "k row", kc[c.pos*kvO:(c.pos+1)*kvO], down(t, wk), 1e-5, 1e-6)
			near(t, "v row", vc[c.pos*kvO:(c.pos+1)*kvO], v, 0, 0)
			if c.stage {
				near(t, "k stage", down(t, a.KStage), down(t, wk), 1e-5, 1e-6)
				near(t, "v stage", down(t, a.VStage), v, 0, 0)
			}
			for i := range kc {
				if i/kvO != c.pos && (kc[i] == kc[i] || vc[i] == vc[i]) {
					t.Fatalf("cache element %d (row %d) written; only row %d should be", i, i/kvO, c.pos)
				}
			}
			// Past the cache: nothing written.
			ok(t, cuda.Write(a.Pos, 0, []int32{int32(c.cap)}))
			before := down(t, a.Q)
			ok(t, d.DecodeQKV(a))
			near(t, "q (position past the cache)", down(t, a.Q), before, 0, 0)
		})
	}
}

// TestAttnRowsParity: a batched decode step's KVRows and AttnRows — each
// row over its own cache — against the simple attention kernel run row by
// row over the same caches: grouped and plain heads, head sizes that are
// not multiples of 32, rows at the first position and at a cache's last; an
// empty range or one past the cache gives NaN; a position past a cache
// writes nothing. Tolerance:
// f32 both sides, sums in other orders: 1e-5.
func TestAttnRowsParity(t *testing.T) {
	d := device(t)
	for _, c := range []struct {
		nh, nkv, hd int
		hi, caps    []int
	}{
		{14, 2, 64, []int{1, 37, 64, 5}, []int{8, 40, 64, 5}},
		{8, 8, 128, []int{300}, []int{512}},
		{6, 3, 80, []int{2, 9}, []int{2, 16}},
		{4, 2, 32, []int{0, 3}, []int{4, 4}}, // row 0: an empty range
		{4, 2, 32, []int{3, 7}, []int{4, 5}}, // row 1: a range past its cache
	} {
		t.Run(shapeName("h%d_kv%d_hd%d_rows%d", c.nh, c.nkv, c.hd, len(c.hi)), func(t *testing.T) {
			r := rng(uint64(c.nh*c.hd + len(c.hi)))
			n, kvO, qO := len(c.hi), c.nkv*c.hd, c.nh*c.hd
			var ks, vs []*cuda.Buffer
			caps, pos, his := make([]int32, n), make([]int32, n), make([]int32, n)
			for i := range n {
				ks, vs = append(ks, up(t, d, cuda.F32, randn(r, c.caps[i]*kvO, 1))), append(vs, up(t, d, cuda.F32, randn(r, c.caps[i]*kvO, 1)))
				caps[i], his[i], pos[i] = int32(c.caps[i]), int32(c.hi[i]), int32(c.hi[i]-1)
			}
			rc := cuda.RowCaches{K: up(t, d, cuda.Addr, cuda.CacheTable(ks)), V: up(t, d, cuda.Addr, cuda.CacheTable(vs)),
				Cap: up(t, d, cuda.I32, caps), Rows: n}
			k, v, q := randn(r, n*kvO, 1), randn(r, n*kvO, 1), randn(r, n*qO, 1)
			ok(t, d.KVRows(rc, up(t, d, cuda.F32, k), up(t, d, cuda.F32, v), up(t, d, cuda.I32, pos), kvO))
			for i := range n {
				if pos[i] < 0 || pos[i] >= caps[i] { // nothing written: checked below for row 0
					continue
				}
				near(t, shapeName("row %d's key in its cache", i), down(t, ks[i])[int(pos[i])*kvO:int(pos[i]+1)*kvO], k[i*kvO:(i+1)*kvO], 0, 0)
				near(t, shapeName("row %d's value", i), down(t, vs[i])[int(pos[i])*kvO:int(pos[i]+1)*kvO], v[i*kvO:(i+1)*kvO], 0, 0)
			}
			scale := float32(1 / math.Sqrt(float64(c.hd)))
			out, lse, qb := up(t, d, cuda.F32, nans(n*qO)), up(t, d, cuda.F32, nans(n*c.nh)), up(t, d, cuda.F32, q)
			ok(t, d.AttnRows(out, lse, qb, rc, up(t, d, cuda.I32, his), c.nh, c.nkv, c.hd, scale))
			got, gotL := down(t, out), down(t, lse)
			for i := range n {
				if c.hi[i] <= 0 || c.hi[i] > c.caps[i] {
					for _, x := range append(got[i*qO:(i+1)*qO:(i+1)*qO], gotL[i*c.nh:(i+1)*c.nh]...) { // capped: append must not write into the next row
						if x == x {
							t.Fatalf("row %d: an empty range gave %v, want NaN", i, x)
						}
					}
					continue
				}
				wo, wl := zeros(t, d, cuda.F32, qO), zeros(t, d, cuda.F32, c.nh)
				sh := cuda.AttnShape{NQ: 1, NK: c.caps[i], NH: c.nh, NKV: c.nkv, HD: c.hd, MaxLen: c.hi[i],
					Lo: up(t, d, cuda.I32, []int32{0}), Hi: up(t, d, cuda.I32, []int32{his[i]}), Scale: scale}
				ok(t, d.AttnFwd(wo, wl, qb.View(i*qO, qO), ks[i], vs[i], sh))
				near(t, shapeName("row %d out", i), got[i*qO:(i+1)*qO], down(t, wo), 1e-5, 1e-6)
				near(t, shapeName("row %d lse", i), gotL[i*c.nh:(i+1)*c.nh], down(t, wl), 1e-5, 1e-6)
			}
			// Split into chunks (flash-decoding): AttnRows' results up to
			// the sums' order (NaN rows alike), at DecodeSplits' chunking
			// of the largest cache and at one key a chunk.
			maxCap := slices.Max(c.caps)
			s1, c1 := cuda.DecodeSplits(maxCap, n, c.nh, c.nkv)
			for _, sc := range [][2]int{{s1, c1}, {maxCap, 1}} {
				so, sl := up(t, d, cuda.F32, nans(n*qO)), up(t, d, cuda.F32, nans(n*c.nh))
				part := up(t, d, cuda.F32, nans(n*c.nh*sc[0]*(c.hd+2)))
				ok(t, d.AttnRowsSplit(so, sl, qb, rc, up(t, d, cuda.I32, his), c.nh, c.nkv, c.hd, scale, part, sc[0], sc[1]))
				near(t, shapeName("%d splits of %d: out", sc[0], sc[1]), down(t, so), got, 1e-5, 1e-6)
				near(t, shapeName("%d splits of %d: lse", sc[0], sc[1]), down(t, sl), gotL, 1e-5, 1e-6)
			}
			// A position past its cache: nothing written.
			before := down(t, ks[0])
			ok(t, d.KVRows(cuda.RowCaches{K: rc.K, V: rc.V, Cap: rc.Cap, Rows: 1}, up(t, d, cuda.F32, k), up(t, d, cuda.F32, v),
				up(t, d, cuda.I32, []int32{caps[0]}), kvO))
			near(t, "row 0's cache after a position past it", down(t, ks[0]), before, 0, 0)
		})
	}
}

// TestDecodeSplits: the chunking covers every key with no empty chunk,
// chunks of at least 64 keys where there are several, at most
// MaxDecodeSplits; a lone decoded row of a long cache gets enough chunks
// to fill a large card, a batch of many rows few or none.
func TestDecodeSplits(t *testing.T) {
	for _, keys := range []int{1, 63, 64, 65, 200, 1000, 4096, 8192, 32768, 1 << 20} {
		for _, sh := range [][3]int{{1, 14, 2}, {1, 32, 32}, {4, 24, 2}, {64, 32, 8}, {1, 12, 1}} {
			rows, nh, nkv := sh[0], sh[1], sh[2]
			splits, chunk := cuda.DecodeSplits(keys, rows, nh, nkv)
			where := fmt.Sprintf("%d keys, %d rows, %d/%d heads: %d splits of %d", keys, rows, nh, nkv, splits, chunk)
			switch {
			case splits < 1 || splits > cuda.MaxDecodeSplits:
				t.Errorf("%s: splits out of [1, %d]", where, cuda.MaxDecodeSplits)
			case splits*chunk < keys || (splits-1)*chunk >= keys:
				t.Errorf("%s: the chunks do not cover the keys exactly", where)
			case splits > 1 && chunk < 64:
				t.Errorf("%s: chunks under 64 keys", where)
			}
		}
	}
	if s, _ := cuda.DecodeSplits(8192, 1, 14, 2); s != cuda.MaxDecodeSplits {
		t.Errorf("a lone row over 8,192 keys and 2 KV heads: %d splits, want %d (its 2 blocks a chunk fill no card)", s, cuda.MaxDecodeSplits)
	}
	if s, _ := cuda.DecodeSplits(8192, 64, 32, 8); s > 2 {
		t.Errorf("64 rows of 8 KV heads over 8,192 keys: %d splits; their 512 blocks a chunk need few", s)
	}
}
