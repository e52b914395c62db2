package train

import (
	"distill/core/model"
	"distill/core/tensor"
)

// DeviceRuntime is what a GPU process holds besides its buffers: the CUDA
// context, cuBLAS's handle and workspace, and the loaded kernels. Measured
// as device memory in use minus the pool's peak on an H200 (CUDA 13.0,
// driver 580; 2026-11-26): 772–790 MiB across the step benchmarks. Lazy
// module loading on consumer cards tends to make it smaller.
const DeviceRuntime = 790 << 20

// AttnScratchCap bounds the cuBLAS attention's score buffers
// (cuda.AttnGemmScratchBytes' default): past it the heads and rows are
// processed in chunks, so attention's memory stops growing with n².
const AttnScratchCap = 256 << 20

// DeviceKeepsOptimizer, set by a build with a device step (cuda/devnet),
// says whether its runs keep the optimizer on the device
// (AcceleratedOptimizer ready): for plans made with no device attached.
var DeviceKeepsOptimizer func() bool

// DeviceKeepsActivations, set by a build with a device step (cuda/devnet),
// says whether its steps keep every layer's activations when a Net does
// not checkpoint (its gate can turn them off); unset, a plan assumes they
// do.
var DeviceKeepsActivations func() bool

// DeviceAsyncTiles, set by a build with a device step (cuda/devnet), says
// whether the flash backward stages its tiles from bf16 copies of q, dO, k
// and v (cuda.AttnShape.AsyncTiles: 2·N·(H + KV)·hd bf16 more scratch).
var DeviceAsyncTiles func() bool

// DeviceSplitKV, set by a build with a device step (cuda/devnet), says
// whether the flash backward splits each key block's dk/dv work between
// two blocks, which sum their shares from 4·n·heads·hd floats of scratch,
// and each row tile's dq work likewise (n·heads·hd more).
var DeviceSplitKV func() bool

// DeviceFusedDQ, set by a build with a device step (cuda/devnet), says
// whether the flash backward adds dq up in its dk/dv kernel
// (cuda.AttnShape.FusedDQ, with async tiles): then DeviceSplitKV's dq
// split has no kernel to split and takes no scratch.
var DeviceFusedDQ func() bool

// DeviceKeepsAttention, set by a build with a device step (cuda/devnet),
// says whether its recomputing steps honour Net.KeepAttention (its gate
// can turn it off); unset, a plan assumes they do.
var DeviceKeepsAttention func() bool

// DeviceFusedLoRA, set by a build with a device step (cuda/devnet), says
// whether an NF4 projection and its adapter run as one GEMM: the tile gains
// r columns (or rows) and the bf16 operand r columns a row.
var DeviceFusedLoRA func() bool

// DeviceKeepsCompact, set by a build with a device step (cuda/devnet),
// says whether a step that keeps every layer's activations keeps them
// compact: each layer's g and up in bf16, their f32 copies, SwiGLU's output
// and the norms' outputs h1 and h2 one set all layers share (keeping the
// attention side alone, h1 one set likewise); unset, a plan assumes it
// does.
var DeviceKeepsCompact func() bool

// DeviceStacksQKV, set by a build with a device step (cuda/devnet), says
// whether its fused training steps run q, k and v's backward as one GEMM
// where they can (all three targeted, a rank that is a multiple of 8): the
// tile and the bf16 operand hold the three stacked, and du three blocks.
var DeviceStacksQKV func() bool

// DeviceStepGraphs, set by a build with a device step (cuda/devnet), says
// whether its SFT, KD and DPO steps replay CUDA graphs: a micro-batch then runs
// as a bucket of its length rounded up to StepGraphBucket tokens, every
// bucket's pass carved from one arena held between steps, and cuBLAS gets
// a workspace of its own (StepGraphBLASWorkspace).
var DeviceStepGraphs func() bool

// StepGraphBucket is the granularity of cuda/devnet's recorded lengths
// (its own constant).
const StepGraphBucket = 64

// StepGraphBLASWorkspace is the workspace cuBLAS is given before a
// recording: 32 MiB on Hopper, 4 MiB before (the plan counts the larger; it
// does not know the card).
const StepGraphBLASWorkspace = 32 << 20

// stepGraphs says whether a device step would replay CUDA graphs.
func stepGraphs() bool { return DeviceStepGraphs != nil && DeviceStepGraphs() }

// stepBucket is the length a recorded step of n tokens runs at.
func stepBucket(n int) int { return (n + StepGraphBucket - 1) / StepGraphBucket * StepGraphBucket }

// DevicePlan sizes an SFT step of nt on a GPU (cuda/devnet's layout) over
// micro-batches of n tokens, with the frozen base of weightBytes as held
// (NF4 storage or bf16 — what a bf16 checkpoint quantised as asked takes on
// the host too); nf4 says the base is NF4 (dequantised per GEMM into one
// tile). The optimizer's moments stay on the host (Optimizer 0) unless the
// optimizer runs on the device (the attached accelerator keeps it, or with
// none attached — distill plan, the workstation — DeviceKeepsOptimizer
// says the device would): then they are there too. With nt.Checkpoint
// each layer's activations are recomputed in the backward (one layer's
// buffers); without, every layer's stay from the forward. cuda/devnet's
// tests check it against the device pool's measured peak, which rounds
// each buffer up to its size class (at most 12.5% more).
//
// With step graphs (DeviceStepGraphs) the step's buffers are its bucket's,
// up to StepGraphBucket − 1 tokens more, plus cuBLAS's workspace; DPO's
// reference pass runs on the same buffers.
func (nt *Net) DevicePlan(n int, weightBytes int64, nf4 bool) Plan {
	c := nt.M.Config
	graphs, tokens := stepGraphs(), n
	if graphs {
		n = stepBucket(n)
	}
	D, L, N := int64(c.HiddenSize), int64(len(nt.M.Layers)), int64(n)
	params := int64(len(nt.Params)) * 4
	var targeted, attnTargeted int64
	for i, t := range nt.targeted() {
		if t {
			targeted++
			if i < 4 { // q, k, v, o: the attention side (lora.Modules' order)
				attnTargeted++
			}
		}
	}
	keep := !nt.Checkpoint && (DeviceKeepsActivations == nil || DeviceKeepsActivations())
	keepAttn := nt.Checkpoint && nt.KeepAttention && (DeviceKeepsAttention == nil || DeviceKeepsAttention())
	t := nt.targeted()
	stack := t[0] && t[1] && t[2] && nt.rank()%8 == 0 && DeviceStacksQKV != nil && DeviceStacksQKV()
	ws := devicePass{m: nt.M, n: N, r: int64(nt.rank()), targeted: targeted, attnTargeted: attnTargeted,
		dropping: nt.dropping(), training: true, keep: keep, keepAttn: keepAttn, stackQKV: stack,
		compact: (keep || keepAttn) && (DeviceKeepsCompact == nil || DeviceKeepsCompact())}
	p := Plan{Tokens: tokens, Weights: deviceWeights(nt.M, weightBytes, nf4), Adapter: params, Grads: params,
		Activations: (L + 1) * N * D * 4,
		Workspace:   ws.bytes(nf4) - (L+1)*N*D*4,
		Runtime:     DeviceRuntime}
	if graphs {
		p.Workspace += StepGraphBLASWorkspace
	}
	if d, ok := nt.accel.(AcceleratedOptimizer); ok && d.OptimizerReady() ||
		nt.accel == nil && DeviceKeepsOptimizer != nil && DeviceKeepsOptimizer() {
		p.Optimizer = 2 * params
	}
	return p
}

// DeviceKDPlan is DevicePlan for logit distillation from teacher (its
// weights teacherBytes as held, NF4 or not) as devnet's StepKD runs it: the
// teacher's weights stay on the device (Plan.Teacher); its forward-only
// pass over the micro-batch comes first and returns its workspace, keeping
// its final hidden states (n, hidden) through the student's step, beside
// the teacher's head rows and logits (128 rows at a time).
func (nt *Net) DeviceKDPlan(n int, weightBytes int64, nf4 bool, teacher *model.Model, teacherBytes int64, teacherNF4 bool) Plan {
	p := nt.DevicePlan(n, weightBytes, nf4)
	tc := teacher.Config
	N, Dt, V := int64(n), int64(tc.HiddenSize), int64(tc.VocabSize)
	fwd := devicePass{m: teacher, n: N}.bytes(teacherNF4) + N*Dt*4 // and the hidden states' copy
	graphs := stepGraphs()
	if graphs { // the teacher's states copied into the bucket's
		N = int64(stepBucket(n))
	}
	R := min(int64(128), N)
	keep := N*Dt*4 + R*Dt*(4+2) + R*V*4 // hidden states; head rows f32, bf16; logits
	p.Teacher = deviceWeights(teacher, teacherBytes, teacherNF4)
	if graphs { // the teacher's pass runs beside the student's arena
		p.Workspace += keep + fwd
		return p
	}
	p.Workspace = max(p.Workspace+keep, fwd-p.Activations)
	return p
}

// deviceWeights is a model's weights on the device, as cuda/devnet uploads
// them, from heldBytes (Model.HeldBytes: the projections as held, NF4 when
// nf4, the embedding, an untied head): NF4 projections as held, dense ones
// in bf16 whatever their dtype (an f32 checkpoint's take half their host
// bytes), the embedding as stored, and the head in bf16 — the embedding
// itself where tied and bf16 already.
func deviceWeights(m *model.Model, heldBytes int64, nf4 bool) int64 {
	c := m.Config
	embed, head := m.Embed.Bytes(), int64(c.VocabSize)*int64(c.HiddenSize)*2
	proj := heldBytes - embed
	if m.LMHead != m.Embed {
		proj -= m.LMHead.Bytes()
	} else if m.Embed.DType == tensor.BF16 {
		head = 0
	}
	if !nf4 {
		proj = 0
		for _, L := range m.Layers {
			for _, p := range L.Projections() {
				proj += int64(p.Rows()) * int64(p.Cols()) * 2
			}
		}
	}
	return proj + embed + head
}

// devicePass is one devnet pass over n tokens: a training step (forward,
// loss head, backward; the layers' inputs kept as checkpoints) with an
// adapter of rank r on targeted modules, or a forward-only pass of the
// base to its final norm (a KD teacher's).
type devicePass struct {
	m                            *model.Model
	n, r, targeted, attnTargeted int64 // attnTargeted: of q, k, v, o
	dropping                     bool
	training                     bool
	keep                         bool // every layer's activations kept (Net.Checkpoint false)
	keepAttn                     bool // each layer's attention side kept, the MLP side's one set (Net.KeepAttention)
	stackQKV                     bool // fused, q, k and v's backward as one GEMM (DeviceStacksQKV)
	compact                      bool // with keep, g and up kept in bf16, one f32 set of g, up, a, h1, h2 shared (DeviceKeepsCompact)
}

// bytes is the pass's buffers, the checkpoints included; nf4 adds the tile
// each NF4 projection is dequantised into before its GEMMs.
func (ps devicePass) bytes(nf4 bool) int64 {
	c := ps.m.Config
	D, F, V := int64(c.HiddenSize), int64(c.IntermediateSize), int64(c.VocabSize)
	H, KV, hd := int64(c.NumHeads), int64(c.NumKVHeads), int64(c.HeadDim)
	qO, kvO, r, N := H*hd, KV*hd, ps.r, ps.n
	L := int64(len(ps.m.Layers))
	wide := max(D, F, qO)
	var tile int64 // NF4: the largest projection, dequantised to bf16 before its GEMMs
	kx := int64(0) // the fused adapter's columns beside the bf16 operand's rows
	if nf4 {
		side := int64(0)
		for _, l := range ps.m.Layers {
			for _, p := range l.Projections() {
				tile = max(tile, int64(p.Rows()*p.Cols())*2)
				side = max(side, int64(p.Rows()), int64(p.Cols()))
			}
		}
		if r > 0 && DeviceFusedLoRA != nil && DeviceFusedLoRA() {
			kx = (r + 7) &^ 7 // rows padded to 16 bytes
			tile += 2 * kx * side
		}
	}
	stack := int64(0) // q, k and v's backward stacked: K = qO + 2·kvO + 3r columns, rows of D
	du := r
	if ps.training && ps.stackQKV && kx > 0 {
		stack, du = qO+2*kvO+3*kx, 3*r
		tile = max(tile, 2*stack*D)
	}
	// One layer's activations, f32 elements: the attention side and the MLP side.
	attnActs := N*D + N                         // h1, rstd1
	attnActs += ps.attnTargeted * N * r         // u per targeted q, k, v, o
	attnActs += N*(qO+2*kvO) + N*qO + N*H + N*D // q, k, v, att, lse, xMid
	if ps.m.Arch.QKNorm {
		attnActs += N*qO + N*kvO + N*H + N*KV // qPre, kPre, rstdQ, rstdK
	}
	mlpActs := N*D + N                                 // h2, rstd2
	mlpActs += (ps.targeted - ps.attnTargeted) * N * r // u per targeted gate, up, down
	mlpActs += 3 * N * F                               // g, up, a (SwiGLU's gradients overwrite g, up)
	f := attnActs + mlpActs
	switch {
	case ps.training && ps.keep && ps.compact: // g and up in bf16 a layer (n·F f32's worth); g, up, a, h1, h2 one f32 set
		f = L*(f-2*N*F-2*N*D) + 3*N*F + 2*N*D
	case ps.training && ps.keep:
		f = L * f // every layer's, kept for the backward (no recomputation)
	case ps.training && ps.keepAttn && ps.compact: // and h1 one set, written again in the backward
		f = L*(attnActs-N*D) + N*D + mlpActs
	case ps.training && ps.keepAttn:
		f = L*attnActs + mlpActs // the MLP side recomputed layer by layer
	}
	f += N*D + N // hf, rstdF
	bf := N * max(wide+kx, stack)
	attnBufs := int64(1)
	if ps.training {
		f += L * N * D                           // the layers' inputs (the last one's output below)
		f += N*F + N*D + 2*N*qO + 2*N*kvO + N*du // dA, dH, dAtt, dQ, dK, dV, du (q's, k's and v's when stacked)
		f += N*qO + N*kvO                        // dQPre, dKPre
		f += 2 * N * D                           // dhf, dx
		if ps.dropping {
			f += N * max(wide, 3*D) // the adapter's dropped input: q's, k's and v's side by side (cuda/devnet's grouped products)
		}
		R := min(int64(128), N)
		f += 2*R*D + R*V + N // hb, dhb, logits, losses
		bf += R*D + R*V      // head rows, logits
		attnBufs = 2
	}
	f += N * D           // the last layer's output
	i32 := 4*N + 2*N     // ids, pos, lo, hi; row indices and targets
	rope := (N + 1) * hd // cos, sin tables: (positions, hd/2) each
	attn := min(4*attnBufs*(H/KV)*N*N, AttnScratchCap)
	if model.FlashAttention(int(hd)) {
		attn = 0
		if ps.training { // backward's rowsum(dO∘O), tile ranges, grouped heads' shares of dk, dv
			attn = 4 * (N*H + 4*((N+31)/32))
			async := DeviceAsyncTiles != nil && DeviceAsyncTiles()
			switch {
			case DeviceSplitKV != nil && DeviceSplitKV(): // each split's shares (cuda.AttnShape.SplitKV)
				attn += 4 * 4 * N * H * hd
				if !async || DeviceFusedDQ == nil || !DeviceFusedDQ() { // the second halves' dq (SplitDQ)
					attn += 4 * N * H * hd
				}
			case H != KV:
				attn += 4 * 2 * N * H * hd
			}
			if async {
				// bf16 copies of q, dO, k and v backward, and of k and v
				// forward (a block of another size the pool keeps)
				attn += 2*2*N*(H+KV)*hd + 2*2*N*KV*hd
			}
		}
	}
	return 4*(f+i32+rope) + 2*bf + tile + attn
}
