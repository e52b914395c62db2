//go:build cuda

package devnet

import (
	"sync/atomic"

	"distill/cuda"
)

// The gate and up projections' GEMMs write g and up in bf16 — the sum in
// f32, rounded once as it is stored — where they wrote f32 that the SwiGLU
// read, and that a layer keeping its activations compact rounded to bf16
// again for its backward. g and up are n·F each, the widest outputs of a
// layer: per element 4 bytes written, 4 read and (kept compact) 2 written
// again become 2 written and 2 read, and the backward reads 2 where it read
// 4 (recomputing). At 1.5B/2,048 tokens ~220 MB a layer kept compact, ~370
// recomputing (two forwards), by count. It rounds what a bf16 model rounds:
// the base's GEMMs read bf16 activations already, and the down projection
// reads SwiGLU's output in bf16; it is the same rounding kept compact
// applied to the backward's copies, now at the forward too. Every pass
// takes it the same way — training and scoring, the adapter on or off (a
// DPO step's reference, a KD teacher) — so the modes give the same
// numbers as before among themselves.

// Layers whose gate and up GEMMs wrote bf16 (the tests' proof).
var halfGULayers atomic.Int64

// gateUp returns where layer l's forward leaves g and up: bf16 (halfGU:
// kept compact, the layer's kept copies; else the first halves of the f32
// buffers), or the f32 buffers.
func (p *pass) gateUp(l int) (g, u *cuda.Buffer) {
	a := p.a
	switch {
	case p.compact:
		return a.gb, a.ub
	case !p.halfGU(l):
		return a.g, a.up
	}
	n := p.n * p.nt.M.Config.IntermediateSize
	g, err := a.g.Carve(cuda.BF16, 0, n)
	p.do(err)
	u, err = a.up.Carve(cuda.BF16, 0, n)
	p.do(err)
	return g, u
}

// halfGU says whether layer l's gate and up GEMMs write bf16: the gate
// open and the backward able to take their dy in bf16 (halfDyFits: each
// projection one GEMM with nothing added apart — no bias, its adapter in
// its GEMM or none — and the rows' room; the f32 SwiGLU backward writes its
// gradients over g and up, which it could not do over bf16 ones being
// read). Like halfDyFits it answers alike for every pass of a net at one n,
// so training, scoring and a base-only pass round g and up alike.
func (p *pass) halfGU(l int) bool {
	if !halfGUReady() || p.fused {
		return false
	}
	_, ok := p.halfDyFits(l)
	return ok
}

// fusedKX is the columns a pass of nt leaves beside each row of a GEMM's
// bf16 operand for the adapter's (layout's p.kx: r rounded up to 8 where
// an NF4 projection and its adapter run as one GEMM, else 0) — a base-only
// pass's buffers are laid out with them too.
func (nt *Net) fusedKX() int {
	if nt.A == nil || nt.A.Config.R <= 0 || nt.tileSize == 0 || !loraFusedReady() {
		return 0
	}
	return (nt.A.Config.R + 7) &^ 7
}

// halfGUVerified: g and up in bf16 (this file), written without a GPU
// (session 29) and checked on the emulated device: TestHalfGUForward (the
// loss and gradients against the f32 path's, every mode and kind of pass)
// and every parity test against the CPU with it on. Off until a GPU has
// timed it (devcheck's [halfgu]): unlike halfDy it changes what the forward
// computes, by bf16's rounding of g and up.
const halfGUVerified = false

func halfGUReady() bool { return gateOpen("DISTILL_CUDA_HALF_GU", halfGUVerified) }
