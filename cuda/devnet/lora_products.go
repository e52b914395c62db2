//go:build cuda

package devnet

import (
	"distill/cuda"
)

// The adapter's products have one side of r (the rank) and run on cuBLAS
// in TF32 by default: standalone kernels of our own for them lost to it on
// an H200 (2026-11-26: the 1.5B step at 2,048 tokens 143 ms with them, 126
// ms without) and were removed. Sessions 29–30 wrote, gated until a GPU
// times them, sums taken in passes over the operand that read it anyway or
// read it once for a whole group: mlp_down_u.go, mlp_down_da.go,
// lora_db.go, lora_da.go, lora_u.go.

// sumsScratch is the tile as f32 scratch for the chunks' sums of the
// adapter's products taken in passes over their operands (nil without a
// tile: each runs as one chunk). Every caller runs where the tile holds
// nothing yet — before a projection's staging, or after its GEMM read it.
func (p *pass) sumsScratch() *cuda.Buffer {
	if p.tile == nil {
		return nil
	}
	part, err := p.tile.Carve(cuda.F32, 0, p.tile.Len/2)
	p.do(err)
	return part
}

// loraRows is out(n, r) = s·x(n, k)·Wᵀ, W the adapter's A (r, k) or, read
// transposed, its B (k, r).
func (p *pass) loraRows(out, x, w *cuda.Buffer, r, k int, transposed bool, s float32) {
	n := p.n
	if p.rowSums(out, x, w, k, 1, transposed, s, nil) { // one pass over x (lora_u.go)
		return
	}
	if transposed { // out = s·x·B
		p.do(p.d.GemmTF32(false, false, n, r, k, s, x, k, w, r, 0, out, r))
		return
	}
	p.do(p.d.GemmTF32(false, true, n, r, k, s, x, k, w, k, 0, out, r))
}

// loraCols adds s·xᵀ·u to c: c (k, r) — the adapter's dB from dy and u —
// or, transposed, (r, k) — its dA from x and du.
func (p *pass) loraCols(c, x, u *cuda.Buffer, k, r int, transposed bool, s float32) {
	n := p.n
	if transposed { // dA (r, k) += s·uᵀ·x
		p.do(p.d.GemmTF32(true, false, r, k, n, s, u, r, x, k, 1, c, k))
		return
	}
	p.do(p.d.GemmTF32(true, false, k, r, n, s, x, k, u, r, 1, c, r))
}
