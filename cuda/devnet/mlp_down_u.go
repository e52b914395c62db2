//go:build cuda

package devnet

import (
	"sync/atomic"

	"distill/cuda"
)

// The down projection's adapter input u = a·Aᵀ (a = silu(g)·up, n·F: the
// layer's widest activation) is summed by the SwiGLU forward itself while
// a is in registers (cuda.SwiGLUFwdU), in f32, where a TF32 GEMM read all of
// a again — a product cuBLAS serves poorly: n·r outputs over K = F (the
// H200 took 114 µs for it at 2,048 × 8,960, r 16, 21 µs of its bytes;
// session 7's BenchmarkLoRA). Kept compact, the forward then writes no f32
// a at all (the backward makes it again). Under LoRA dropout the kernel
// masks a for the product itself (the base's a and its bf16 copy stay
// unmasked), where loraU wrote the masked copy (n·F floats) for the GEMM.

// Layers whose down adapter input the SwiGLU forward summed (the tests' proof).
var swigluULayers atomic.Int64

// swigluU says whether layer l's SwiGLU forward takes the down adapter's u:
// the gate open, down targeted in this pass, F a multiple of 4,
// r ≤ 32 and A 16-byte aligned (the kernel reads its rows by float4; its
// offset among the adapter's parameters is a sum of r·in and out·r).
func (p *pass) swigluU(l int) bool {
	if !swigluUReady() || p.n == 0 || p.nt.skip["lora"] || p.nt.M.Config.IntermediateSize%4 != 0 {
		return false
	}
	A, _, _, _ := p.pair(l, mDown)
	return A != nil && p.nt.A.Config.R <= 32 && uintptr(A.Ptr(0))%16 == 0
}

// swigluFwdU runs layer l's SwiGLU forward from g and up (f32, or bf16:
// halfGU) into a (nil: not written), ab and — f32 g and up kept compact —
// the layer's bf16 copies, with the down adapter's u, which loraU then
// hands out. The column chunks' sums go in the tile (free between up's GEMM
// and down's staging).
func (p *pass) swigluFwdU(l int, a, ab, g, up *cuda.Buffer) {
	acts := p.a
	var gb, ub *cuda.Buffer
	if p.compact && g.Kind == cuda.F32 {
		gb, ub = acts.gb, acts.ub
	}
	A, _, _, _ := p.pair(l, mDown)
	n, F := p.n, p.nt.M.Config.IntermediateSize
	p.do(p.d.SwiGLUFwdU(a, ab, gb, ub, g, up, A, acts.u[mDown], p.sumsScratch(), n, F, p.nt.A.Config.R, p.masks(l, []int{mDown})))
	p.uReady |= 1 << mDown
	swigluULayers.Add(1)
}

// swigluUVerified: the down adapter's u from the SwiGLU forward (this
// file), written without a GPU (session 29) and checked on the emulated
// device: cuda's TestSwiGLUFwdU against an f64 sum (with dropout's masks,
// keyed either way, since session 30), TestSwiGLUUStep (the step against
// the TF32 product's, every mode, with and without dropout). Off until a
// GPU times it (devcheck's [swigluu]): its sums are f32 where the GEMM's
// were TF32, and whether one pass over a beats cuBLAS's product is what a
// GPU must say.
const swigluUVerified = false

func swigluUReady() bool { return gateOpen("DISTILL_CUDA_SWIGLU_U", swigluUVerified) }
