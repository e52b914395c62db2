package tensor

import "sync/atomic"

// CPU is the reference backend: f32 compute, parallel across cores. Its
// MatMul hands prefill to BLAS and decode to fused widen-and-dot kernels;
// the element-wise ops and attention run vectorised C kernels (cgo.go),
// each tested against the plain-Go reference in ref.go.
type CPU struct {
	// BF16Products multiplies BF16 weights by the activations (forward) and
	// gradients (MatMulTAdd) rounded to bf16 — the products of two bf16,
	// exact in f32 — instead of by the f32 values; every sum stays f32.
	// Where the CPU has AVX-512 BF16 (BF16ProductsFast), the GEMMs then run
	// on its dot products, twice f32's arithmetic per instruction; elsewhere,
	// and in decode's matvec, the f32 kernels run on the rounded values, so
	// that every path and batch size multiplies the same values (but for
	// subnormals, which vdpbf16ps reads as zero). It is what llama.cpp's
	// BF16 kernels and GPU bf16 GEMMs compute; off (the zero value), the CPU
	// backend is the f32 reference. NF4 weights (core/quant) are dequantised
	// to bf16 under it; Q8 keeps f32 products.
	BF16Products bool
	// BF16Attention rounds attention's operands to bf16 — q, k, v and the
	// softmax's weights (in training dO and dS too) — so that each product
	// of two is exact in f32 and the sums stay f32, as flash attention runs
	// in bf16 on a GPU; a prompt's products then run on the bf16 GEMM where
	// the CPU has it (BF16ProductsFast). Attention rounds the new rows of k
	// and v (pos0..pos0+T-1) in place: the KV cache holds the values it
	// multiplies, rounded once. --cpu-bf16 sets it with BF16Products; off,
	// attention is f32 (as llama.cpp's with an f32 KV cache).
	BF16Attention bool
}

func init() { Register("cpu", func() (Backend, error) { return CPU{}, nil }) }

func (CPU) Name() string { return "cpu" }

func (CPU) RMSNorm(out, x, weight []float32, eps float32) {
	d := len(weight)
	rows := len(x) / d
	parallelFor(rows, max(1, 16384/d), func(lo, hi int) {
		rmsNormRows(out[lo*d:hi*d], x[lo*d:hi*d], weight, eps)
	})
}

func (CPU) RoPE(x []float32, T, nHeads, headDim, pos0 int, cos, sin []float32) {
	half := headDim / 2
	parallelFor(T*nHeads, 16, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			t := i / nHeads
			c := cos[(pos0+t)*half : (pos0+t+1)*half]
			s := sin[(pos0+t)*half : (pos0+t+1)*half]
			h := x[i*headDim : (i+1)*headDim]
			for j := 0; j < half; j++ {
				a, b := h[j], h[j+half]
				h[j] = a*c[j] - b*s[j]
				h[j+half] = b*c[j] + a*s[j]
			}
		}
	})
}

// attnSerialWork is the q·k multiply-adds below which Attention stays on
// the calling goroutine.
var attnSerialWork = 1 << 16

func (c CPU) Attention(out, q, k, v []float32, T, pos0, nHeads, nKV, headDim int, scale float32) {
	if c.BF16Attention {
		kvStride := nKV * headDim
		roundBF16InPlace(k[pos0*kvStride : (pos0+T)*kvStride])
		roundBF16InPlace(v[pos0*kvStride : (pos0+T)*kvStride])
	}
	attention(out, q, kvRows{k: k, v: v}, T, pos0, nHeads, nKV, headDim, scale, c.BF16Attention)
}

// AttentionBF16Cache is CPU.Attention with BF16Attention over a KV cache
// held in bf16: k and v are (maxSeq, nKV*headDim) bf16 whose rows up to
// pos0+T the caller has filled (the new ones rounded by RoundRowsBF16).
// The rounded values are exact in bf16, so its outputs are bit for bit
// BF16Attention's over an f32 cache, at half the cache's memory and reads;
// a prompt's products take the cache itself as the bf16 GEMM's operand.
func AttentionBF16Cache(out, q []float32, k, v []uint16, T, pos0, nHeads, nKV, headDim int, scale float32) {
	attention(out, q, kvRows{k16: k, v16: v}, T, pos0, nHeads, nKV, headDim, scale, true)
}

// kvRows is one layer's KV cache: f32 rows (k, v), or bf16 ones (k16, v16).
type kvRows struct {
	k, v     []float32
	k16, v16 []uint16
}

// attention is Attention over kv; with bf16 (BF16Attention) its rows are
// already rounded to bf16, as a bf16 cache's are by holding them.
func attention(out, q []float32, kv kvRows, T, pos0, nHeads, nKV, headDim int, scale float32, bf16 bool) {
	group := nHeads / nKV
	kvStride := nKV * headDim
	qStride := nHeads * headDim
	if T >= attnBlockMin {
		attentionBlocks(out, q, kv, T, pos0, nHeads, nKV, headDim, scale, bf16)
		return
	}
	if bf16 {
		qr := getScratch(T * qStride)
		defer putScratch(qr)
		copy(*qr, q[:T*qStride])
		roundBF16InPlace(*qr)
		q = *qr
	}
	// A unit of work is (query t, KV head): the group's query heads share
	// every load of a K and V row. Splitting groups into single heads to
	// balance decode's few units over the cores measured slower, in cache
	// and from DRAM.
	units := T * nKV
	workers := min(Threads, units)
	if T*nHeads*(pos0+T)*headDim < attnSerialWork {
		workers = 1
	}
	wide := 0 // the widened rows of a bf16 cache
	if kv.k16 != nil {
		wide = attnWide(headDim)
	}
	var next atomic.Int64
	run := func() {
		s := getScratch(group*(pos0+T) + wide)
		defer putScratch(s)
		for {
			u := int(next.Add(1)) - 1
			if u >= units {
				return
			}
			t, kvh := T-1-u/nKV, u%nKV // longest (latest) queries first
			o, ko := t*qStride+kvh*group*headDim, kvh*headDim
			if kv.k16 != nil {
				attnKernel16(out[o:], q[o:], kv.k16[ko:], kv.v16[ko:],
					group, headDim, pos0+t+1, kvStride, headDim, scale, *s, bf16)
			} else {
				attnKernel(out[o:], q[o:], kv.k[ko:], kv.v[ko:],
					group, headDim, pos0+t+1, kvStride, headDim, scale, *s, bf16)
			}
		}
	}
	parallelFor(workers, 1, func(lo, hi int) {
		for range hi - lo {
			run()
		}
	})
}

func (CPU) SwiGLU(gate, up []float32) {
	parallelFor(len(gate), 16384, func(lo, hi int) { swiGLUKernel(gate[lo:hi], up[lo:hi]) })
}

func (CPU) Add(dst, src []float32) {
	parallelFor(len(dst), 65536, func(lo, hi int) { addKernel(dst[lo:hi], src[lo:hi]) })
}

func (CPU) AddBias(x, bias []float32) {
	n := len(bias)
	for r := 0; r < len(x)/n; r++ {
		addKernel(x[r*n:(r+1)*n], bias)
	}
}

func (CPU) Embed(out []float32, table *Tensor, ids []int) {
	d := table.Cols()
	for i, id := range ids {
		table.RowF32(id, out[i*d:(i+1)*d])
	}
}
