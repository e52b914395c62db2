//go:build cuda

package devnet

import (
	"sync/atomic"

	"distill/cuda"
)

// The gate and up projections' backward reads its dy — the SwiGLU
// backward's dg and du, n·F each, the widest gradients of a layer — in
// bf16, written so by the SwiGLU backward itself (cuda.SwiGLUBwdRows) into
// the rows their fused GEMM reads (dy with du beside it). Before, each was
// written in f32, read by the adapter's du = s·dy·B (TF32), read again and
// rounded by the staging launch, and read a third time by dB += s·dyᵀ·u:
// per module 4 + 4 + 4 + 2 + 4 bytes an element written and read where now
// 2 + 2 + 2 (written once, read by du's and dB's bf16 products), ~12 GB a
// step at 1.5B/2,048 tokens by count. The adapter's two products then run
// in bf16 (its B and u rounded in the same launch), as PEFT runs them in a
// bf16 model; the base's GEMM read dy in bf16 already, so dx moves only by
// du's rounding. Where gate and up carry no adapter (an adapter on q and v
// alone, PEFT's default) their GEMMs read the very bits the conversion
// made: the same step, 10 bytes an element fewer.

// Layers whose gate and up backward read dy in bf16 (the tests' proof).
var halfDyLayers atomic.Int64

// halfDy is a projection's dy in bf16 for its backward (linBFused, or
// linB's GEMM alone without an adapter): rows ld apart with the adapter's
// columns free beside each, and the adapter's B (out, r) and u (n, r) in
// bf16 for du's and dB's products.
type halfDy struct {
	y    *cuda.Buffer
	ld   int
	B, u *cuda.Buffer
}

// swigluBwdHalf runs layer l's SwiGLU backward into gate's and up's dy in
// bf16 (gate's rows in xb, up's in an f32 buffer the backward no longer
// reads — a, the down projection's input, or, kept compact, up's f32
// scratch — with both B's and u's in bf16 after them), or returns nils
// when the pass cannot (halfDyFits; then the caller runs the f32 one).
// fuseDA (swigluDA said so): the kernel adds the down adapter's dA too.
func (p *pass) swigluBwdHalf(l int, fuseDA bool) (gate, up *halfDy) {
	spare, ok := p.halfDyFits(l)
	if !ok {
		return nil, nil
	}
	a := p.a
	n, F, r := p.n, p.nt.layers[l].w[mGate].rows, 0
	if p.nt.A != nil {
		r = p.nt.A.Config.R
	}
	ld := F + p.kx                                   // the adapter's columns beside each row (none without one)
	round := func(v int) int { return (v + 7) &^ 7 } // 16-byte offsets
	offB := round(n * ld)
	offU := offB + 2*round(F*r)
	carve := func(off, size int) *cuda.Buffer {
		b, err := spare.Carve(cuda.BF16, 2*off, size)
		p.do(err)
		return b
	}
	gate = &halfDy{y: p.xb.View(0, n*ld), ld: ld, B: carve(offB, F*r), u: carve(offU, n*r)}
	up = &halfDy{y: carve(0, n*ld), ld: ld, B: carve(offB+round(F*r), F*r), u: carve(offU+round(n*r), n*r)}
	if p.err != nil {
		return nil, nil
	}
	var jobs []cuda.BF16Rows
	for _, m := range []struct {
		h *halfDy
		i int
	}{{gate, mGate}, {up, mUp}} {
		_, B, _, _ := p.pair(l, m.i)
		if B == nil { // no adapter: its GEMM alone reads dy
			continue
		}
		jobs = append(jobs,
			cuda.BF16Rows{Dst: m.h.B, LDD: r, Src: B, LDS: r, Rows: F, Cols: r, Scale: 1},
			cuda.BF16Rows{Dst: m.h.u, LDD: r, Src: a.u[m.i], LDS: r, Rows: n, Cols: r, Scale: 1})
	}
	g, u := p.gateUp(l)
	switch {
	case fuseDA:
		p.do(p.d.SwiGLUBwdRowsDA(gate.y, up.y, ld, p.s.dA, g, u, n, F, *p.gradA(l), jobs...))
	case p.compact: // and a again, for the down adapter's dA (loraGradA)
		p.do(p.d.SwiGLUBwdRows(gate.y, up.y, ld, a.a, p.s.dA, g, u, n, F, jobs...))
	default:
		p.do(p.d.SwiGLUBwdRows(gate.y, up.y, ld, nil, p.s.dA, g, u, n, F, jobs...))
	}
	halfDyLayers.Add(1)
	return gate, up
}

// halfDyFits says whether layer l's backward can take gate's and up's dy
// in bf16 — the gate open, each projection plain (mlpPlain), room for up's
// rows and the B's and u's in spare (the f32 buffer it returns) — as
// swigluBwdHalf will find it. The answer depends on the net, the gates and
// n alone, not on the kind of pass: halfGU, which rides on it, must round
// g and up in every pass of a net alike. n only matters below ~2r·F/(F −
// kx − 2r) tokens (33 at 1.5B, r 16), where the B's and u's do not fit.
func (p *pass) halfDyFits(l int) (spare *cuda.Buffer, ok bool) {
	if !halfDyReady() || p.n == 0 || !p.mlpPlain(l, mGate) || !p.mlpPlain(l, mUp) {
		return nil, false
	}
	L, a := &p.nt.layers[l], p.a
	wg, wu := L.w[mGate], L.w[mUp]
	if wg.rows != wu.rows || wg.cols != wu.cols {
		return nil, false
	}
	n, F, r := p.n, wg.rows, 0
	if p.nt.A != nil {
		r = p.nt.A.Config.R
	}
	ld := F + p.nt.fusedKX()
	spare = a.a // read by the down projection's backward, before this
	if p.compact {
		spare = a.up // f32 scratch: the SwiGLU backward reads the kept bf16 g and up
	}
	round := func(v int) int { return (v + 7) &^ 7 }
	if p.xb.Len < n*ld || round(n*ld)+2*round(F*r)+2*round(n*r) > 2*spare.Len {
		return nil, false
	}
	return spare, true
}

// mlpPlain says whether module m of layer l runs, in every pass, as one
// GEMM with nothing added after it: no bias, and no adapter — or one its
// GEMM takes (an NF4 weight, the fused gate open), in a pass with the
// adapter on or off alike.
func (p *pass) mlpPlain(l, m int) bool {
	nt := p.nt
	if nt.layers[l].bias[m] != nil {
		return false
	}
	if nt.A == nil || nt.skip["lora"] {
		return true
	}
	if A, _, _, _ := nt.pair(l, m); A == nil {
		return true
	}
	return nt.layers[l].w[m].nf4 != nil && nt.fusedKX() > 0 && !nt.skip["gemm"] && !nt.skip["dequant"]
}

// halfDyVerified: the gate and up backward from bf16 dy (this file),
// written without a GPU (session 29) and checked on the emulated device:
// TestHalfDyTracksF32 (against the f32 step in every mode, and the CPU's
// tolerances: the same distance from the CPU as the f32 step, 4.1–8.4e-3
// in L2; without adapters on gate and up, the f32 step's gradients bit
// for bit), cuda's TestSwiGLUBwdRows. On, as the other changes that remove
// bytes without changing which products run: 12 GB fewer a 1.5B/2,048
// step by count. Its products are cuBLAS bf16 ones where they were TF32 —
// whether cuBLAS serves those skinny shapes as well in bf16, only a GPU
// can say: devcheck's [nohalfdy] runs the f32 dy against it.
const halfDyVerified = true

func halfDyReady() bool { return gateOpen("DISTILL_CUDA_HALF_DY", halfDyVerified) }
