//go:build cuda

package devnet

import (
	"sync/atomic"

	"distill/cuda"
)

// Under LoRA dropout the adapter's term of the input gradient,
// (du·A)∘mask/(1−p), cannot join the projection's GEMM (the mask falls on
// it alone). It was a TF32 GEMM writing du·A (n·in floats) into scratch and
// a dropout_add reading it back with dx, for each of the seven modules; it
// is one kernel that reads and writes dx once (cuda.LoRADropoutDX). The
// modules that share an input (q, k, v; gate, up) add theirs after the
// members' backward, their du's side by side in scratch: one launch for
// the group when their A's lie back to back (the device's adapter layout),
// one a member otherwise.

// Launches of the dropped dx term (one a module or one a group).
var droppedDX atomic.Int64

// loraDropDX adds the dx term of count modules from module i on (their du's
// side by side from du, their A's back to back from A), their masks the
// sites' of layer l.
func (p *pass) loraDropDX(dx, du, A *cuda.Buffer, l, i, count int) {
	n, r, in := p.n, p.nt.A.Config.R, p.nt.layers[l].w[i].cols
	site := l*nMod + i
	drop := cuda.LoRADrop{}
	if p.dropKeys != nil {
		drop.Keys = p.dropKeys.View(site, count)
		_, drop.Thresh, drop.Keep = p.drop(site)
	} else {
		for j := range count {
			var base uint64
			base, drop.Thresh, drop.Keep = p.drop(site + j)
			drop.Bases = append(drop.Bases, base)
		}
	}
	p.do(p.d.LoRADropoutDX(dx, du, A, n, in, r, count, drop))
	droppedDX.Add(1)
}

// deferDropDX says whether the members of a group of modules sharing an
// input leave their dropped dx terms for loraDropDXGroup: under LoRA
// dropout with the gate open and room in scratch for every member's du.
// Deferred whether or not the group's other products run as one batch, so
// dx gets its terms in one order — every member's base GEMM, then their
// terms in module order — either way.
func (p *pass) deferDropDX(mods []int) bool {
	return p.drop != nil && dropDXReady() && p.n > 0 && !p.adapterOff && !p.nt.skip["lora"] && p.nt.A != nil &&
		p.s.du != nil && p.s.du.Len >= len(mods)*p.n*p.nt.A.Config.R
}

// loraDropDXGroup adds the dx terms the group's members left out
// (p.deferDX, which it clears): one launch when their A's lie back to back
// (loraGroup), else one a targeted member — the same values.
func (p *pass) loraDropDXGroup(dx *cuda.Buffer, l int, mods []int) {
	if !p.deferDX {
		return
	}
	p.deferDX = false
	p.mark("lora")
	defer p.mark("elementwise")
	if A, _, _, _, ok := p.loraGroup(l, mods); ok {
		p.loraDropDX(dx, p.s.du, A, l, mods[0], len(mods))
		return
	}
	nr := p.n * p.nt.A.Config.R
	for j, m := range mods {
		if A, _, _, _ := p.pair(l, m); A != nil {
			p.loraDropDX(dx, p.s.du.View(j*nr, nr), A, l, m, 1)
		}
	}
}

// dropDXVerified: the one-pass dx term, written without a GPU (session
// 27). On the emulated device the step parity tests under dropout pass
// with it (TestStepParity's dropout case, TestLoRAGroupMatchesApart with
// dropout: grouped against one module at a time), and its kernel matches
// an f64 reference (TestLoRADropoutDXParity). It reads and writes dx once
// where the GEMM and the dropout_add moved four times n·in floats, and
// sums each product in f32 where the GEMM rounded du and A to TF32; on.
// DISTILL_CUDA_DROPOUT_DX=0 runs the GEMM and the dropout_add.
const dropDXVerified = true

func dropDXReady() bool { return gateOpen("DISTILL_CUDA_DROPOUT_DX", dropDXVerified) }

// dropHold names what the dropout buffer's first n floats hold: x∘mask of
// site (x a buffer the pass does not write in between), as loraU left it.
// The down projection's adapter is the last product of a layer's
// recomputation and the first of its backward: its dA reads the masked
// input the recomputation just made (n·F floats, the layer's largest)
// instead of making it again. Every write into the buffer clears it.
type dropHold struct {
	x       *cuda.Buffer
	site, n int
}

// Backward dA products that read the recomputation's masked input (tests
// read it).
var reusedDrop atomic.Int64

// holdsDropped says whether the dropout buffer holds x∘mask of site over
// n floats (and the reuse is on: DISTILL_CUDA_DROPOUT_REUSE).
func (p *pass) holdsDropped(x *cuda.Buffer, site, n int) bool {
	if p.dropHeld != (dropHold{x, site, n}) || !dropReuseReady() {
		return false
	}
	reusedDrop.Add(1)
	return true
}

// dropReuseVerified: the backward's dA reading the masked input its
// recomputation (or, for the last layer, its forward) left in the dropout
// buffer — the same values, one dropout kernel (2·n·F floats) less a layer
// under LoRA dropout. Written without a GPU (session 28); on the emulated
// device TestDropReuseSameStep gives the step's loss and gradients bit for
// bit with it off, recomputing and keeping. It only removes work: on.
// DISTILL_CUDA_DROPOUT_REUSE=0 makes the mask again.
const dropReuseVerified = true

func dropReuseReady() bool { return gateOpen("DISTILL_CUDA_DROPOUT_REUSE", dropReuseVerified) }
