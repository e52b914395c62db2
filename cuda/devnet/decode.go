//go:build cuda

package devnet

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"weak"

	"distill/core/lora"
	"distill/core/model"
	"distill/cuda"
)

// The forward pass core/model hands Model.Forward to under --device cuda.
func init() {
	model.RegisterAccelerated("cuda", func(m *model.Model) (model.Accelerated, error) {
		d, err := cuda.Open()
		if err != nil {
			return nil, err
		}
		if m.CPULayers == model.AutoCPULayers {
			return autoDecoder(d, m)
		}
		return NewDecoder(d, m)
	})
}

// Decoder is core/model's Accelerated on one device: Model.Forward with the
// weights resident (NF4 storage or bf16, uploaded once) and each cache's
// keys and values mirrored on the device, so a decoded token is one pass of
// device kernels — the fused kernels for a single token (decode_layer.go),
// the training step's GEMMs for anything else — and two small copies: the
// new keys and values down to the host cache (the reference every other
// path reads), the final hidden states down to the caller. An adapter
// (model.Delta a *lora.Adapter) runs unmerged, as on the host, from its own
// upload beside the shared base. With the model's first CPULayers on the
// host (--cpu-offload) it holds only the layers after them, and a pass
// starts from their output, which the host hands it: the device never
// holds the first layers' weights, nor the mirrors their keys and values.
type Decoder struct {
	M    *model.Model
	base *Net

	views   map[*lora.Adapter]*Net // adapters over base's weights, most recent last in viewLRU
	viewLRU []*lora.Adapter
	// mirrors by host cache, most recent last in mirrorLRU; weak, so a cache
	// its owner dropped is collected and its mirror freed at the next pass.
	mirrors   map[weak.Pointer[model.Cache]]*kvMirror
	mirrorLRU []weak.Pointer[model.Cache]
	host      []float32           // a decoded token's results, copied down (reused)
	host16    []uint16            // rows on their way up or down, rounded to bf16 (reused)
	wide      []float32           // rows on their way up or down, widened from bf16 (reused)
	fused     bool                // one token by the fused kernels (layerDecode; gated: fusedVerified)
	graphs    bool                // fused tokens replayed as CUDA graphs (DISTILL_CUDA_GRAPHS=0: not)
	tok       map[*Net]*tokenPass // each net's token workspace and graphs (decode_graph.go)
}

// kvMirror is one host cache's keys and values on the device: per layer
// (capacity, kv heads·head dim), rows [0, the cache's DevLen) as there;
// nil for the host's layers (Net.from). In bf16 where the decoder attends
// with the flash kernels (model.DeviceKVBF16), which round keys and values
// to bf16 before their products anyway: half the memory and the reads, the
// same results. The host cache then gets the rows as the mirror holds them
// (rounded), so both sides read the same keys.
type kvMirror struct {
	k, v        []*cuda.Buffer
	bf16        bool
	table, caps *cuda.Buffer // the row kernels' view of it (decode_split.go's rowView), or nils
}

// rows is the mirror's capacity in positions.
func (m *kvMirror) rows(kvO int) int { return m.k[len(m.k)-1].Len / kvO }

func (m *kvMirror) free() {
	for i := range m.k {
		m.k[i].Free()
		m.v[i].Free()
	}
	m.table.Free()
	m.caps.Free()
	m.k, m.v, m.table, m.caps = nil, nil, nil, nil
}

// Adapters and mirrors kept on the device at once; the least recently used
// goes first (a dropped mirror is uploaded again from the host when its
// cache comes back). Variables for the tests, which lower them to drop
// mirrors and adapters (and their graphs) on purpose.
var (
	maxViews   = 8
	maxMirrors = 64 // and fewer when the device fills: each is dropped first
)

// NewDecoder uploads m's weights to d: those of its layers from
// m.CPULayers on, and the head.
func NewDecoder(d *cuda.Device, m *model.Model) (*Decoder, error) {
	base, err := newFrom(d, m, nil, m.CPULayers)
	if err != nil {
		return nil, err
	}
	return &Decoder{M: m, base: base, views: map[*lora.Adapter]*Net{}, mirrors: map[weak.Pointer[model.Cache]]*kvMirror{},
		fused: fusedReady(), graphs: fusedReady() && os.Getenv("DISTILL_CUDA_GRAPHS") != "0"}, nil
}

// Takes says whether delta runs here: none, or a LoRA adapter of this model.
func (dc *Decoder) Takes(delta model.Delta) bool {
	switch a := delta.(type) {
	case nil:
		return true
	case *lora.Adapter:
		return a == nil || len(a.Layers) == len(dc.M.Layers)
	}
	return false
}

// Close frees the mirrors, the adapters' uploads and the weights.
func (dc *Decoder) Close() {
	for nt := range dc.tok {
		dc.forgetNet(nt)
	}
	for len(dc.mirrorLRU) > 0 {
		dc.drop(0)
	}
	for _, v := range dc.views {
		v.Close()
	}
	dc.views, dc.viewLRU = map[*lora.Adapter]*Net{}, nil
	dc.base.Close()
}

// Forward runs ids at positions c.Len.. (model.Accelerated's contract):
// host rows [c.DevLen, c.Len) go up first, the new keys and values are
// written to the device's mirror and the host cache both, and c.DevLen
// becomes c.Len+len(ids). The caller (Model.Forward) has checked the ids,
// the context and the capacity, and sets c.Len. x is the host layers'
// output (--cpu-offload), nil when the device holds every layer.
func (dc *Decoder) Forward(ids []int, x []float32, c *model.Cache, out []float32) ([]float32, error) {
	if err := dc.checkX(x, len(ids)); err != nil {
		return nil, err
	}
	sp, err := dc.spans([]*model.Cache{c}, len(ids))
	if err != nil {
		return nil, full(err)
	}
	h, err := dc.run(ids, x, sp, out, nil)
	return h, full(err)
}

// checkX refuses a pass's x (the host layers' output) unless it is one
// exactly when the device holds fewer than every layer, of T rows.
func (dc *Decoder) checkX(x []float32, T int) error {
	from, D := dc.base.from, dc.M.Config.HiddenSize
	if (from > 0) != (x != nil) || len(x) != 0 && len(x) != T*D {
		return fmt.Errorf("devnet: a pass of %d rows handed %d floats of the first %d layers' output (the device holds layers %d..; want %d)", T, len(x), from, from, min(from, 1)*T*D)
	}
	return nil
}

// ForwardStep runs one new token for each cache (ids[b] at caches[b].Len),
// each row attending its own cache: Model.ForwardStep's batched decode, on
// the same contract as Forward for every cache.
func (dc *Decoder) ForwardStep(ids []int, x []float32, caches []*model.Cache, out []float32) ([]float32, error) {
	if len(ids) != len(caches) {
		return nil, fmt.Errorf("devnet: a step of %d ids over %d caches", len(ids), len(caches))
	}
	if err := dc.checkX(x, len(ids)); err != nil {
		return nil, err
	}
	sp, err := dc.spans(caches, 1)
	if err != nil {
		return nil, full(err)
	}
	h, err := dc.run(ids, x, sp, out, nil)
	return h, full(err)
}

// ForwardBranches runs the branches after c's prefix (model.Accelerated's
// contract): each row attends the prefix, rows [0, c.Len) of the mirror,
// and, apart, its own branch's earlier rows, which go to the mirror after
// the prefix (scratch: rows past Len are the pass's); the two attentions
// are merged by their log-sum-exps. The branches' keys and values come
// down to the host's rows [Len, Len+T) as the host pass leaves them
// (batched prefill copies them into each sequence's cache); DevLen stays
// at Len.
func (dc *Decoder) ForwardBranches(branches [][]int, x []float32, c *model.Cache) ([]float32, error) {
	var ids []int
	for _, br := range branches {
		ids = append(ids, br...)
	}
	if err := dc.checkX(x, len(ids)); err != nil {
		return nil, err
	}
	sp, err := dc.spans([]*model.Cache{c}, len(ids))
	if err != nil {
		return nil, full(err)
	}
	h, err := dc.run(ids, x, sp, nil, branches)
	return h, full(err)
}

// full marks a failure for want of device memory as model's
// ErrAcceleratorFull: a decoding pass then runs on the host instead, a
// training step again with fewer activations held (core/train).
func full(err error) error {
	if errors.Is(err, cuda.ErrOutOfMemory) {
		return fmt.Errorf("%w: %w", model.ErrAcceleratorFull, err)
	}
	return err
}

// span is a pass's new rows in one cache: n tokens at positions pos.. of c,
// whose device mirror is mir.
type span struct {
	c      *model.Cache
	mir    *kvMirror
	pos, n int
}

// spans makes each cache's mirror current (host rows [DevLen, Len) go up)
// for a pass of n new tokens in each, from their positions Len on.
func (dc *Decoder) spans(caches []*model.Cache, n int) ([]span, error) {
	kvO := dc.M.Config.NumKVHeads * dc.M.Config.HeadDim
	sp := make([]span, len(caches))
	pinned := map[*kvMirror]bool{}
	for i, c := range caches {
		mir, err := dc.mirror(c, pinned)
		if err != nil {
			return nil, err
		}
		pinned[mir] = true
		r0, r1 := c.DevLen*kvO, c.Len*kvO // rows another path wrote since (a host pass, a copied prefix)
		for l := dc.base.from; l < len(mir.k); l++ {
			if r0 < r1 {
				k, v := hostLayer(c, l)
				if err := errors.Join(dc.upRows(mir.k[l], k, r0, r1), dc.upRows(mir.v[l], v, r0, r1)); err != nil {
					return nil, err
				}
			}
		}
		c.DevLen = c.Len // the rows past Len on the device are the pass's to write
		sp[i] = span{c: c, mir: mir, pos: c.Len, n: n}
	}
	return sp, nil
}

// run is one device pass over ids — span by span, each row attending its
// own cache's rows up to itself — leaving the final hidden states in out
// and the new keys and values in both the mirrors and the host caches.
// x, when the host runs the first layers, is their output: the pass's
// input instead of the ids' embeddings.
// With branches (one span, ids their concatenation) each row attends its
// cache's prefix and its own branch instead, and the caches' DevLen stays
// where it was (the new rows are scratch on both sides).
func (dc *Decoder) run(ids []int, x []float32, sp []span, out []float32, branches [][]int) ([]float32, error) {
	D := dc.M.Config.HiddenSize
	T := len(ids)
	nt, err := dc.net(sp)
	if err != nil {
		return nil, err
	}
	idv, pos, lo, hi := make([]int32, T), make([]int32, T), make([]int32, T), make([]int32, T)
	nk, i := 0, 0
	for _, s := range sp {
		for j := range s.n { // row i attends its cache's rows [0, s.pos+j]
			idv[i], pos[i], lo[i], hi[i] = int32(ids[i]), int32(s.pos+j), 0, int32(s.pos+j+1)
			nk = max(nk, s.pos+j+1)
			i++
		}
	}
	if branches != nil { // row i, token j of a branch starting at row b: position P+j, its branch's rows P+b..P+i
		P := sp[0].pos
		for _, br := range branches {
			b := i - T
			for j := range br {
				pos[b+j], lo[b+j], hi[b+j] = int32(P+j), int32(P+b), int32(P+b+j+1)
			}
			i += len(br)
		}
	}
	lay := func() (*pass, error) {
		if dc.fused && T == 1 && branches == nil { // one token: the fused kernels
			return nt.tokenLayout(idv, pos, lo, hi, nk)
		}
		// Anything else — a prompt, a batched step, branches, or one token
		// with DISTILL_CUDA_FUSED=0 — by the training step's GEMMs.
		p, err := nt.layout(idv, pos, lo, hi, nk, nil, nil, passHidden, nil)
		if err == nil && T == 1 && branches == nil { // one token: its attention split, when the gate is open
			if p.splitPart = p.takeSplit(1); p.err != nil {
				p.free()
				return nil, p.err
			}
		}
		if err != nil || branches == nil || sp[0].pos == 0 {
			return p, err
		}
		// Branches: the prefix attended apart, every row keys [0, P).
		c, P, T := &dc.M.Config, sp[0].pos, len(ids)
		zero, prefix := make([]int32, T), make([]int32, T)
		for r := range prefix {
			prefix[r] = int32(P)
		}
		p.prefix = cuda.AttnShape{NQ: T, NK: P, NH: c.NumHeads, NKV: c.NumKVHeads, HD: c.HeadDim, MaxLen: P,
			Lo: p.up(cuda.I32, zero), Hi: p.up(cuda.I32, prefix), Scale: p.attn.Scale}
		p.attPre, p.lsePre = p.take(cuda.F32, T*c.NumHeads*c.HeadDim), p.take(cuda.F32, T*c.NumHeads)
		if err := p.failed(); err != nil {
			p.free()
			return nil, err
		}
		return p, nil
	}
	if h, done, err := dc.runGraph(nt, ids, x, sp, out, branches); done {
		return h, err
	}
	p, err := lay()
	if errors.Is(err, cuda.ErrOutOfMemory) { // what other passes hold goes, then once more
		dc.dropIdle(sp, nt)
		if err := dc.base.D.Pool.Trim(); err != nil {
			return nil, err
		}
		p, err = lay()
	}
	if err != nil {
		return nil, err
	}
	defer p.free()
	p.spans = sp
	if dc.fused && branches == nil { // a batched step: two launches a layer for its attention
		p.rowCaches(sp)
	}
	if x != nil { // the residual stream the layers update in place starts as the host's (after rowCaches, which clears its own failures)
		p.do(cuda.Write(p.xs[len(p.xs)-1], 0, x))
	}
	p.forward()
	if err := p.failed(); err != nil {
		return nil, err
	}
	if out == nil {
		out = make([]float32, T*D)
	}
	if err := dc.download(p, sp, out[:T*D]); err != nil {
		return nil, err
	}
	if branches != nil { // rows past Len stay scratch: the mirror holds the prefix only
		return out[:T*D], nil
	}
	for _, s := range sp {
		s.c.DevLen = s.pos + s.n
	}
	return out[:T*D], nil
}

// attendSpans is layer l's attention while decoding: each span's new keys
// and values join its cache's mirror at their positions, and its rows
// attend that mirror up to themselves (the ranges layout uploaded: row r at
// position q sees keys [0, q]) — one span for a prompt or a token, one per
// cache for a batched step.
func (p *pass) attendSpans(l int) {
	c := &p.nt.M.Config
	H, KV, hd := c.NumHeads, c.NumKVHeads, c.HeadDim
	qO, kvO, a := H*hd, KV*hd, p.a
	if p.rows != nil {
		p.attendRows(l)
		return
	}
	r := 0 // the span's first row in the pass
	for _, s := range p.spans {
		if !p.fused { // the fused pass wrote its row already (DecodeQKV)
			p.intoMirror(s.mir.k[l].View(s.pos*kvO, s.n*kvO), a.k.View(r*kvO, s.n*kvO))
			p.intoMirror(s.mir.v[l].View(s.pos*kvO, s.n*kvO), a.v.View(r*kvO, s.n*kvO))
		}
		nk := s.pos + s.n
		if p.graphed { // any position: the rows' ranges bound what they read
			nk = s.mir.k[l].Len / kvO
		}
		if s.n == 1 && p.splitPart != nil && s.mir.table != nil && p.prefix.NQ == 0 { // a decoded token, split (decode_split.go)
			p.attendSplit(l, r, s, nk)
			r++
			continue
		}
		sh := cuda.AttnShape{NQ: s.n, NK: nk, NH: H, NKV: KV, HD: hd, MaxLen: nk,
			Lo: p.attn.Lo.View(r, s.n), Hi: p.attn.Hi.View(r, s.n), Scale: p.attn.Scale}
		fwd := p.d.AttnFwdGemm
		if p.flash {
			fwd = p.d.AttnFwdFlash
		}
		p.do(fwd(a.att.View(r*qO, s.n*qO), a.lse.View(r*H, s.n*H), a.q.View(r*qO, s.n*qO), s.mir.k[l], s.mir.v[l], sh))
		if p.prefix.NQ > 0 { // branches: their shared prefix apart, then both merged
			p.do(fwd(p.attPre, p.lsePre, a.q.View(r*qO, s.n*qO), s.mir.k[l], s.mir.v[l], p.prefix))
			p.do(p.d.AttnMerge(a.att.View(r*qO, s.n*qO), a.lse.View(r*H, s.n*H), p.attPre, p.lsePre, s.n*H, hd))
		}
		r += s.n
	}
}

// stageRows bounds the prompts whose results come down in one copy, like a
// few decoded tokens' or a batched step's (where each copy's
// synchronisation is a visible share of the pass); a longer prompt's come
// down as they lie.
const stageRows = 64

// download copies the pass's final hidden states into out and each span's
// new keys and values (its rows pos..pos+n of every layer) into its host
// cache, the reference: gathered on the device and copied down at once for
// a few decoded tokens, else each as it lies.
func (dc *Decoder) download(p *pass, sp []span, out []float32) error {
	T := p.n
	D, L, from := len(out)/T, len(dc.M.Layers), dc.base.from
	kvO := dc.M.Config.NumKVHeads * dc.M.Config.HeadDim
	if T > stageRows && len(sp) == 1 { // a prompt: its rows as they lie
		if err := cuda.Read(p.hf, 0, out); err != nil {
			return err
		}
		for _, s := range sp {
			r0, r1 := s.pos*kvO, (s.pos+s.n)*kvO
			for l := from; l < L; l++ {
				k, v := hostLayer(s.c, l)
				if err := errors.Join(dc.downRows(k, s.mir.k[l], r0, r1), dc.downRows(v, s.mir.v[l], r0, r1)); err != nil {
					return err
				}
			}
		}
		return nil
	}
	stage := p.stage // the fused pass's, filled as it ran
	if stage == nil {
		stage = p.take(cuda.F32, T*D+2*(L-from)*T*kvO)
	}
	if stage != nil && !p.fused {
		p.do(p.hf.View(0, T*D).CopyTo(stage))
		off := T * D
		for _, s := range sp {
			rows := s.n * kvO
			for l := from; l < L; l++ {
				p.fromMirror(stage.View(off, rows), s.mir.k[l].View(s.pos*kvO, rows))
				p.fromMirror(stage.View(off+rows, rows), s.mir.v[l].View(s.pos*kvO, rows))
				off += 2 * rows
			}
		}
	}
	if err := p.failed(); err != nil {
		return err
	}
	return dc.readStage(stage, sp, out)
}

// readStage copies a pass's staged results down: the hidden states into
// out, then each span's new key and value rows, layer by layer (those the
// device holds), into its host cache.
func (dc *Decoder) readStage(stage *cuda.Buffer, sp []span, out []float32) error {
	kvO := dc.M.Config.NumKVHeads * dc.M.Config.HeadDim
	dc.host = slices.Grow(dc.host[:0], stage.Len)[:stage.Len]
	if err := cuda.Read(stage, 0, dc.host); err != nil {
		return err
	}
	off := copy(out, dc.host)
	for _, s := range sp {
		r0, r1 := s.pos*kvO, (s.pos+s.n)*kvO
		for l := dc.base.from; l < len(dc.M.Layers); l++ {
			k, v := hostLayer(s.c, l)
			off += k.set(r0, dc.host[off:off+r1-r0])
			off += v.set(r0, dc.host[off:off+r1-r0])
		}
	}
	return nil
}

// Logits projects T hidden rows (T, hidden) to (T, vocab) with the LM head
// the device holds: a bf16 matrix-vector product for one row, a GEMM over
// their bf16 rounding for more (as the training step's loss head).
func (dc *Decoder) Logits(out, hidden []float32, T int) error {
	err := dc.logits(out, hidden, T)
	if errors.Is(err, cuda.ErrOutOfMemory) { // the KV mirrors and other adapters' uploads go (reloaded on use), then once more
		var cur *Net
		if a, ok := dc.M.Delta.(*lora.Adapter); ok {
			cur = dc.views[a]
		}
		dc.dropIdle(nil, cur)
		if terr := dc.base.D.Pool.Trim(); terr != nil {
			return full(errors.Join(err, terr))
		}
		err = dc.logits(out, hidden, T)
	}
	return full(err)
}

func (dc *Decoder) logits(out, hidden []float32, T int) error {
	if T == 0 {
		return nil
	}
	cfg := &dc.M.Config
	D, V, d := cfg.HiddenSize, cfg.VocabSize, dc.base.D
	h, err := cuda.Upload(d, cuda.F32, hidden[:T*D])
	if err != nil {
		return err
	}
	defer h.Free()
	y, err := d.Alloc(cuda.F32, T*V)
	if err != nil {
		return err
	}
	defer y.Free()
	if T == 1 {
		err = d.BF16MatVec(y, dc.base.head, h, V, D)
	} else {
		hb, aerr := d.Alloc(cuda.BF16, T*D)
		if aerr != nil {
			return aerr
		}
		defer hb.Free()
		err = errors.Join(d.ToBF16(hb, h, T*D), d.GemmBF16(false, true, T, V, D, 1, hb, D, dc.base.head, D, 0, y, V))
	}
	if err != nil {
		return err
	}
	return cuda.Read(y, 0, out[:T*V])
}

// net is the Net for the model's delta now: the base, or the adapter's
// view over it (uploaded on first use, the least recent dropped past
// maxViews; where the device has no room for the upload, the other
// adapters' uploads go first, then the mirrors of caches other than sp's).
func (dc *Decoder) net(sp []span) (*Net, error) {
	a, _ := dc.M.Delta.(*lora.Adapter)
	for i := len(dc.viewLRU) - 1; i >= 0; i-- { // uploads of adapters no longer served
		if old := dc.viewLRU[i]; old != a && old.Retired() {
			dc.dropView(i)
		}
	}
	if a == nil {
		return dc.base, nil
	}
	if v, ok := dc.views[a]; ok {
		dc.viewLRU = append(slices.DeleteFunc(dc.viewLRU, func(x *lora.Adapter) bool { return x == a }), a)
		return v, nil
	}
	if len(dc.viewLRU) >= maxViews {
		dc.dropView(0)
	}
	v, err := dc.base.view(a)
	for errors.Is(err, cuda.ErrOutOfMemory) {
		if len(dc.viewLRU) > 0 { // the others' uploads go first (loaded again on use), least recent first
			dc.dropView(0)
		} else if !dc.dropIdle(sp, nil) { // then other caches' mirrors (the host keeps their rows)
			break // nothing left to free: the pass runs on the host
		}
		if terr := dc.base.D.Pool.Trim(); terr != nil {
			err = errors.Join(err, terr) // still out of memory: the pass runs on the host
			break
		}
		v, err = dc.base.view(a)
	}
	if err != nil {
		return nil, err
	}
	dc.views[a] = v
	dc.viewLRU = append(dc.viewLRU, a)
	return v, nil
}

// dropIdle frees what a pass over sp with nt does not use: other caches'
// mirrors (the host keeps their rows) and other adapters' uploads (loaded
// again on use). It says whether it freed anything.
func (dc *Decoder) dropIdle(sp []span, nt *Net) bool {
	keep := map[*kvMirror]bool{}
	for _, s := range sp {
		keep[s.mir] = true
	}
	freed := false
	for i := len(dc.mirrorLRU) - 1; i >= 0; i-- {
		if !keep[dc.mirrors[dc.mirrorLRU[i]]] {
			dc.drop(i)
			freed = true
		}
	}
	for i := len(dc.viewLRU) - 1; i >= 0; i-- {
		if dc.views[dc.viewLRU[i]] != nt {
			dc.dropView(i)
			freed = true
		}
	}
	return freed
}

// dropView frees the i-th least recently used adapter's upload and its
// token workspace and graphs.
func (dc *Decoder) dropView(i int) {
	old := dc.viewLRU[i]
	dc.forgetNet(dc.views[old])
	dc.views[old].Close()
	delete(dc.views, old)
	dc.viewLRU = slices.Delete(dc.viewLRU, i, i+1)
}

// mirror is c's device mirror, made (with c.DevLen 0) when c has none,
// dropping the least recently used ones past maxMirrors or while the
// device is out of memory — never a pinned one (this pass's) — and those
// of caches collected since.
func (dc *Decoder) mirror(c *model.Cache, pinned map[*kvMirror]bool) (*kvMirror, error) {
	for i := len(dc.mirrorLRU) - 1; i >= 0; i-- {
		if dc.mirrorLRU[i].Value() == nil {
			dc.drop(i)
		}
	}
	wp := weak.Make(c)
	if m, ok := dc.mirrors[wp]; ok {
		dc.mirrorLRU = append(slices.DeleteFunc(dc.mirrorLRU, func(x weak.Pointer[model.Cache]) bool { return x == wp }), wp)
		return m, nil
	}
	c.DevLen = 0
	kvO := dc.M.Config.NumKVHeads * dc.M.Config.HeadDim
	bf16 := dc.CacheBF16()
	for {
		if len(dc.mirrorLRU)-len(pinned) < maxMirrors {
			m, err := dc.alloc(c.Cap*kvO, bf16)
			if err == nil {
				dc.mirrors[wp] = m
				dc.mirrorLRU = append(dc.mirrorLRU, wp)
				return m, nil
			}
			if len(dc.mirrorLRU) == len(pinned) {
				return nil, fmt.Errorf("devnet: a KV cache of %d positions: %w", c.Cap, err)
			}
		}
		i := slices.IndexFunc(dc.mirrorLRU, func(w weak.Pointer[model.Cache]) bool { return !pinned[dc.mirrors[w]] })
		dc.drop(i) // make room: the host keeps its rows
	}
}

// drop frees the i-th least recently used mirror; its cache, if alive,
// holds nothing on the device any more.
func (dc *Decoder) drop(i int) {
	wp := dc.mirrorLRU[i]
	dc.forgetMirror(dc.mirrors[wp])
	dc.mirrors[wp].free()
	delete(dc.mirrors, wp)
	if c := wp.Value(); c != nil {
		c.DevLen = 0
	}
	dc.mirrorLRU = slices.Delete(dc.mirrorLRU, i, i+1)
}

// alloc makes a mirror of 2 buffers of n elements (bf16 or f32) for each
// layer the device holds (nils for the host's).
func (dc *Decoder) alloc(n int, bf16 bool) (*kvMirror, error) {
	from := dc.base.from
	m := &kvMirror{k: make([]*cuda.Buffer, from), v: make([]*cuda.Buffer, from), bf16: bf16}
	kind := cuda.F32
	if bf16 {
		kind = cuda.BF16
	}
	for range len(dc.M.Layers) - from {
		k, err1 := dc.base.D.Alloc(kind, n)
		v, err2 := dc.base.D.Alloc(kind, n)
		if err := errors.Join(err1, err2); err != nil {
			k.Free()
			v.Free()
			m.free()
			return nil, err
		}
		m.k, m.v = append(m.k, k), append(m.v, v)
	}
	if err := dc.rowView(m); err != nil {
		m.free()
		return nil, err
	}
	return m, nil
}

// view is a Net over nt's weights with adapter a: a's parameters uploaded,
// no gradients (inference).
func (nt *Net) view(a *lora.Adapter) (*Net, error) {
	if len(a.Layers) != len(nt.M.Layers) {
		return nil, fmt.Errorf("devnet: adapter has %d layers, model %d", len(a.Layers), len(nt.M.Layers))
	}
	v := &Net{D: nt.D, M: nt.M, A: a, HeadRows: nt.HeadRows, SimpleAttention: nt.SimpleAttention, GemmAttention: nt.GemmAttention, Profile: nt.Profile,
		layers: nt.layers, embed: nt.embed, head: nt.head, norm: nt.norm, tileSize: nt.tileSize, tileDim: nt.tileDim, isView: true,
		ropeFrom: nt, from: nt.from}
	if err := v.uploadAdapter(false); err != nil {
		v.Close()
		return nil, err
	}
	return v, nil
}

var _ model.Accelerated = (*Decoder)(nil)
