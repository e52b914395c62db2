//go:build cuda

package devnet

import (
	"sync/atomic"

	"distill/cuda"
)

// The adapter's row products — u = x·Aᵀ forward (q, k and v, gate and up
// as one strided batch each) and du = s·dy·B backward, n × r over K = in
// or out — were TF32 GEMMs that cuBLAS serves poorly at r columns (114 µs
// on the H200 for K = 8,960 where the bytes take 21: session 7's
// BenchmarkLoRA), and under LoRA dropout u read a masked copy of x that a
// dropout kernel wrote first. Here one pass over x takes them
// (cuda.LoRARowSums): a warp four rows over a chunk of columns, each float4
// of A read once for them, the members of a group in one launch, each
// member's mask made in the kernel.

// Modules whose u or du one pass over the input summed (the tests' proof).
var rowSumsMods atomic.Int64

// rowSums sets out_m = s·x̃_m·W_mᵀ for members modules sharing x (or, T,
// out = s·x·W for one B) by cuda.LoRARowSums, x̃ under drop's masks; false
// (nothing done) where it cannot: the gate closed, the width not a
// multiple of 4, r past 32 (or, T, not a multiple of 4), x or W off 16
// bytes. The column chunks' sums go in the tile, which holds nothing then
// (a projection's u and du come before its staging; a dense projection's
// du after its GEMM).
func (p *pass) rowSums(out, x, W *cuda.Buffer, k, members int, T bool, s float32, drop *cuda.LoRADrop) bool {
	r := p.nt.A.Config.R
	if !rowSumsReady() || p.n == 0 || k%4 != 0 || r > 32 || (T && r%4 != 0) || !aligned(x, 16) || !aligned(W, 16) {
		return false
	}
	p.do(p.d.LoRARowSums(out, x, W, p.n, k, r, members, T, s, p.sumsScratch(), drop))
	rowSumsMods.Add(int64(members))
	return true
}

// rowSumsVerified: u and du in one pass over the input (this file),
// written without a GPU (session 30) and checked on the emulated device:
// cuda's TestLoRARowSums against an f64 sum (one to three members, B read
// transposed, dropout's masks keyed either way), TestRowSumsStep (the
// step against the TF32 products', every mode, with and without dropout).
// Off until a GPU times it (devcheck's [rowsums]): its sums are f32 where
// the GEMM's were TF32, and whether the pass beats cuBLAS's product is
// what a GPU must say.
const rowSumsVerified = false

func rowSumsReady() bool { return gateOpen("DISTILL_CUDA_ROW_SUMS", rowSumsVerified) }
