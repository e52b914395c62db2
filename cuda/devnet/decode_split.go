//go:build cuda

package devnet

import (
	"sync/atomic"

	"distill/cuda"
)

// Flash-decoding: a decoded row's attention with its keys split into
// chunks, a block each, merged after (cuda.AttnRowsSplit). The flash
// kernels give one decoded row's head one block whatever the cache's
// length, so at 8,192 positions a 0.5B model's 14 heads keep 14 of an
// H200's 132 SMs busy; the batched step's row kernel likewise. Split, a
// cache of n positions is read by up to cuda.MaxDecodeSplits blocks a KV
// head, each attending its group's query heads together (session 25: one
// read of a key for the group's 7 heads in Qwen2.5-0.5B, where a block a
// query head read it 7 times through L2).
// The row kernels attend in f32 over the cache as held (the flash kernels
// round q and P to bf16 too): a single token's hidden state moves within
// bf16's rounding.

// decodeSplitVerified: written without a GPU (sessions 24, 25); its kernels
// pass decode_emu.cpp's f64 references and TestAttnRowsParity, the
// decoder TestDecodeSplit on the emulated device. Gated until a GPU
// measures it against the flash kernels at long contexts (devcheck.sh's
// DECODE_CONTEXT runs with DISTILL_CUDA_DECODE_SPLIT=1).
const decodeSplitVerified = false

// DISTILL_CUDA_DECODE_SPLIT=0 or 1 overrides the gate either way.
func decodeSplitReady() bool { return gateOpen("DISTILL_CUDA_DECODE_SPLIT", decodeSplitVerified) }

// splitPasses counts the attentions that ran split (the tests check the
// split runs did).
var splitPasses atomic.Int64

// rowView makes m's table for the row kernels, when the gate is open: each
// layer's key and value buffers' addresses (the host's layers, which it
// lacks, standing in as the first held one's) and its capacity in rows.
func (dc *Decoder) rowView(m *kvMirror) error {
	if !decodeSplitReady() {
		return nil // a mirror without one attends by the flash kernels
	}
	L, from := len(dc.M.Layers), dc.base.from
	kvO := dc.M.Config.NumKVHeads * dc.M.Config.HeadDim
	addrs := make([]*cuda.Buffer, 2*L)
	for l := range L {
		h := max(l, from)
		addrs[l], addrs[L+l] = m.k[h], m.v[h]
	}
	var err error
	if m.table, err = cuda.Upload(dc.base.D, cuda.Addr, cuda.CacheTable(addrs)); err != nil {
		return err
	}
	m.caps, err = cuda.Upload(dc.base.D, cuda.I32, []int32{int32(m.rows(kvO))})
	return err
}

// caches is layer l of m's table as one row's RowCaches.
func (m *kvMirror) caches(l, layers int) cuda.RowCaches {
	return cuda.RowCaches{K: m.table.View(l, 1), V: m.table.View(layers+l, 1), Cap: m.caps, Rows: 1, BF16: m.bf16}
}

// takeSplit lays out the scratch of split attention over rows rows of up
// to cuda.MaxDecodeSplits chunks, when the gate is open and the row kernels
// take the net's heads (size ≤ 128; no other attention asked for).
func (p *pass) takeSplit(rows int) *cuda.Buffer {
	c := &p.nt.M.Config
	if !decodeSplitReady() || c.HeadDim > 128 || p.nt.SimpleAttention || p.nt.GemmAttention {
		return nil
	}
	return p.take(cuda.F32, rows*c.NumHeads*cuda.MaxDecodeSplits*(c.HeadDim+2))
}

// attendSplit is layer l's attention of the decoded row r (span s) over
// keys [0, its range) of its mirror, split: the chunks of nk keys, the
// range's bound (the mirror's rows when the pass is a graph's).
func (p *pass) attendSplit(l, r int, s span, nk int) {
	c := &p.nt.M.Config
	H, KV, hd, a := c.NumHeads, c.NumKVHeads, c.HeadDim, p.a
	splits, chunk := cuda.DecodeSplits(nk, 1, H, KV)
	p.do(p.d.AttnRowsSplit(a.att.View(r*H*hd, H*hd), a.lse.View(r*H, H), a.q.View(r*H*hd, H*hd), s.mir.caches(l, len(p.nt.layers)),
		p.attn.Hi.View(r, 1), H, KV, hd, p.attn.Scale, p.splitPart, splits, chunk))
	if l == p.nt.from {
		splitPasses.Add(1)
	}
}
