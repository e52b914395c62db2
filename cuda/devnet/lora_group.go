//go:build cuda

package devnet

import (
	"sync/atomic"

	"distill/cuda"
)

// The adapter's products for modules that share their input — q, k and v
// read the attention norm's output, gate and up the MLP norm's — run as one
// strided batch each (cuda.GemmTF32Batched): u = x·Aᵀ in the forward and
// dA += duᵀ·x in the backward, one launch and one pass over x where there
// were three or two. Their A's (and dA's) lie back to back on the device
// (adapter_layout.go), their u's in one block of the pass, their du's side
// by side in scratch. Under LoRA dropout each module's x is its own masked
// copy (the same masks as one at a time), side by side in the dropout
// buffer, so the batch reads each at its own stride.

var (
	qkvGroup    = []int{mQ, mK, mV}
	gateUpGroup = []int{mGate, mUp}
)

// Groups whose adapter products ran as one batch (the tests' proof).
var groupedLoRA atomic.Int64

// loraGroup returns the group's A and dA (every member's, back to back: A
// (len(mods)·r, in)), its u block (len(mods)·n·r) and its input width, or
// ok false when the pass cannot run it as one batch: the gate closed, the
// adapter off, a member not targeted or not next to the one before, the u's
// not one block, or, under dropout, no room for every member's masked x.
func (p *pass) loraGroup(l int, mods []int) (A, gA, u *cuda.Buffer, in int, ok bool) {
	if !loraGroupReady() || p.n == 0 || p.adapterOff || p.nt.skip["lora"] || p.nt.A == nil {
		return nil, nil, nil, 0, false
	}
	g := 0
	if mods[0] == mGate {
		g = 1
	}
	if u = p.a.uGroup[g]; u == nil {
		return nil, nil, nil, 0, false
	}
	r, off := p.nt.A.Config.R, p.nt.lay.dev[l]
	in = p.nt.layers[l].w[mods[0]].cols
	for j, m := range mods {
		if off[m][0] < 0 || off[m][0] != off[mods[0]][0]+j*r*in || p.nt.layers[l].w[m].cols != in {
			return nil, nil, nil, 0, false
		}
	}
	if p.drop != nil && (p.dropBuf == nil || p.dropBuf.Len < len(mods)*p.n*in) {
		return nil, nil, nil, 0, false
	}
	A = p.nt.Params.View(off[mods[0]][0], len(mods)*r*in)
	if p.nt.Grads != nil {
		gA = p.nt.Grads.View(off[mods[0]][0], len(mods)*r*in)
	}
	return A, gA, u, in, true
}

// groupInput is the group's x for a batch: x itself at stride 0, or under
// LoRA dropout each member's masked copy (its own site's mask) side by
// side in the dropout buffer at stride n·in.
func (p *pass) groupInput(x *cuda.Buffer, l, in int, mods []int) (*cuda.Buffer, int) {
	if p.drop == nil {
		return x, 0
	}
	n := p.n
	for j, m := range mods {
		p.dropout(p.dropBuf.View(j*n*in, n*in), x, n*in, l*nMod+m)
	}
	return p.dropBuf, n * in
}

// loraUGroup sets u = x·Aᵀ for every member of the group at once and
// marks them ready (loraU hands them out); nothing when the group cannot
// run as one batch — loraU then computes each.
func (p *pass) loraUGroup(x *cuda.Buffer, l int, mods []int) {
	A, _, u, in, ok := p.loraGroup(l, mods)
	if !ok {
		return
	}
	n, r := p.n, p.nt.A.Config.R
	p.mark("lora")
	if !p.rowSums(u, x, A, in, len(mods), false, 1, p.masks(l, mods)) { // else one pass over x, the masks in it (lora_u.go)
		xs, sx := p.groupInput(x, l, in, mods)
		p.do(p.d.GemmTF32Batched(false, true, n, r, in, 1, xs, in, A, in, 0, u, r,
			cuda.Batch{Count: len(mods), SA: sx, SB: r * in, SC: n * r}))
	}
	for _, m := range mods {
		p.uReady |= 1 << m
	}
	groupedLoRA.Add(1)
	p.mark("elementwise")
}

// groupBwd says whether the group's dA can run as one batch after its
// members' backward (which leave it out: p.deferGA, their du side by side
// through p.duAt).
func (p *pass) groupBwd(l int, mods []int) bool {
	_, gA, _, _, ok := p.loraGroup(l, mods)
	return ok && gA != nil && p.s.du != nil && p.s.du.Len >= len(mods)*p.n*p.nt.A.Config.R
}

// loraGradAGroup adds dA += duᵀ·x (x masked per member under dropout) for
// every member of the group at once: du the members' side by side in
// scratch, left there by their backward under p.deferGA.
func (p *pass) loraGradAGroup(x *cuda.Buffer, l int, mods []int) {
	_, gA, _, in, _ := p.loraGroup(l, mods)
	n, r := p.n, p.nt.A.Config.R
	if p.colDA(gA, x, p.s.du, l, mods) { // one pass over x, the masks in the kernel (lora_da.go)
		groupedLoRA.Add(1)
		p.mark("elementwise")
		return
	}
	p.mark("lora")
	xs, sx := p.groupInput(x, l, in, mods)
	p.do(p.d.GemmTF32Batched(true, false, r, in, n, 1, p.s.du, r, xs, in, 1, gA, in,
		cuda.Batch{Count: len(mods), SA: n * r, SB: sx, SC: r * in}))
	groupedLoRA.Add(1)
	p.mark("elementwise")
}

// du is the scratch for the adapter's du of the module in progress: its
// slot p.duAt when a group's members keep theirs side by side.
func (p *pass) du() *cuda.Buffer {
	n, r := p.n, p.nt.A.Config.R
	return p.s.du.View(p.duAt*n*r, n*r)
}

// loraGroupVerified: the grouped products (this file), written without a
// GPU (session 26). On the emulated device every step parity test passes
// with them (TestLoRAGroupMatchesApart: the same gradients as one module
// at a time, with and without dropout). They run the same products in
// fewer launches, each reading x once, so they are on; their time on a GPU
// is devcheck's STEP_VARIANTS=nogroup (not measured yet).
// DISTILL_CUDA_LORA_GROUP=0 runs each module's products apart.
const loraGroupVerified = true

func loraGroupReady() bool { return gateOpen("DISTILL_CUDA_LORA_GROUP", loraGroupVerified) }
