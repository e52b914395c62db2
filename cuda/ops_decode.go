//go:build cuda

package cuda

/*
#include "distill_cuda.h"
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// The fused ops of one decoded token (kernels/matvec.cu, kernels/decode.cu):
// a decoded layer in a handful of launches, for a small model's decode is
// bound by the host's launch rate.

// MatVecOut is one output of MatVecFused: Y(rows) = W·x' (+ Bias) (+ Res),
// W an NF4 weight or a dense bf16 (Rows, cols) one. Res must not overlap Y.
type MatVecOut struct {
	NF4       *NF4Weight
	Dense     *Buffer // bf16, when NF4 is nil
	Rows      int     // Dense's rows (an NF4 weight has its own)
	Y         *Buffer
	Bias, Res *Buffer // optional (rows)
}

// Prologue is what MatVecFused does to its input x(cols) before the
// products: nothing, RMSNorm (x' = x·rstd·W, eps), or SwiGLU (x' =
// silu(W)·x, W the gate, x the up projection). Out gets x'.
type Prologue struct {
	Kind   PrologueKind
	W, Out *Buffer
	Eps    float32
}

type PrologueKind int

const (
	NoPrologue PrologueKind = iota
	RMSNormPrologue
	SwiGLUPrologue
)

func (k PrologueKind) String() string {
	return [...]string{"none", "rmsnorm", "swiglu"}[k]
}

// MatVecFused runs up to three products over one input x(cols) — all NF4
// or all dense — with the prologue and each output's bias and residual, in
// one launch where the shapes allow (one kind of weight, the fast kernels'
// alignment and column counts; else op by op, same results). No output may
// overlap the input or the prologue's buffers.
func (d *Device) MatVecFused(x *Buffer, cols int, pro Prologue, outs ...MatVecOut) error {
	op := fmt.Sprintf("mv_fused(%d outputs, %d cols, prologue %v)", len(outs), cols, pro.Kind)
	c := check(op).true(len(outs) >= 1 && len(outs) <= 3, "1 to 3 outputs").buf("x", x, F32, cols)
	if pro.Kind != NoPrologue {
		c.true(pro.Kind == RMSNormPrologue || pro.Kind == SwiGLUPrologue, "unknown prologue").
			buf("prologue W", pro.W, F32, cols).buf("prologue out", pro.Out, F32, cols).
			true(!overlaps(pro.Out, cols, x, cols) && !overlaps(pro.Out, cols, pro.W, cols), "the prologue's output overlaps its inputs")
	}
	var j C.dc_mv_job
	j.n, j.cols, j.pro_kind, j.eps = C.int(len(outs)), C.int(cols), C.int(pro.Kind), C.float(pro.Eps)
	j.pro, j.xo = (*C.float)(addr(pro.W)), (*C.float)(addr(pro.Out))
	for i, o := range outs {
		if c.err != nil {
			break
		}
		rows := o.Rows
		if o.NF4 != nil {
			rows = o.NF4.Rows
			c.true(o.NF4.Cols == cols, "output %d: %s has %d columns", i, o.NF4.Name, o.NF4.Cols)
			j.o[i].nf4 = o.NF4.c()
		} else {
			c.buf(fmt.Sprintf("W%d", i), o.Dense, BF16, rows*cols)
			j.o[i].bf16 = (*C.uint16_t)(addr(o.Dense))
		}
		c.buf(fmt.Sprintf("y%d", i), o.Y, F32, rows).opt(fmt.Sprintf("bias%d", i), o.Bias, F32, rows).
			opt(fmt.Sprintf("res%d", i), o.Res, F32, rows)
		// Blocks write y while others still read x and the prologue's
		// weight; y is read back (res) by the thread that writes it only.
		c.true(!overlaps(o.Y, rows, o.Res, rows) && !overlaps(o.Y, rows, x, cols) && !overlaps(o.Y, rows, pro.W, cols) && !overlaps(o.Y, rows, pro.Out, cols),
			"output %d overlaps the input, the prologue's buffers or its residual", i)
		j.o[i].rows, j.o[i].y = C.int(rows), (*C.float)(addr(o.Y))
		j.o[i].bias, j.o[i].res = (*C.float)(addr(o.Bias)), (*C.float)(addr(o.Res))
	}
	if c.err != nil {
		return c.err
	}
	return call(func() C.int { return C.dc_mv_fused(&j, (*C.float)(x.ptr)) })
}

// overlaps says whether a's first an elements and b's first bn share
// memory (false when either is nil).
func overlaps(a *Buffer, an int, b *Buffer, bn int) bool {
	if a == nil || b == nil || a.ptr == nil || b.ptr == nil {
		return false
	}
	a0, b0 := uintptr(a.ptr), uintptr(b.ptr)
	a1, b1 := a0+uintptr(min(an, a.Len)*a.Kind.Size()), b0+uintptr(min(bn, b.Len)*b.Kind.Size())
	return a0 < b1 && b0 < a1
}

// DecodeQKVArgs: DecodeQKV carries one decoded token's projections to the attention in
// one launch: q's and k's heads RMS-normalised by QNorm, KNorm (optional:
// Qwen3's per-head norms) and rotated (RoPE at the position in Pos[0], from
// tables of Tables positions); q in place; k's result and v into row Pos[0]
// of KCache, VCache ((Cap, kv·hd) each, both F32 or both BF16: rounded to
// nearest even) and into KStage, VStage (optional: the rows the host copies
// down, what the caches hold). The position must lie in [0, min(Cap,
// Tables)): outside, nothing is written (the caller checks it first).
type DecodeQKVArgs struct {
	Q, K, V, QNorm, KNorm *Buffer
	Eps                   float32
	Pos, Cos, Sin         *Buffer
	Tables                int
	KCache, VCache        *Buffer
	KStage, VStage        *Buffer
	Cap, NH, NKV, HD      int
}

// DecodeQKV runs a (see DecodeQKVArgs).
func (d *Device) DecodeQKV(a DecodeQKVArgs) error {
	qO, kvO, half := a.NH*a.HD, a.NKV*a.HD, a.HD/2
	c := check(fmt.Sprintf("decode_qkv(heads %d/%d, hd %d)", a.NH, a.NKV, a.HD)).
		true(a.NH > 0 && a.NKV > 0 && a.NH%a.NKV == 0 && a.HD > 0 && a.HD%2 == 0, "bad head shape").
		buf("q", a.Q, F32, qO).buf("k", a.K, F32, kvO).buf("v", a.V, F32, kvO).
		opt("q norm", a.QNorm, F32, a.HD).opt("k norm", a.KNorm, F32, a.HD).true((a.QNorm == nil) == (a.KNorm == nil), "q and k norms go together").
		buf("pos", a.Pos, I32, 1).buf("cos", a.Cos, F32, a.Tables*half).buf("sin", a.Sin, F32, a.Tables*half).
		buf("k cache", a.KCache, cacheKind(a.KCache), a.Cap*kvO).buf("v cache", a.VCache, cacheKind(a.KCache), a.Cap*kvO).
		opt("k stage", a.KStage, F32, kvO).opt("v stage", a.VStage, F32, kvO)
	if c.err != nil {
		return c.err
	}
	g := C.dc_decode_qkv_args{
		q: (*C.float)(a.Q.ptr), k: (*C.float)(a.K.ptr), v: (*C.float)(a.V.ptr),
		q_norm: (*C.float)(addr(a.QNorm)), k_norm: (*C.float)(addr(a.KNorm)), eps: C.float(a.Eps),
		pos: (*C.int32_t)(a.Pos.ptr), cos_t: (*C.float)(a.Cos.ptr), sin_t: (*C.float)(a.Sin.ptr), tables: C.int(a.Tables),
		k_cache: a.KCache.ptr, v_cache: a.VCache.ptr, kv_bf16: cbool(a.KCache.Kind == BF16),
		k_stage: (*C.float)(addr(a.KStage)), v_stage: (*C.float)(addr(a.VStage)),
		cap: C.int(a.Cap), nh: C.int(a.NH), nkv: C.int(a.NKV), hd: C.int(a.HD),
	}
	return call(func() C.int { return C.dc_decode_qkv(&g) })
}

// RowCaches is a batched decode step's caches, one per row, for one layer:
// K[r], V[r] (Addr, nr device addresses) are row r's key and value buffers
// ((Cap[r], kv·hd) each, f32, or bf16 for BF16); Cap (I32, nr) their rows.
// CacheTable makes one.
type RowCaches struct {
	K, V, Cap *Buffer
	Rows      int
	BF16      bool // every cache holds bf16
}

// CacheTable lists buffers' device addresses as an Addr table's contents.
func CacheTable(bufs []*Buffer) []uint64 {
	t := make([]uint64, len(bufs))
	for i, b := range bufs {
		t[i] = uint64(uintptr(b.ptr))
	}
	return t
}

// KVRows writes each row's new key and value (k, v: (rows, kvO)) into row
// Pos[r] of its own cache (a position outside [0, Cap[r]) writes nothing:
// the caller checks it first).
func (d *Device) KVRows(c RowCaches, k, v, pos *Buffer, kvO int) error {
	n := c.Rows
	if err := check(fmt.Sprintf("kv_rows(rows %d, kv width %d)", n, kvO)).buf("k", k, F32, n*kvO).buf("v", v, F32, n*kvO).
		buf("pos", pos, I32, n).buf("k caches", c.K, Addr, n).buf("v caches", c.V, Addr, n).buf("caps", c.Cap, I32, n).err; err != nil {
		return err
	}
	g := C.dc_kv_rows_args{k: (*C.float)(k.ptr), v: (*C.float)(v.ptr), k_cache: (*unsafe.Pointer)(c.K.ptr), v_cache: (*unsafe.Pointer)(c.V.ptr),
		pos: (*C.int32_t)(pos.ptr), cap: (*C.int32_t)(c.Cap.ptr), nr: C.int(n), kvo: C.int(kvO), kv_bf16: cbool(c.BF16)}
	return call(func() C.int { return C.dc_kv_rows(&g) })
}

// AttnRows is a batched decode step's attention: row r (one token of its
// own sequence, q (rows, nh·hd)) attends keys [0, Hi[r]) of its own cache,
// grouped heads, in f32 (a bf16 cache widened as read), into out (rows,
// nh·hd) and lse (rows, nh); hd ≤ 128; an empty range, or one past the
// row's cache (Cap[r]), gives NaN.
func (d *Device) AttnRows(out, lse, q *Buffer, c RowCaches, hi *Buffer, nh, nkv, hd int, scale float32) error {
	g, err := rowsArgs("attn_rows", out, lse, q, c, hi, nh, nkv, hd, scale)
	if err != nil {
		return err
	}
	return call(func() C.int { return C.dc_attn_rows(&g) })
}

// MaxDecodeSplits bounds AttnRowsSplit's chunks a row (DecodeSplits).
const MaxDecodeSplits = 128

// decodeSplitBlocks is the blocks DecodeSplits aims a launch at: several
// for each SM of the largest cards (132 on an H200), so their warps hide
// each other's reads.
const decodeSplitBlocks = 1024

// DecodeSplits is AttnRowsSplit's chunking of keys positions for rows rows
// of nh query heads over nkv KV heads: as many chunks as bring the launch
// to decodeSplitBlocks blocks (a chunk is a block for each row and each
// KV head's group of up to 8 query heads: fewer chunks as rows and KV heads
// bring blocks of their own), each of at least 64 keys (a block's four
// warps, 16 keys each, amortise the merge), at most MaxDecodeSplits.
func DecodeSplits(keys, rows, nh, nkv int) (splits, chunk int) {
	per := max(1, rows*nkv*((nh/max(1, nkv)+7)/8)) // blocks a chunk
	want := min(MaxDecodeSplits, max(1, (decodeSplitBlocks+per-1)/per), max(1, keys/64))
	chunk = max(1, (keys+want-1)/want)
	return max(1, (keys+chunk-1)/chunk), chunk
}

// AttnRowsSplit is AttnRows with each row's keys in chunks of chunk keys, a
// block each for (up to 8 of) a GQA group's query heads, merged after
// (flash-decoding): a long cache read by many blocks at once, where
// AttnRows gives each (row, head) one, and each key once for the group's
// heads. part is
// scratch of rows·nh·splits·(hd+2) floats; splits·chunk must cover every
// row's range (keys past it are left out): DecodeSplits of the largest
// Hi[r], or of the caches' rows where Hi changes after the launch is
// recorded in a graph.
func (d *Device) AttnRowsSplit(out, lse, q *Buffer, c RowCaches, hi *Buffer, nh, nkv, hd int, scale float32, part *Buffer, splits, chunk int) error {
	op := fmt.Sprintf("attn_rows_split(%d splits of %d)", splits, chunk)
	g, err := rowsArgs(op, out, lse, q, c, hi, nh, nkv, hd, scale)
	if err == nil {
		err = check(op).true(splits > 0 && chunk > 0, "splits and chunk positive").buf("part", part, F32, c.Rows*nh*splits*(hd+2)).err
	}
	if err != nil {
		return err
	}
	return call(func() C.int { return C.dc_attn_rows_split(&g, (*C.float)(part.ptr), C.int(splits), C.int(chunk)) })
}

// rowsArgs checks AttnRows' arguments and lays them out for the kernels.
func rowsArgs(op string, out, lse, q *Buffer, c RowCaches, hi *Buffer, nh, nkv, hd int, scale float32) (C.dc_attn_rows_args, error) {
	n := c.Rows
	if err := check(fmt.Sprintf("%s(rows %d, heads %d/%d, hd %d)", op, n, nh, nkv, hd)).
		true(nh > 0 && nkv > 0 && nh%nkv == 0 && hd > 0 && hd <= 128, "heads must divide, head size in [1, 128]").
		buf("out", out, F32, n*nh*hd).buf("lse", lse, F32, n*nh).buf("q", q, F32, n*nh*hd).buf("hi", hi, I32, n).
		buf("k caches", c.K, Addr, n).buf("v caches", c.V, Addr, n).buf("caps", c.Cap, I32, n).err; err != nil {
		return C.dc_attn_rows_args{}, err
	}
	return C.dc_attn_rows_args{out: (*C.float)(out.ptr), lse: (*C.float)(lse.ptr), q: (*C.float)(q.ptr),
		k_cache: (*unsafe.Pointer)(c.K.ptr), v_cache: (*unsafe.Pointer)(c.V.ptr), hi: (*C.int32_t)(hi.ptr), cap: (*C.int32_t)(c.Cap.ptr),
		nr: C.int(n), nh: C.int(nh), nkv: C.int(nkv), hd: C.int(hd), scale: C.float(scale), kv_bf16: cbool(c.BF16)}, nil
}

// cacheKind is the kind a KV cache buffer may hold: BF16 when it does, else
// F32 (what the checks then ask for).
func cacheKind(b *Buffer) Kind {
	if b != nil && b.Kind == BF16 {
		return BF16
	}
	return F32
}
