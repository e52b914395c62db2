package train

import "distill/core/tensor"

// DeviceRuntime is what a GPU process holds besides its buffers: the CUDA
// context, cuBLAS's handle and workspace, and the loaded kernels. Measured
// as device memory in use minus the pool's peak on an H200 (CUDA 13.0,
// driver 580; 2026-11-26): 772–790 MiB across the step benchmarks. Lazy
// module loading on consumer cards tends to make it smaller.
const DeviceRuntime = 790 << 20

// AttnScratchCap bounds the tensor-core attention's score buffers
// (cuda.AttnGemmScratchBytes' default): past it the heads and rows are
// processed in chunks, so attention's memory stops growing with n².
const AttnScratchCap = 256 << 20

// DevicePlan sizes an SFT step of nt on a GPU (cuda/devnet's layout) over
// micro-batches of n tokens, with the frozen base of weightBytes as held
// (NF4 storage or bf16 — what a bf16 checkpoint quantised as asked takes on
// the host too); nf4 says the base is NF4 (dequantised per GEMM into one
// tile). The optimizer's moments stay on the host (Optimizer 0).
// cuda/devnet's tests check it against the device pool's measured peak,
// which rounds each buffer up to its size class (at most 12.5% more).
func (nt *Net) DevicePlan(n int, weightBytes int64, nf4 bool) Plan {
	c := nt.M.Config
	D, F, V := int64(c.HiddenSize), int64(c.IntermediateSize), int64(c.VocabSize)
	H, KV, hd := int64(c.NumHeads), int64(c.NumKVHeads), int64(c.HeadDim)
	qO, kvO, r, N := H*hd, KV*hd, int64(nt.rank()), int64(n)
	L := int64(len(nt.M.Layers))
	params := int64(len(nt.Params)) * 4
	w := weightBytes
	if nt.M.LMHead == nt.M.Embed && nt.M.Embed.DType != tensor.BF16 { // the head's bf16 copy
		w += V * D * 2
	}
	wide := max(D, F, qO)
	var tile int64 // NF4: the largest projection, dequantised to bf16 before its GEMMs
	if nf4 {
		for _, l := range nt.M.Layers {
			for _, p := range l.Projections() {
				tile = max(tile, int64(p.Rows()*p.Cols())*2)
			}
		}
	}
	targeted := int64(0)
	for _, t := range nt.targeted() {
		if t {
			targeted++
		}
	}
	f := int64(0)                           // f32 elements of the step's workspace
	f += 2*N*D + 2*N                        // h1, h2, rstd1, rstd2
	f += targeted * N * r                   // u per targeted module
	f += N*(qO+2*kvO) + N*qO + N*H + N*D    // q, k, v, att, lse, xMid
	f += 3 * N * F                          // g, up, a (SwiGLU's gradients overwrite g, up)
	f += N*F + N*D + 2*N*qO + 2*N*kvO + N*r // dA, dH, dAtt, dQ, dK, dV, du
	f += N*qO + N*kvO                       // dQPre, dKPre
	f += 3*N*D + N                          // hf, dhf, dx, rstdF
	if nt.M.Arch.QKNorm {
		f += N*qO + N*kvO + N*H + N*KV // qPre, kPre, rstdQ, rstdK
	}
	if nt.dropping() {
		f += N * wide // the adapter's dropped input
	}
	R := min(int64(128), N)
	f += 2*R*D + R*V + N     // hb, dhb, logits, losses
	i32 := 4*N + 2*N         // ids, pos, lo, hi; row indices and targets
	bf := N*wide + R*D + R*V // bf16 staging, head rows, logits
	rope := (N + 1) * hd     // cos, sin tables: (positions, hd/2) each
	attn := min(8*(H/KV)*N*N, AttnScratchCap)
	return Plan{Tokens: n, Weights: w, Adapter: params, Grads: params,
		Activations: (L + 1) * N * D * 4,
		Workspace:   4*(f+i32+rope) + 2*bf + tile + attn,
		Runtime:     DeviceRuntime}
}
