//go:build cuda

package devnet

import (
	"sync/atomic"

	"distill/cuda"
)

// A batched decode step (Model.ForwardStep: serving's continuous batching)
// is one token of each of many sequences, each over its own cache. Span by
// span (attendSpans) its attention takes three launches per row and layer
// (two copies into the row's mirror and a flash pass over it); with the row
// tables below it is two per layer whatever the batch: KVRows writes every
// row's key and value into its own mirror, AttnRows attends each row over
// its own. Gated with the fused kernels (fusedReady).

// rowTables is a batched pass's per-row caches: for each layer the rows'
// mirror buffers' addresses (keys, then values), and each mirror's rows.
type rowTables struct {
	addr *cuda.Buffer // Addr (2·layers·rows): layer l's keys at l·rows, values at (layers+l)·rows
	caps *cuda.Buffer // I32 (rows)
	rows int
	bf16 bool // the mirrors hold bf16
	// With the gate open (decode_split.go): each row's keys split into
	// splits chunks of chunk, their partial results in part.
	part          *cuda.Buffer
	splits, chunk int
}

// rowsPasses counts the batched passes that ran through the row tables (the
// tests check the fused runs did).
var rowsPasses atomic.Int64

// rowCaches lays out p's row tables when it is a batched step the row
// kernels take: more than one cache, one token each, no branches, head size
// ≤ 128.
func (p *pass) rowCaches(sp []span) {
	c := &p.nt.M.Config
	if len(sp) < 2 || c.HeadDim > 128 || p.nt.SimpleAttention || p.nt.GemmAttention {
		return
	}
	if p.err != nil {
		return // an error already pending is the caller's to report
	}
	L, from, n, kvO := len(p.nt.layers), p.nt.from, len(sp), c.NumKVHeads*c.HeadDim
	caps, addrs := make([]int32, n), make([]*cuda.Buffer, 2*L*n) // layer l's keys at l·n, values at (L+l)·n
	for i, s := range sp {
		if s.n != 1 || s.mir.bf16 != sp[0].mir.bf16 { // mirrors of both kinds (DISTILL_CUDA_KV_BF16 changed): span by span
			return
		}
		caps[i] = int32(s.mir.rows(kvO))
		for l := range L { // the host's layers (Net.from) never read theirs: the first held layer's stand there
			h := max(l, from)
			addrs[l*n+i], addrs[(L+l)*n+i] = s.mir.k[h], s.mir.v[h]
		}
	}
	t := &rowTables{rows: n, bf16: sp[0].mir.bf16}
	if t.addr = p.take(cuda.Addr, len(addrs)); t.addr != nil {
		p.do(cuda.Write(t.addr, 0, cuda.CacheTable(addrs)))
	}
	t.caps = p.up(cuda.I32, caps)
	if decodeSplitReady() {
		keys := 0
		for _, s := range sp {
			keys = max(keys, s.pos+1)
		}
		c := &p.nt.M.Config
		t.splits, t.chunk = cuda.DecodeSplits(keys, n, c.NumHeads, c.NumKVHeads)
		t.part = p.take(cuda.F32, n*c.NumHeads*t.splits*(c.HeadDim+2))
	}
	if p.err != nil { // nothing has run yet: the step attends span by span instead
		p.err = nil
		return
	}
	p.rows = t
	rowsPasses.Add(1)
}

// layer is layer l's RowCaches.
func (t *rowTables) layer(l, layers int) cuda.RowCaches {
	return cuda.RowCaches{K: t.addr.View(l*t.rows, t.rows), V: t.addr.View((layers+l)*t.rows, t.rows), Cap: t.caps, Rows: t.rows, BF16: t.bf16}
}

// attendRows is attendSpans for a batched step with row tables: every
// row's new key and value into its own mirror, then each row over its own.
func (p *pass) attendRows(l int) {
	c := &p.nt.M.Config
	H, KV, hd, a := c.NumHeads, c.NumKVHeads, c.HeadDim, p.a
	rc := p.rows.layer(l, len(p.nt.layers))
	p.do(p.d.KVRows(rc, a.k, a.v, p.pos, KV*hd))
	if p.rows.part != nil {
		p.do(p.d.AttnRowsSplit(a.att, a.lse, a.q, rc, p.attn.Hi, H, KV, hd, p.attn.Scale, p.rows.part, p.rows.splits, p.rows.chunk))
		if l == p.nt.from {
			splitPasses.Add(1)
		}
		return
	}
	p.do(p.d.AttnRows(a.att, a.lse, a.q, rc, p.attn.Hi, H, KV, hd, p.attn.Scale))
}
