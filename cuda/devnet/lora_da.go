//go:build cuda

package devnet

import (
	"sync/atomic"

	"distill/cuda"
)

// The adapter's dA += duᵀ·x (r × in over K = n) was a TF32 GEMM — for q, k
// and v (and gate and up) one strided batch — that cuBLAS splits over K
// and serves poorly, and under LoRA dropout it read a masked copy of x
// that a dropout kernel wrote first. Here one pass over x takes it
// (cuda.LoRAColSums): each thread four columns down a chunk of rows, the
// members of a group that share x in one launch, each member's mask made
// in the kernel. It runs wherever dA did, in every mode.

// Modules whose dA one pass over x summed (the tests' proof).
var colDAMods atomic.Int64

// colDA adds dA += duᵀ·x̃ for mods (1 to 3 modules of layer l sharing x:
// their du's side by side from du, their dA's back to back from gA), x̃ x
// under each member's dropout mask while training under LoRA dropout; false
// (nothing done) where it cannot: the gate closed, r or the input width not
// multiples of 4, r past 32, rows off 16 bytes. The row chunks' sums go in
// the tile, free once the projection's GEMM has read it.
func (p *pass) colDA(gA, x, du *cuda.Buffer, l int, mods []int) bool {
	if !colDAReady() || p.n == 0 || gA == nil || p.nt.skip["lora"] {
		return false
	}
	r, in := p.nt.A.Config.R, p.nt.layers[l].w[mods[0]].cols
	if r%4 != 0 || r > 32 || in%4 != 0 || !aligned(gA, 16) || !aligned(x, 16) || !aligned(du, 16) {
		return false
	}
	p.mark("lora")
	p.do(p.d.LoRAColSums(gA, x, du, p.n, in, r, len(mods), p.sumsScratch(), p.masks(l, mods)))
	colDAMods.Add(int64(len(mods)))
	return true
}

// masks is the LoRA dropout masks of layer l's modules mods for the
// kernels that make them themselves (nil without dropout): their keys, or
// in a recorded pass the keys' places on the device (mods consecutive).
func (p *pass) masks(l int, mods []int) *cuda.LoRADrop {
	if p.drop == nil {
		return nil
	}
	site := l*nMod + mods[0]
	_, thresh, keep := p.drop(site)
	if p.dropKeys != nil {
		return &cuda.LoRADrop{Keys: p.dropKeys.View(site, len(mods)), Thresh: thresh, Keep: keep}
	}
	dr := &cuda.LoRADrop{Thresh: thresh, Keep: keep}
	for _, m := range mods {
		base, _, _ := p.drop(l*nMod + m)
		dr.Bases = append(dr.Bases, base)
	}
	return dr
}

// colDAVerified: dA in one pass over x (this file), written without a GPU
// (session 30) and checked on the emulated device: cuda's TestLoRAColSums
// against an f64 sum (one to three members, dropout's masks keyed either
// way), TestColDAStep (the step against the TF32 products', every mode,
// with and without dropout). Off until a GPU times it (devcheck's
// [colda]): its sums are f32 where the GEMM's were TF32, and whether the
// pass beats cuBLAS's product is what a GPU must say.
const colDAVerified = false

func colDAReady() bool { return gateOpen("DISTILL_CUDA_COL_DA", colDAVerified) }
