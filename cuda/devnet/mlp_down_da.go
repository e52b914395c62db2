//go:build cuda

package devnet

import (
	"sync/atomic"

	"distill/cuda"
)

// The down projection's adapter gradient dA += duᵀ·a (a = silu(g)·up, n·F:
// the layer's widest activation; under LoRA dropout a∘mask/(1−p)) is
// summed by the SwiGLU backward (cuda.SwiGLUBwdRowsDA), which makes a
// again from the very g and up it reads, where a TF32 GEMM read all of a —
// an r × F output over K = n, a product cuBLAS splits over K and serves
// poorly, as it does the forward's u (mlp_down_u.go). Kept compact, the
// backward then writes no f32 a at all (it was made for this product);
// under dropout the mask is made in the kernel, so no masked copy either;
// recomputing with the fused u as well, the recomputation writes no f32 a.
// It rides on the bf16 dy of gate and up (mlp_dy_bf16.go), whose kernel it
// extends.

// Layers whose down adapter's dA the SwiGLU backward summed (the tests' proof).
var swigluDALayers atomic.Int64

// swigluDA says whether layer l's SwiGLU backward takes the down adapter's
// dA: the gate open, the bf16 dy path taken (halfDyFits), down targeted in
// this pass, r a multiple of 4 up to 32, and the kernel's operands 16-byte
// aligned (the gradient's offset among the adapter's gradients is a sum of
// r·in and out·r terms, so an odd r can misalign a later layer's).
func (p *pass) swigluDA(l int) bool {
	if !swigluDAReady() || p.n == 0 || p.nt.A == nil || p.nt.skip["lora"] || p.nt.M.Config.IntermediateSize%4 != 0 {
		return false
	}
	if _, ok := p.halfDyFits(l); !ok {
		return false
	}
	A, _, gA, _ := p.pair(l, mDown)
	r := p.nt.A.Config.R
	if A == nil || gA == nil || r%4 != 0 || r > 32 {
		return false
	}
	g, u := p.gateUp(l)
	return aligned(gA, 16) && aligned(p.s.dA, 16) && aligned(p.s.du, 16) && aligned(g, 16) && aligned(u, 16)
}

// gradA is swigluDA's gradient for layer l, as swigluBwdHalf hands it to
// the kernel: down's du (linB left it), the row chunks' sums in the tile
// (free between down's GEMM and gate's staging), and the mask of down's
// site under dropout.
func (p *pass) gradA(l int) *cuda.SwiGLUDA {
	_, _, gA, _ := p.pair(l, mDown)
	ga := &cuda.SwiGLUDA{GA: gA, DU: p.du(), Part: p.sumsScratch(), R: p.nt.A.Config.R}
	ga.Drop = p.masks(l, []int{mDown})
	swigluDALayers.Add(1)
	return ga
}

// swigluDAVerified: the down adapter's dA from the SwiGLU backward (this
// file), written without a GPU (session 30) and checked on the emulated
// device: cuda's TestSwiGLUBwdRowsDA against an f64 sum (with dropout's
// masks, keyed either way), TestSwiGLUDAStep (the step against the TF32
// product's, every mode, with and without dropout). Off until a GPU times
// it (devcheck's [swigluda]), as the forward's fused u: its sums are f32
// where the GEMM's were TF32, and whether one pass beats cuBLAS's product
// is what a GPU must say.
const swigluDAVerified = false

func swigluDAReady() bool { return gateOpen("DISTILL_CUDA_SWIGLU_DA", swigluDAVerified) }
