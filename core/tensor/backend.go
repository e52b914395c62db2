package tensor

import "fmt"

// Backend runs the engine's compute. Activations are f32 buffers; weights are
// *Tensor at their storage dtype and are widened inside the kernel (a row or a
// tile at a time), never as a whole. Shapes are given in the comments as
// (rows, cols), row-major.
//
// Every method is safe to call from one goroutine at a time per buffer; the
// backend parallelises internally.
type Backend interface {
	Name() string

	// MatMul computes out(T, N) = x(T, K) · W(N, K)ᵀ. T == 1 is decode
	// (matrix × vector, memory-bound); T > 1 is prefill (BLAS on tiles).
	MatMul(out, x []float32, w Matrix, T int)

	// MatMulTAdd adds dy(T, N) · W(N, K) to dx(T, K): the product through a
	// frozen weight that backward needs.
	MatMulTAdd(dx, dy []float32, w Matrix, T int)

	// RMSNorm normalises each row of x (rows of len(weight)) into out:
	// out = x / sqrt(mean(x²) + eps) * weight. out may alias x.
	RMSNorm(out, x, weight []float32, eps float32)

	// RoPE rotates T rows of x, each nHeads × headDim, in place, at positions
	// pos0..pos0+T-1, using HF's rotate-half pairing (i, i+headDim/2).
	// cos and sin are (maxPos, headDim/2) tables.
	RoPE(x []float32, T, nHeads, headDim, pos0 int, cos, sin []float32)

	// Attention computes causal multi-head attention with grouped KV heads for
	// T queries at positions pos0..pos0+T-1 over keys and values 0..pos0+T-1.
	// q, out: (T, nHeads*headDim); k, v: (maxSeq, nKV*headDim), rows beyond
	// pos0+T are ignored. scale multiplies q·k. The order of its sums may
	// depend on T (the CPU takes a prompt's queries in blocks): a prompt's
	// outputs agree with token-by-token decoding's to rounding, not bits.
	// A backend whose attention rounds its operands (CPU.BF16Attention) may
	// round the new rows pos0..pos0+T-1 of k and v in place, and expects
	// the earlier rows as its own earlier calls left them.
	Attention(out, q, k, v []float32, T, pos0, nHeads, nKV, headDim int, scale float32)

	// SwiGLU sets gate[i] = silu(gate[i]) * up[i].
	SwiGLU(gate, up []float32)

	// Add sets dst[i] += src[i].
	Add(dst, src []float32)

	// AddBias adds bias (len N) to each of the len(x)/N rows of x.
	AddBias(x, bias []float32)

	// Embed widens rows ids of table (vocab, D) into out(len(ids), D).
	Embed(out []float32, table *Tensor, ids []int)
}

var backends Registry[func() (Backend, error)]

// Register makes a backend available by name; backends call it from init().
// A duplicate name is a programming error and panics.
func Register(name string, open func() (Backend, error)) {
	if _, dup, _ := backends.Lookup(name); dup {
		panic("tensor: backend registered twice: " + name)
	}
	backends.Register(name, open)
}

// Open returns the named backend ("cpu", or "cuda" in a cuda build).
func Open(name string) (Backend, error) {
	open, ok, names := backends.Lookup(name)
	if !ok {
		if name == "cuda" {
			return nil, fmt.Errorf("device %q: this binary was built without CUDA support (`make cuda` builds bin/distill-cuda, which has it); available: %v", name, names)
		}
		return nil, fmt.Errorf("unknown device %q; available: %v", name, names)
	}
	return open()
}
