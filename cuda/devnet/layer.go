//go:build cuda

package devnet

import (
	"math"
	"sync/atomic"

	"distill/cuda"
)

func sqrt(v float64) float64 { return math.Sqrt(v) }

// Projections run forward and backward as one GEMM with their adapter, in
// this process (the tests' proof that the fused path ran).
var fusedLoRAFwd, fusedLoRABwd atomic.Int64

// Layers whose q, k and v backward ran as one GEMM (linQKVB).
var stackedQKV atomic.Int64

// Projections whose backward under LoRA dropout staged the weight with dy
// in one launch (linBFused without the adapter's columns).
var stagedBwd atomic.Int64

// lin: y(n, out) = x·Wᵀ + bias + s·(x·Aᵀ)·Bᵀ, saving u = x·Aᵀ. xb is x
// already rounded to bf16 (the GEMM's operand; q, k and v share one), its
// rows ldx apart: ldx ≥ in + p.kx leaves the columns the fused GEMM puts u
// in.
func (p *pass) lin(y, x, xb *cuda.Buffer, ldx, l, i int) {
	d, w := p.d, p.nt.layers[l].w[i]
	n, out, in := p.n, w.rows, w.cols
	defer p.mark("elementwise")
	fused := n > 0 && ldx >= in+p.kx && p.fusible(w, l, i) // room beside x's rows for u
	if fused {
		p.linFused(y, x, xb, ldx, l, i)
	} else {
		p.mark("dequant")
		wb := p.weight(w)
		p.mark("gemm")
		if !p.nt.skip["gemm"] {
			p.do(d.GemmBF16(false, true, n, out, in, 1, xb, ldx, wb, in, 0, y, out))
		}
	}
	if b := p.nt.layers[l].bias[i]; b != nil {
		p.mark("elementwise")
		p.do(d.AddBias(y, b, n, out))
	}
	if !fused {
		p.loraFwd(y, x, l, i)
	}
}

// fusible says whether module i of layer l runs as one GEMM with its
// adapter (linFused): the gate open for the pass (p.kx), the module
// targeted, and its weight NF4 (dequantised into the tile anyway, so the
// adapter's columns cost little to place).
func (p *pass) fusible(w *weight, l, i int) bool {
	if p.kx == 0 || w.nf4 == nil || p.nt.skip["lora"] || p.nt.skip["gemm"] || p.nt.skip["dequant"] {
		return false
	}
	A, _, _, _ := p.pair(l, i)
	return A != nil
}

// linFused: y = [x | u]·[W | s·B]ᵀ, one bf16 GEMM over K = in + r (rows
// in + p.kx apart), where u
// = x·Aᵀ (x dropped out first while training) is kept in f32 for the
// backward and rounded beside x's bf16 rows, and W is dequantised into the
// tile's rows with s·B after each (one launch: NF4Stage). The separate
// adapter product would read and write all of y again (gate and up:
// 2·n·F·4 bytes each).
func (p *pass) linFused(y, x, xb *cuda.Buffer, ldx, l, i int) {
	d, w := p.d, p.nt.layers[l].w[i]
	n, out, in := p.n, w.rows, w.cols
	_, B, _, _ := p.pair(l, i)
	r, s := p.nt.A.Config.R, p.nt.A.Config.Scaling()
	p.mark("lora")
	u := p.loraU(x, l, i)
	p.mark("dequant")
	ld := in + p.kx // the tile's rows: W's, s·B's r, padding never read
	tile := p.tile.View(0, out*ld)
	p.do(d.NF4Stage(tile, w.nf4, ld, // W, s·B beside its rows, u beside x's
		cuda.BF16Rows{Dst: tile.View(in, out*ld-in), LDD: ld, Src: B, LDS: r, Rows: out, Cols: r, Scale: s},
		cuda.BF16Rows{Dst: xb.View(in, n*ldx-in), LDD: ldx, Src: u, LDS: r, Rows: n, Cols: r, Scale: 1}))
	p.mark("gemm")
	p.do(d.GemmBF16(false, true, n, out, in+r, 1, xb, ldx, tile, ld, 0, y, out))
	fusedLoRAFwd.Add(1)
}

// loraFwd adds the adapter's s·(x·Aᵀ)·Bᵀ for module i of layer l to
// y(n, out), saving u = x·Aᵀ (x dropped out first while training, as PEFT
// drops the adapter's input only). Nothing when the module is not
// targeted or the pass runs the base alone.
func (p *pass) loraFwd(y, x *cuda.Buffer, l, i int) {
	A, B, _, _ := p.pair(l, i)
	if A == nil || p.nt.skip["lora"] {
		return
	}
	out := p.nt.layers[l].w[i].rows
	p.mark("lora") // the caller marks what comes next
	r, s := p.nt.A.Config.R, p.nt.A.Config.Scaling()
	u := p.loraU(x, l, i)
	p.do(p.d.GemmTF32(false, true, p.n, out, r, s, u, r, B, r, 1, y, out))
}

// loraU sets and returns module i's u = x·Aᵀ (n, r), kept for the
// backward — x dropped out first while training, as PEFT drops the
// adapter's input only.
func (p *pass) loraU(x *cuda.Buffer, l, i int) *cuda.Buffer {
	n, in := p.n, p.nt.layers[l].w[i].cols
	A, _, _, _ := p.pair(l, i)
	u := p.a.u[i]
	if p.uReady&(1<<i) != 0 { // set with its group's (loraUGroup)
		p.uReady &^= 1 << i
		return u
	}
	if p.drop != nil {
		if p.rowSums(u, x, A, in, 1, false, 1, p.masks(l, []int{i})) { // the mask in the pass (lora_u.go)
			return u
		}
		xd := p.dropBuf.View(0, n*in)
		p.dropout(xd, x, n*in, l*nMod+i)
		p.dropHeld = dropHold{x, l*nMod + i, n * in} // the backward's dA may read it again (loraDroppedBwd)
		x = xd
	}
	p.loraRows(u, x, A, p.nt.A.Config.R, in, false, 1)
	return u
}

// linB adds to dx(n, in) the gradient through W and the adapter, and to the
// adapter's gradients: du = s·dy·B, dB += s·dyᵀ·u, dA += duᵀ·x,
// dx += dy·W + du·A. set: dx holds nothing yet — set, not added to.
func (p *pass) linB(dx, dy, x *cuda.Buffer, l, i int, set bool) {
	d, w := p.d, p.nt.layers[l].w[i]
	n, out, in := p.n, w.rows, w.cols
	defer p.mark("elementwise")
	beta := float32(1)
	if set {
		beta = 0
	}
	if n > 0 && p.fusible(w, l, i) {
		p.linBFused(dx, dy, x, l, i, beta)
		return
	}
	yb, ldy := p.xb.View(0, n*out), out
	if h := p.half; h != nil { // dy in bf16 already (a projection without an adapter: mlp_dy_bf16.go)
		yb, ldy = h.y, h.ld
	} else {
		p.do(d.ToBF16(yb, dy, n*out))
	}
	p.mark("dequant")
	wb := p.weight(w)
	p.mark("gemm")
	if !p.nt.skip["gemm"] {
		p.do(d.GemmBF16(false, false, n, in, out, 1, yb, ldy, wb, in, beta, dx, in))
	} else if beta == 0 { // a benchmark leaving the GEMMs out: dx still starts at zero
		p.do(dx.View(0, n*in).Zero())
	}
	A, B, gA, gB := p.pair(l, i)
	if A == nil || p.nt.skip["lora"] {
		return
	}
	p.mark("lora")
	r, s := p.nt.A.Config.R, p.nt.A.Config.Scaling()
	u, du := p.a.u[i], p.du()
	p.loraRows(du, dy, B, r, out, true, s)  // du = s·dy·B
	p.loraCols(gB, dy, u, out, r, false, s) // dB += s·dyᵀ·u
	if p.drop == nil {
		if !p.deferGA && !p.colDA(gA, x, du, l, []int{i}) {
			p.loraCols(gA, x, du, in, r, true, 1) // dA += duᵀ·x
		}
		p.do(d.GemmTF32(false, false, n, in, r, 1, du, r, A, in, 1, dx, in))
		return
	}
	p.loraDroppedBwd(dx, x, du, A, gA, l, i)
}

// loraGradA adds module i's dA += duᵀ·x (x∘mask/(1−p) under LoRA dropout),
// p.du() still module i's: what linB leaves out under p.deferGA, for an x
// written after it.
func (p *pass) loraGradA(x *cuda.Buffer, l, i int) {
	_, _, gA, _ := p.pair(l, i)
	if gA == nil || p.nt.skip["lora"] {
		return
	}
	if p.colDA(gA, x, p.du(), l, []int{i}) {
		return
	}
	n, r, in := p.n, p.nt.A.Config.R, p.nt.layers[l].w[i].cols
	if p.drop != nil {
		buf := p.dropBuf.View(0, n*in)
		p.dropout(buf, x, n*in, l*nMod+i)
		x = buf
	}
	p.loraCols(gA, x, p.du(), in, r, true, 1)
}

// loraDroppedBwd is module i's adapter backward under LoRA dropout, whose
// mask falls on the adapter's input alone: dA += duᵀ·(x∘mask/(1−p)) and dx
// += (du·A)∘mask/(1−p).
func (p *pass) loraDroppedBwd(dx, x, du, A, gA *cuda.Buffer, l, i int) {
	d, n, r, in := p.d, p.n, p.nt.A.Config.R, p.nt.layers[l].w[i].cols
	site := l*nMod + i
	buf := p.dropBuf.View(0, n*in)
	if !p.deferGA && !p.colDA(gA, x, du, l, []int{i}) {
		if !p.holdsDropped(x, site, n*in) {
			p.dropout(buf, x, n*in, site) // the adapter saw x∘mask/(1−p)
		}
		p.loraCols(gA, buf, du, in, r, true, 1)
	}
	switch {
	case p.deferDX: // after its group's members (loraDropDXGroup)
		return
	case dropDXReady():
		p.loraDropDX(dx, du, A, l, i, 1)
		return
	}
	p.do(d.GemmTF32(false, false, n, in, r, 1, du, r, A, in, 0, buf, in))
	p.dropHeld = dropHold{}            // buf is du·A now
	base, thresh, keep := p.drop(site) // dx += (du·A)∘mask/(1−p)
	if p.dropKeys != nil {
		p.do(d.DropoutAddKeyed(dx, buf, n*in, p.dropKeys.View(site, 1), thresh, keep))
	} else {
		p.do(d.DropoutAdd(dx, buf, n*in, base, thresh, keep))
	}
}

// dropout sets dst = x∘mask/(1−p) over n elements with site's mask: its key
// from p.drop, or, in a recorded pass, read by the kernel from p.dropKeys
// (written before each replay).
func (p *pass) dropout(dst, x *cuda.Buffer, n, site int) {
	p.dropHeld = dropHold{} // dst is the dropout buffer: what it held is gone
	base, thresh, keep := p.drop(site)
	if p.dropKeys != nil {
		p.do(p.d.DropoutKeyed(dst, x, n, p.dropKeys.View(site, 1), thresh, keep))
		return
	}
	p.do(p.d.Dropout(dst, x, n, base, thresh, keep))
}

// linBFused is linB as one bf16 GEMM for dx: dx += [dy | du]·[W ; A] over
// K = out + r, dy and du rounded side by side, A's rows after W's in the
// tile, all staged by one launch. Under LoRA dropout the adapter's term
// (du·A)∘mask/(1−p) cannot join the GEMM: the tile holds W alone (K = out),
// still staged with dy in one launch, and the term is added after as linB
// adds it. The adapter's gradients stay TF32 products of the f32 dy, u, du
// and x — or, given p.half (gate's and up's dy in bf16 already: nothing of
// dy staged, its f32 copy never written), du and dB are bf16 products of
// it (mlp_dy_bf16.go). beta 0 sets dx.
func (p *pass) linBFused(dx, dy, x *cuda.Buffer, l, i int, beta float32) {
	d, w := p.d, p.nt.layers[l].w[i]
	n, out, in := p.n, w.rows, w.cols
	A, B, gA, gB := p.pair(l, i)
	r, s := p.nt.A.Config.R, p.nt.A.Config.Scaling()
	u, du := p.a.u[i], p.du()
	ra, ldy := r, out+p.kx // dy's rows, du's r beside them, padding never read
	if p.drop != nil {
		ra, ldy = 0, out
	}
	yb := p.xb.View(0, n*ldy)
	h := p.half // dy in bf16 already (mlp_dy_bf16.go)
	if h != nil {
		yb, ldy = h.y, h.ld
	}
	p.mark("lora")
	if h != nil {
		p.do(d.GemmBF16(false, false, n, r, out, s, yb, ldy, h.B, r, 0, du, r)) // du = s·dy·B
	} else {
		p.loraRows(du, dy, B, r, out, true, s)
	}
	// dy's rounding takes dB too (lora_db.go), before the tile is staged.
	db := h == nil && p.rowsDB(l, i, dy, yb, ldy)
	if db {
		p.rowsDBRun(l, i, dy, yb, ldy)
	}
	p.mark("dequant")
	var jobs []cuda.BF16Rows // W's rows, then A's; dy, and du beside it
	if ra > 0 {
		jobs = append(jobs, cuda.BF16Rows{Dst: p.tile.View(out*in, r*in), LDD: in, Src: A, LDS: in, Rows: r, Cols: in, Scale: 1})
	}
	if h == nil && !db {
		jobs = append(jobs, cuda.BF16Rows{Dst: yb, LDD: ldy, Src: dy, LDS: out, Rows: n, Cols: out, Scale: 1})
	}
	if ra > 0 {
		jobs = append(jobs, cuda.BF16Rows{Dst: yb.View(out, n*ldy-out), LDD: ldy, Src: du, LDS: r, Rows: n, Cols: r, Scale: 1})
	}
	p.do(d.NF4Stage(p.tile.View(0, (out+ra)*in), w.nf4, in, jobs...))
	p.mark("gemm")
	p.do(d.GemmBF16(false, false, n, in, out+ra, 1, yb, ldy, p.tile, in, beta, dx, in))
	p.mark("lora")
	switch {
	case h != nil:
		p.do(d.GemmBF16(true, false, out, r, n, s, yb, ldy, h.u, r, 1, gB, r)) // dB += s·dyᵀ·u
	case !db:
		p.loraCols(gB, dy, u, out, r, false, s)
	}
	if p.drop != nil {
		p.loraDroppedBwd(dx, x, du, A, gA, l, i)
		stagedBwd.Add(1)
		return
	}
	if !p.deferGA && !p.colDA(gA, x, du, l, []int{i}) {
		p.loraCols(gA, x, du, in, r, true, 1) // dA += duᵀ·x
	}
	fusedLoRABwd.Add(1)
}

// linQKVB is linB for q, k and v at once, their input x shared: dx (+)=
// [dq | du_q | dk | du_k | dv | du_v]·[Wq; Aq; Wk; Ak; Wv; Av], one bf16
// GEMM over K = qO + 2·kvO + 3r where linBFused runs three (k's and v's
// with K = kvO + r, a few hundred: small products that fill the device
// poorly, each reading and writing all of dx). The three tiles stacked in
// the tile, the operands side by side in xb, each staged by its own
// NF4Stage as linBFused stages one. Under LoRA dropout the adapter's term
// (du·A)∘mask/(1−p) cannot join the GEMM: the stack holds the base's
// blocks alone (K = qO + 2·kvO) and each module's term is added after, as
// linB adds it. false (nothing done) when the pass is not laid out for it
// (p.stackQKV: training, r a multiple of 8, q, k and v targeted) or a
// module is dense; then the caller runs linB three times.
func (p *pass) linQKVB(dx *cuda.Buffer, dy [3]*cuda.Buffer, x *cuda.Buffer, l int, set bool) bool {
	if !p.stackQKV || p.n == 0 || p.adapterOff {
		return false
	}
	d, n, r := p.d, p.n, p.nt.A.Config.R
	ra := r // the adapter's rows and columns in the stack: none under dropout
	if p.drop != nil {
		ra = 0
	}
	mods := [3]int{mQ, mK, mV}
	K, in := 0, p.nt.layers[l].w[mQ].cols
	for _, m := range mods {
		w := p.nt.layers[l].w[m]
		if !p.fusible(w, l, m) || w.cols != in {
			return false
		}
		K += w.rows + ra
	}
	if K*in > p.tile.Len || n*K > p.xb.Len {
		return false
	}
	defer p.mark("elementwise")
	s := p.nt.A.Config.Scaling()
	yb, tile := p.xb.View(0, n*K), p.tile.View(0, K*in)
	// Each module's du, and its dB where dy's rounding takes it (lora_db.go:
	// all three before the tile is staged, their sums in it), then the stack.
	var db [3]bool
	row := 0 // the stack's row (tile) and column (yb) of module i's block
	for i, m := range mods {
		_, B, _, _ := p.pair(l, m)
		out, dst := p.nt.layers[l].w[m].rows, yb.View(row, n*K-row)
		p.mark("lora")
		p.loraRows(p.s.du.View(i*n*r, n*r), dy[i], B, r, out, true, s) // du = s·dy·B
		if db[i] = row%4 == 0 && p.rowsDB(l, m, dy[i], dst, K); db[i] {
			p.rowsDBRun(l, m, dy[i], dst, K)
		}
		row += out + ra
	}
	row = 0
	for i, m := range mods {
		w := p.nt.layers[l].w[m]
		A, _, _, _ := p.pair(l, m)
		out, du := w.rows, p.s.du.View(i*n*r, n*r)
		p.mark("dequant")
		var jobs []cuda.BF16Rows // A's rows after W's; dy (unless rounded already) and du side by side
		if ra > 0 {
			jobs = append(jobs, cuda.BF16Rows{Dst: tile.View((row+out)*in, r*in), LDD: in, Src: A, LDS: in, Rows: r, Cols: in, Scale: 1})
		}
		if !db[i] {
			jobs = append(jobs, cuda.BF16Rows{Dst: yb.View(row, n*K-row), LDD: K, Src: dy[i], LDS: out, Rows: n, Cols: out, Scale: 1})
		}
		if ra > 0 {
			jobs = append(jobs, cuda.BF16Rows{Dst: yb.View(row+out, n*K-row-out), LDD: K, Src: du, LDS: r, Rows: n, Cols: r, Scale: 1})
		}
		p.do(d.NF4Stage(tile.View(row*in, (out+ra)*in), w.nf4, in, jobs...))
		row += out + ra
	}
	beta := float32(1)
	if set {
		beta = 0
	}
	p.mark("gemm")
	p.do(d.GemmBF16(false, false, n, in, K, 1, yb, K, tile, in, beta, dx, in))
	p.mark("lora")
	for i, m := range mods {
		A, _, gA, gB := p.pair(l, m)
		out, du := p.nt.layers[l].w[m].rows, p.s.du.View(i*n*r, n*r)
		if !db[i] {
			p.loraCols(gB, dy[i], p.a.u[m], out, r, false, s) // dB += s·dyᵀ·u
		}
		if p.drop == nil {
			if !p.deferGA && !p.colDA(gA, x, du, l, []int{m}) {
				p.loraCols(gA, x, du, in, r, true, 1) // dA += duᵀ·x
			}
		} else {
			p.loraDroppedBwd(dx, x, du, A, gA, l, m)
		}
	}
	if ra > 0 {
		fusedLoRABwd.Add(3)
	}
	stackedQKV.Add(1)
	return true
}

// weight is projection w as a bf16 (rows, cols) operand: its dense copy, or
// its NF4 storage dequantised into the tile.
func (p *pass) weight(w *weight) *cuda.Buffer {
	if p.nt.skip["dequant"] && w.nf4 != nil {
		return p.tile.View(0, w.rows*w.cols)
	}
	wb, err := w.bf16(p.d, p.tile)
	p.do(err)
	return wb
}

// layerFwd runs decoder layer l on x(n, D) in place (x becomes the layer's
// output), saving its activations in p.a: the attention side here, the
// MLP side in mlpFwd.
func (p *pass) layerFwd(l int, x *cuda.Buffer) {
	if p.fused {
		p.layerDecode(l, x)
		return
	}
	d, c, L, a := p.d, &p.nt.M.Config, &p.nt.layers[l], p.a
	n, D := p.n, c.HiddenSize
	H, KV, hd := c.NumHeads, c.NumKVHeads, c.HeadDim
	eps := float32(c.RMSNormEps)
	tables := p.maxPos + 1

	ldx, ldo := D+p.kx, H*hd+p.kx // room for the adapter's u beside x's rows (linFused)
	xb := p.xb.View(0, n*ldx)
	p.normBF16(a.h1, a.rstd1, x, L.attnNorm, eps, xb, ldx)
	q, k := a.q, a.k
	if L.qNorm != nil {
		q, k = a.qPre, a.kPre
	}
	p.loraUGroup(a.h1, l, qkvGroup)
	p.lin(q, a.h1, xb, ldx, l, mQ)
	p.lin(k, a.h1, xb, ldx, l, mK)
	p.lin(a.v, a.h1, xb, ldx, l, mV)
	p.uReady = 0
	if L.qNorm != nil {
		p.do(d.RMSNormFwd(a.q, a.rstdQ, a.qPre, L.qNorm, n*H, hd, eps))
		p.do(d.RMSNormFwd(a.k, a.rstdK, a.kPre, L.kNorm, n*KV, hd, eps))
	}
	p.do(d.RoPE(a.q, p.pos, p.cos, p.sin, n, H, hd, tables, false))
	p.do(d.RoPE(a.k, p.pos, p.cos, p.sin, n, KV, hd, tables, false))
	p.mark("attention")
	switch {
	case p.nt.skip["attention"]:
	case p.spans != nil: // decoding: each span's rows against its cache on the device
		p.attendSpans(l)
	case p.nt.SimpleAttention:
		p.do(d.AttnFwd(a.att, a.lse, a.q, a.k, a.v, p.attn))
	case p.flash:
		p.do(d.AttnFwdFlash(a.att, a.lse, a.q, a.k, a.v, p.attn))
	default:
		p.do(d.AttnFwdGemm(a.att, a.lse, a.q, a.k, a.v, p.attn))
	}
	p.mark("elementwise")

	ab := p.xb.View(0, n*ldo)
	p.toBF16Rows(ab, ldo, a.att, n, H*hd)
	p.lin(a.xMid, a.att, ab, ldo, l, mO)
	p.do(d.Add(a.xMid, x, n*D))
	p.mlpFwd(l, x)
}

// mlpFwd runs layer l's MLP side on a.xMid into x (xMid + down(…)), or,
// recomputing for the backward (p.recompute; x may be nil), only up to
// what the backward reads.
func (p *pass) mlpFwd(l int, x *cuda.Buffer) {
	d, c, L, a := p.d, &p.nt.M.Config, &p.nt.layers[l], p.a
	n, D, F := p.n, c.HiddenSize, c.IntermediateSize
	eps := float32(c.RMSNormEps)
	ldx := D + p.kx
	xb := p.xb.View(0, n*ldx)
	p.mark("elementwise")
	p.normBF16(a.h2, a.rstd2, a.xMid, L.mlpNorm, eps, xb, ldx)
	p.loraUGroup(a.h2, l, gateUpGroup)
	half := p.halfGU(l) // g and up written in bf16 (mlp_gu_bf16.go)
	g, up := a.g, a.up
	if half {
		g, up = p.gateUp(l)
		halfGULayers.Add(1)
	}
	p.lin(g, a.h2, xb, ldx, l, mGate)
	p.lin(up, a.h2, xb, ldx, l, mUp)
	p.uReady = 0
	fusedU := p.swigluU(l) // the down adapter's u by the SwiGLU itself (mlp_down_u.go)
	if p.recompute {
		// The backward reads the down projection's input a and its
		// adapter's u, never the layer's output: no bf16 copy of a, no
		// down GEMM (the layer's largest with gate's and up's), no residual.
		switch {
		case fusedU && p.swigluDA(l): // nothing reads an f32 a: u here, dA by the SwiGLU backward
			p.swigluFwdU(l, nil, nil, g, up)
			p.uReady = 0 // u is set; nothing hands it out here
		case fusedU:
			p.swigluFwdU(l, a.a, nil, g, up)
			p.uReady = 0 // u is set; nothing hands it out here
		case half:
			p.do(d.SwiGLUFwdFromBF16(a.a, nil, g, up, n*F))
		default:
			p.do(d.SwiGLUFwd(a.a, a.g, a.up, n*F))
		}
		if A, _, _, _ := p.pair(l, mDown); A != nil && !p.nt.skip["lora"] && !fusedU {
			p.mark("lora")
			p.loraU(a.a, l, mDown)
			p.mark("elementwise")
		}
		return
	}
	// a in bf16 for the down projection, written beside a; its adapter's
	// product stays apart (its y is n·D, a tenth of gate's and up's).
	fb := p.xb.View(0, n*F)
	switch {
	case fusedU && (p.compact || p.swigluDA(l)): // no f32 a: the backward makes it again, or needs none
		p.swigluFwdU(l, nil, fb, g, up)
	case fusedU:
		p.swigluFwdU(l, a.a, fb, g, up)
	case half:
		p.do(d.SwiGLUFwdFromBF16(a.a, fb, g, up, n*F))
	default:
		p.do(d.SwiGLUFwdKeep(a.a, fb, a.gb, a.ub, a.g, a.up, n*F)) // and g, up into the layer's bf16 copies when kept compact
	}
	p.lin(x, a.a, fb, F, l, mDown)
	p.do(d.Add(x, a.xMid, n*D))
}

// layerBwd turns dx(n, D), the gradient at layer l's output, into the
// gradient at its input (in place), accumulating the adapter's gradients.
// xIn is the layer's input; p.a holds its activations.
func (p *pass) layerBwd(l int, dx, xIn *cuda.Buffer) {
	d, c, L, a, s := p.d, &p.nt.M.Config, &p.nt.layers[l], p.a, &p.s
	n, D, F := p.n, c.HiddenSize, c.IntermediateSize
	H, KV, hd := c.NumHeads, c.NumKVHeads, c.HeadDim
	tables := p.maxPos + 1

	// MLP: out = xMid + down(silu(g)·up(h2)); dx is d out.
	// Each gradient buffer's first product sets it (linB's set), or,
	// until that is verified, it starts zeroed.
	set := betaZeroReady()
	zero := func(b *cuda.Buffer) {
		if !set {
			p.do(b.Zero())
		}
	}
	if p.compact { // h2 is scratch: the norm again, from the kept xMid (the forward's values bit for bit)
		p.do(d.RMSNormFwd(a.h2, a.rstd2, a.xMid, L.mlpNorm, n, D, float32(c.RMSNormEps)))
	}
	zero(s.dA)
	var hg, hu *halfDy      // gate's and up's dy in bf16, when the SwiGLU backward wrote them so
	fuseDA := p.swigluDA(l) // the down adapter's dA by that backward too (mlp_down_da.go)
	if p.compact {
		// Kept compact: a is scratch, written again by the SwiGLU backward
		// from the bf16 g and up, so the down adapter's dA (which reads it)
		// waits for it.
		p.deferGA = true
		p.linB(s.dA, dx, a.a, l, mDown, set)
		p.deferGA = false
		if hg, hu = p.swigluBwdHalf(l, fuseDA); hg == nil {
			p.do(d.SwiGLUBwdFromBF16(s.dG, s.dUp, a.a, s.dA, a.gb, a.ub, n*F))
		}
		if !fuseDA {
			p.mark("lora")
			p.loraGradA(a.a, l, mDown)
			p.mark("elementwise")
		}
	} else {
		p.deferGA = fuseDA
		p.linB(s.dA, dx, a.a, l, mDown, set)
		p.deferGA = false
		if hg, hu = p.swigluBwdHalf(l, fuseDA); hg == nil {
			p.do(d.SwiGLUBwd(s.dG, s.dUp, s.dA, a.g, a.up, n*F))
		}
	}
	zero(s.dH)
	grouped := p.groupBwd(l, gateUpGroup)                      // gate's and up's dA as one batch, after both
	p.deferGA, p.deferDX = grouped, p.deferDropDX(gateUpGroup) // and under dropout their dx terms after both
	p.half = hg
	p.linB(s.dH, s.dG, a.h2, l, mGate, set)
	if grouped || p.deferDX {
		p.duAt = 1
	}
	p.half = hu
	p.linB(s.dH, s.dUp, a.h2, l, mUp, false)
	p.deferGA, p.duAt, p.half = false, 0, nil
	if grouped {
		p.loraGradAGroup(a.h2, l, gateUpGroup)
	}
	p.loraDropDXGroup(s.dH, l, gateUpGroup)
	p.do(d.RMSNormBwd(dx, nil, s.dH, a.xMid, L.mlpNorm, a.rstd2, n, D)) // dx is now d xMid

	// Attention: xMid = xIn + o(attn(q, k, v)).
	zero(s.dAtt)
	p.linB(s.dAtt, dx, a.att, l, mO, set)
	p.mark("attention")
	switch {
	case p.nt.skip["attention"]:
	case p.nt.SimpleAttention:
		p.do(d.AttnBwd(s.dQ, s.dK, s.dV, s.dAtt, a.q, a.k, a.v, a.att, a.lse, p.attn))
	case p.flash:
		p.do(d.AttnBwdFlash(s.dQ, s.dK, s.dV, s.dAtt, a.q, a.k, a.v, a.att, a.lse, p.attn))
		if p.attn.FusedDQ && p.attn.AsyncTiles {
			fusedDQ.Add(1)
		}
		if p.attn.SplitKV {
			splitKV.Add(1)
		}
		if p.attn.DKVOccupancy && p.attn.AsyncTiles && p.attn.HD == 128 {
			dkvOccupancy.Add(1)
		}
		if p.attn.Stages3 && p.attn.AsyncTiles && (p.attn.HD == 64 || p.attn.HD == 128) {
			stages3.Add(1)
		}
	default:
		p.do(d.AttnBwdGemm(s.dQ, s.dK, s.dV, s.dAtt, a.q, a.k, a.v, a.att, a.lse, p.attn))
	}
	p.mark("elementwise")
	p.do(d.RoPE(s.dQ, p.pos, p.cos, p.sin, n, H, hd, tables, true))
	p.do(d.RoPE(s.dK, p.pos, p.cos, p.sin, n, KV, hd, tables, true))
	dq, dk := s.dQ, s.dK
	if L.qNorm != nil {
		p.do(s.dQPre.Zero())
		p.do(s.dKPre.Zero())
		p.do(d.RMSNormBwd(s.dQPre, nil, s.dQ, a.qPre, L.qNorm, a.rstdQ, n*H, hd))
		p.do(d.RMSNormBwd(s.dKPre, nil, s.dK, a.kPre, L.kNorm, a.rstdK, n*KV, hd))
		dq, dk = s.dQPre, s.dKPre
	}
	if p.sharedH1 { // h1 likewise (kept compact, or the attention side kept), from the kept layer input
		p.do(d.RMSNormFwd(a.h1, a.rstd1, xIn, L.attnNorm, n, D, float32(c.RMSNormEps)))
	}
	zero(s.dH)
	grouped = p.groupBwd(l, qkvGroup) // q's, k's and v's dA as one batch, after all three
	p.deferGA, p.deferDX = grouped, p.deferDropDX(qkvGroup)
	if !p.linQKVB(s.dH, [3]*cuda.Buffer{dq, dk, s.dV}, a.h1, l, set) {
		for j, m := range qkvGroup {
			if grouped || p.deferDX {
				p.duAt = j // linQKVB keeps them side by side too
			}
			p.linB(s.dH, [3]*cuda.Buffer{dq, dk, s.dV}[j], a.h1, l, m, set && j == 0)
		}
	}
	p.deferGA, p.duAt = false, 0
	if grouped {
		p.loraGradAGroup(a.h1, l, qkvGroup)
	}
	p.loraDropDXGroup(s.dH, l, qkvGroup)
	p.do(d.RMSNormBwd(dx, nil, s.dH, xIn, L.attnNorm, a.rstd1, n, D)) // dx is now d xIn
}

// normBF16 is RMSNorm of x(n, D) into out and rstd, rounded to bf16 into
// xb's rows ldx apart too (the projections' operand): in one pass where
// the gate is open, else the norm then the conversion.
func (p *pass) normBF16(out, rstd, x, w *cuda.Buffer, eps float32, xb *cuda.Buffer, ldx int) {
	n, D := p.n, p.nt.M.Config.HiddenSize
	if normBF16Ready() {
		p.do(p.d.RMSNormFwdBF16(out, rstd, x, w, n, D, eps, xb, ldx))
		return
	}
	p.do(p.d.RMSNormFwd(out, rstd, x, w, n, D, eps))
	p.toBF16Rows(xb, ldx, out, n, D)
}

// toBF16Rows rounds src(rows, cols) into dst's rows ld apart: the plain
// conversion when they are back to back.
func (p *pass) toBF16Rows(dst *cuda.Buffer, ld int, src *cuda.Buffer, rows, cols int) {
	if ld == cols {
		p.do(p.d.ToBF16(dst, src, rows*cols))
		return
	}
	p.do(p.d.ToBF16Rows(dst, ld, src, cols, rows, cols, 1))
}

// pair is the adapter's module i of layer l, or nils when it is not
// targeted or the pass runs the base alone.
func (p *pass) pair(l, i int) (a, b, ga, gb *cuda.Buffer) {
	if p.adapterOff {
		return
	}
	return p.nt.pair(l, i)
}
