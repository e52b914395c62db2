//go:build cuda

package devnet

import (
	"sync/atomic"

	"distill/cuda"
)

// A projection's backward rounds its dy (n × out, f32) to bf16 for the
// base's GEMM; its adapter's dB += s·dyᵀ·u (out × r over K = n) was a TF32
// GEMM that read dy again — a skinny product cuBLAS splits over K and
// serves poorly (the session-9 profile: the adapter's products 11.8 ms of
// the kept 1.5B step's 71.6, 744 of its launches split-K reductions). Here
// the rounding pass takes the sums as it goes (cuda.ToBF16RowsDB): per
// layer the dB of q, k, v, o and down (gate's and up's are bf16 products of
// the bf16 dy already: mlp_dy_bf16.go), in f32, in every mode and under
// LoRA dropout (whose mask falls on u's input, not on this product).

// Backward passes of a projection whose dB its dy's rounding summed (the tests' proof).
var rowsDBMods atomic.Int64

// rowsDB says whether module i of layer l can take its dB in its dy's
// rounding into rows ld apart at dst: the gate open, the adapter's
// gradient there, r a multiple of 4 up to 32, out, ld and dst's column a
// multiple of 4, dy, u and dB 16-byte aligned.
func (p *pass) rowsDB(l, i int, dy, dst *cuda.Buffer, ld int) bool {
	if !rowsDBReady() || p.n == 0 || p.nt.skip["lora"] {
		return false
	}
	_, _, _, gB := p.pair(l, i)
	r, out := p.nt.A.Config.R, p.nt.layers[l].w[i].rows
	return gB != nil && r%4 == 0 && r <= 32 && out%4 == 0 && ld%4 == 0 &&
		aligned(dy, 16) && aligned(p.a.u[i], 16) && aligned(gB, 16) && aligned(dst, 8)
}

// aligned says whether b (not nil) has its first element on an n-byte boundary.
func aligned(b *cuda.Buffer, n uintptr) bool { return b != nil && uintptr(b.Ptr(0))%n == 0 }

// rowsDBRun rounds module i's dy into dst (rows ld apart) and adds its dB,
// the row chunks' sums in the tile — which must hold nothing the caller
// still needs (its staging comes after).
func (p *pass) rowsDBRun(l, i int, dy, dst *cuda.Buffer, ld int) {
	_, _, _, gB := p.pair(l, i)
	n, out, r := p.n, p.nt.layers[l].w[i].rows, p.nt.A.Config.R
	p.do(p.d.ToBF16RowsDB(dst, ld, dy, out, n, out, p.a.u[i], r, gB, p.sumsScratch(), p.nt.A.Config.Scaling()))
	rowsDBMods.Add(1)
}

// rowsDBVerified: dB summed by the dy's rounding (this file), written
// without a GPU (session 30) and checked on the emulated device: cuda's
// TestToBF16RowsDB against an f64 sum, TestRowsDBStep (the step against the
// TF32 product's, every mode, with and without dropout). Off until a GPU
// times it (devcheck's [rowsdb]): its sums are f32 where the GEMM's were
// TF32, and whether the rounding pass carries them at no cost is what a
// GPU must say.
const rowsDBVerified = false

func rowsDBReady() bool { return gateOpen("DISTILL_CUDA_ROWS_DB", rowsDBVerified) }
