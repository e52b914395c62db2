//go:build cuda

package devnet

import (
	"os"
	"sync/atomic"

	"distill/cuda"
)

// skinnyVerified records whether the adapter's skinny products by the lora
// kernels (cuda.LoRARows, cuda.LoRACols: x·Aᵀ, dy·B, dB, dA) have passed
// TestStepParity's skinny half and TestLoRAParity on a GPU. Written without
// one (session 7; the kernels pass the host emulation, cuda/emu): until
// then the adapter's products stay on cuBLAS (TF32) unless
// DISTILL_CUDA_LORA=1 or DISTILL_CUDA_UNVERIFIED=1. Then set it true
// (devcheck's "gated device paths" says so) — and keep it only if
// BenchmarkStep's skinny run is faster (devcheck runs it both ways).
const skinnyVerified = false

// DISTILL_CUDA_LORA=0 or 1 overrides the gate either way.
func skinnyReady() bool { return gateOpen("DISTILL_CUDA_LORA", skinnyVerified) }

// gateOpen says whether a path written without a GPU runs: its own
// variable (env) set to 0 or 1 decides either way (the tests and
// benchmarks compare both paths, before and after the gate is flipped);
// else it runs once verified, or before with DISTILL_CUDA_UNVERIFIED=1.
func gateOpen(env string, verified bool) bool {
	switch os.Getenv(env) {
	case "0":
		return false
	case "1":
		return true
	}
	return verified || os.Getenv("DISTILL_CUDA_UNVERIFIED") == "1"
}

// skinnyCalls counts the products the lora kernels ran (the tests check a
// run with them on used them).
var skinnyCalls atomic.Int64

// loraRows is out(n, r) = s·x(n, k)·Wᵀ, W the adapter's A (r, k) or, read
// transposed, its B (k, r): by the lora kernels when the net takes them and
// the shape does, else by cuBLAS in TF32.
func (p *pass) loraRows(out, x, w *cuda.Buffer, r, k int, transposed bool, s float32) {
	n := p.n
	if p.skinny() && cuda.LoRATakes(r, k) {
		skinnyCalls.Add(1)
		p.do(p.d.LoRARows(out, x, w, n, r, k, transposed, s))
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
	if p.skinny() && cuda.LoRATakes(r, k) {
		skinnyCalls.Add(1)
		p.do(p.d.LoRACols(c, x, u, n, k, r, transposed, s, p.loraScratch))
		return
	}
	if transposed { // dA (r, k) += s·uᵀ·x
		p.do(p.d.GemmTF32(true, false, r, k, n, s, u, r, x, k, 1, c, k))
		return
	}
	p.do(p.d.GemmTF32(true, false, k, r, n, s, x, k, u, r, 1, c, r))
}

// skinny says the pass's adapter products go to the lora kernels: the net
// takes them, and the pass trains or scores (a decoded token's few rows stay
// on cuBLAS: one block of the row kernel would walk the whole width alone).
func (p *pass) skinny() bool { return p.nt.skinny && p.spans == nil }
