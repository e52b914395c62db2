// Package quant holds frozen base weights in fewer bits, as QLoRA trains on
// them: NF4 exactly as bitsandbytes quantises and lays it out (optionally
// with the absmaxes double-quantised), and Q8 (ggml's Q8_0 numbers). Each
// quantised matrix dequantises a tile of rows at a time, multiplies by
// activations with a fused dequant-and-dot kernel in decode and with BLAS on
// dequantised tiles in prefill, and multiplies by the transpose for the
// backward pass; the full-precision weight is never materialised whole.
//
// The quantised types are read-only once built: their methods are safe for
// concurrent use. tools/quantref/nf4_ref.py is the independent reference
// (numpy, with torch for the dynamic map); its goldens are in testdata/.
package quant

import (
	"errors"
	"fmt"
	"math"
	"sync"

	"distill/core/tensor"
)

// NF4BlockSize is the number of consecutive elements (of the flattened
// tensor: blocks run across rows) that share one absmax.
const NF4BlockSize = 64

// DQBlockSize is the number of absmaxes that share one second-level absmax
// under double quantisation.
const DQBlockSize = 256

// NF4Code holds the 16 NF4 code values of QLoRA (bitsandbytes'
// get_4bit_type("nf4")), as f32: code c dequantises to NF4Code[c]·absmax.
var NF4Code = [16]float32{
	-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
	-0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0,
	0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
	0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
}

// nf4Mid holds bitsandbytes' decision thresholds, the literals of its
// dQuantizeNF4 tree: each is the midpoint of two consecutive code values,
// printed as the shortest decimal of its f64 value and compiled as a float
// literal, i.e. that decimal rounded once to f32. As the code values are
// f32s, their exact midpoint often lies halfway between two f32s, and the
// decimal, a hair to one side, picks the neighbour: 4 of the 15 (the 1st,
// 9th, 13th and 15th) differ from rounding the f64 midpoint to f32. Go's
// constant conversion rounds the decimal directly, as C compilers do.
var nf4Mid = [15]float32{
	-0.8480964004993439, -0.6106329262256622, -0.4599952697753906, -0.33967943489551544,
	-0.23460740596055984, -0.13791173323988914, -0.045525018125772476, 0.03979014977812767,
	0.1202552504837513, 0.2035212516784668, 0.2920137718319893, 0.3893125355243683,
	0.5016634166240692, 0.6427869200706482, 0.8614784181118011,
}

// NF4MaxHalfGap is half the largest gap between adjacent code values (from
// -1 to -0.6961928): no element's dequantisation error exceeds it times its
// block's absmax.
const NF4MaxHalfGap = (1 - 0.6961928009986877) / 2

// ErrNonFinite is returned (wrapped) when a weight to quantise is NaN or ±Inf.
var ErrNonFinite = errors.New("weight is not finite")

// NF4 is a matrix quantised to 4-bit NormalFloat as bitsandbytes'
// quantize_4bit(quant_type="nf4", blocksize=64) stores it.
//
// Layout (little-endian, the flattened row-major tensor of n = Rows·Cols
// elements; element e is row e/Cols, column e%Cols):
//
//	Codes   (n+1)/2 bytes: element e's code in byte e/2, in the high nibble
//	        when e is even, the low nibble when odd (bitsandbytes' order);
//	        for odd n the last low nibble is the code of a zero pad.
//	Absmax  ceil(n/64) f32: max |w| over block b = elements [64b, 64b+64),
//	        the last block possibly shorter; nil when DoubleQuant.
//
// With DoubleQuant (bitsandbytes' compress_statistics=True) the absmaxes are
// stored as
//
//	QAbsmax ceil(n/64) bytes: code of Absmax[b] - Offset in Map2,
//	Absmax2 ceil(n/64/256) f32: max |Absmax[b] - Offset| over each 256,
//	Offset  f32: the mean of the absmaxes,
//
// and block b's scale is (Map2[QAbsmax[b]]·Absmax2[b/256]) + Offset, each
// operation rounded to f32, as bitsandbytes' dequantize_blockwise then
// += offset. Element e dequantises to NF4Code[code]·scale(e/64) in f32
// (bitsandbytes then casts to the input dtype; here it stays f32).
type NF4 struct {
	Name        string
	Rows, Cols  int
	Codes       []byte
	Absmax      []float32
	DoubleQuant bool
	QAbsmax     []byte
	Absmax2     []float32
	Offset      float32
	Map2        *[256]float32 // &DynamicMap unless set otherwise (a checkpoint's nested_quant_map)
}

// quantizeGrain is the blocks (of 64) a quantisation worker takes at least.
const quantizeGrain = 1024

// QuantizeNF4 quantises w (F32, F16 or BF16, any shape: as a matrix of
// w.Rows() × w.Cols()) to NF4, reading w a block at a time and in parallel.
// With doubleQuant the absmaxes are double-quantised. Errors name the tensor
// and wrap ErrNonFinite for a NaN or Inf element.
func QuantizeNF4(w *tensor.Tensor, doubleQuant bool) (*NF4, error) {
	n := w.Elems()
	if err := checkQuantizable(w, "NF4"); err != nil {
		return nil, err
	}
	nb := (n + NF4BlockSize - 1) / NF4BlockSize
	q := &NF4{Name: w.Name, Rows: w.Rows(), Cols: w.Cols(), Codes: make([]byte, (n+1)/2), Map2: &DynamicMap}
	absmax := make([]float32, nb)
	bad := quantizeParallel(nb, func(b0, b1 int) int { return nf4Quantize(q.Codes, absmax, w.Data, w.DType, n, b0, b1) })
	if bad >= 0 {
		return nil, nonFinite(w, bad)
	}
	if doubleQuant {
		q.DoubleQuant = true
		q.QAbsmax, q.Absmax2, q.Offset = doubleQuantize(absmax, q.Map2)
	} else {
		q.Absmax = absmax
	}
	return q, nil
}

func checkQuantizable(w *tensor.Tensor, format string) error {
	if w.DType != tensor.F32 && w.DType != tensor.F16 && w.DType != tensor.BF16 {
		return fmt.Errorf("quantize %s to %s: dtype %s (supported: F32, F16, BF16)", w.Name, format, w.DType)
	}
	n := w.Elems()
	if n == 0 {
		return fmt.Errorf("quantize %s to %s: empty tensor %v", w.Name, format, w.Shape)
	}
	if len(w.Data) < n*w.DType.Size() {
		return fmt.Errorf("quantize %s to %s: shape %v needs %d bytes of %s, has %d",
			w.Name, format, w.Shape, n*w.DType.Size(), w.DType, len(w.Data))
	}
	return nil
}

// quantizeParallel runs quantise(b0, b1) over the nb blocks on the workers
// and returns the least element index any reported as non-finite, or -1.
// (A worker stops at its first; the least over workers is the first of all.)
func quantizeParallel(nb int, quantise func(b0, b1 int) int) int {
	var mu sync.Mutex
	first := -1
	tensor.ParallelChunks(nb, quantizeGrain, 1, func(lo, hi int) {
		if b := quantise(lo, hi); b >= 0 {
			mu.Lock()
			if first < 0 || b < first {
				first = b
			}
			mu.Unlock()
		}
	})
	return first
}

func nonFinite(w *tensor.Tensor, e int) error {
	v := make([]float32, 1)
	es := w.DType.Size()
	tensor.ToF32(v, w.DType, w.Data[e*es:(e+1)*es])
	c := w.Cols()
	return fmt.Errorf("quantize %s: element %d (row %d, column %d) is %v: %w; fix the checkpoint or load it unquantised",
		w.Name, e, e/c, e%c, v[0], ErrNonFinite)
}

// Shape returns (Rows, Cols).
func (q *NF4) Shape() (rows, cols int) { return q.Rows, q.Cols }

// Blocks is the number of 64-element blocks.
func (q *NF4) Blocks() int { return (q.Rows*q.Cols + NF4BlockSize - 1) / NF4BlockSize }

// blockScale is block b's absmax as dequantisation uses it.
func (q *NF4) blockScale(b int) float32 {
	if !q.DoubleQuant {
		return q.Absmax[b]
	}
	s := float32(q.Map2[q.QAbsmax[b]] * q.Absmax2[b/DQBlockSize]) // rounded before the add: never fused
	return s + q.Offset
}

// Scales returns every block's absmax as dequantisation uses it (decoded
// from the double quantisation when DoubleQuant).
func (q *NF4) Scales() []float32 {
	s := make([]float32, q.Blocks())
	for b := range s {
		s[b] = q.blockScale(b)
	}
	return s
}

// Bytes is the storage of the quantised weight.
func (q *NF4) Bytes() int {
	n := len(q.Codes) + 4*len(q.Absmax) + len(q.QAbsmax) + 4*len(q.Absmax2)
	if q.DoubleQuant {
		n += 4 // Offset
	}
	return n
}

// BitsPerParam is Bytes in bits per element: 4.5 (4 + 32/64) without double
// quantisation, about 4.127 (4 + 8/64 + 32/(64·256)) with it.
func (q *NF4) BitsPerParam() float64 { return 8 * float64(q.Bytes()) / float64(q.Rows*q.Cols) }

// Dequantize writes all Rows·Cols values into dst, in parallel.
func (q *NF4) Dequantize(dst []float32) {
	n := q.Rows * q.Cols
	if len(dst) < n {
		panic(fmt.Sprintf("quant: Dequantize of %s (%d×%d) into %d floats", q.Name, q.Rows, q.Cols, len(dst)))
	}
	tensor.ParallelChunks(n, 1<<16, NF4BlockSize, func(lo, hi int) { nf4Dequant(dst[lo:hi], q, lo, hi) })
}

// DequantizeRows writes rows [r0, r1) into dst ((r1-r0)·Cols floats), on the
// calling goroutine.
func (q *NF4) DequantizeRows(r0, r1 int, dst []float32) {
	if r0 < 0 || r1 > q.Rows || r0 > r1 || len(dst) < (r1-r0)*q.Cols {
		panic(fmt.Sprintf("quant: DequantizeRows(%d, %d) of %s (%d×%d) into %d floats", r0, r1, q.Name, q.Rows, q.Cols, len(dst)))
	}
	nf4Dequant(dst, q, r0*q.Cols, r1*q.Cols)
}

// QuantError compares the dequantised weight with w (the tensor it was
// quantised from), a tile of rows at a time: the largest absolute error and
// the root mean square error.
func (q *NF4) QuantError(w *tensor.Tensor) (maxAbs, rms float64) {
	return quantError(q, w)
}

// MatMul computes out(T, N) = x(T, K) · W(N, K)ᵀ, N = Rows, K = Cols: T == 1
// (decode) and small T with the fused dequant-and-dot kernel when K is a
// multiple of 64, otherwise sgemm on dequantised tiles of rows.
func (q *NF4) MatMul(out, x []float32, T int) { matMul(nf4Weights{q: q}, out, x, T) }

// MatMulT computes dx(T, K) = dy(T, N) · W(N, K), the product with the
// transpose that the backward pass through a frozen weight needs, with sgemm
// on dequantised tiles.
func (q *NF4) MatMulT(dx, dy []float32, T int) { matMulT(nf4Weights{q: q}, dx, dy, T) }

// nf4Weights adapts *NF4 to the tiling of matmul.go; with bf16 (the bf16
// products) every kernel rounds each dequantised weight to bf16.
type nf4Weights struct {
	q    *NF4
	bf16 bool
}

func (w nf4Weights) roundsBF16() bool         { return w.bf16 }
func (w nf4Weights) withBF16(on bool) weights { return nf4Weights{w.q, on} }
func (w nf4Weights) name() string             { return w.q.Name }
func (w nf4Weights) shape() (int, int)        { return w.q.Rows, w.q.Cols }
func (w nf4Weights) fused() bool              { return w.q.Cols%NF4BlockSize == 0 }
func (w nf4Weights) colAlign() int            { return NF4BlockSize }
func (w nf4Weights) rowBytes() int            { return (w.q.Cols + 1) / 2 }
func (w nf4Weights) prepLen(K int) int        { return nf4XPLen(K) }
func (w nf4Weights) prep(xp, x []float32) {
	nf4Prep(xp, x)
}
func (w nf4Weights) matvec(out, xp []float32, n0, n1 int) { nf4Matvec(out, w.q, xp, n0, n1, w.bf16) }
func (w nf4Weights) dequantTile(dst []float32, ldd, n0, n1, k0, k1 int) {
	nf4DequantTile(dst, ldd, w.q, n0, n1, k0, k1, w.bf16)
}

// quantError is QuantError for any dequantisable weight.
func quantError(w interface {
	Shape() (int, int)
	DequantizeRows(r0, r1 int, dst []float32)
}, ref *tensor.Tensor) (maxAbs, rms float64) {
	N, K := w.Shape()
	if ref.Elems() != N*K {
		panic(fmt.Sprintf("quant: QuantError against %s %v, quantised weight is %d×%d", ref.Name, ref.Shape, N, K))
	}
	tile := max(1, (1<<16)/max(1, K))
	deq := make([]float32, tile*K)
	orig := make([]float32, tile*K)
	es := ref.DType.Size()
	var ss float64
	for r0 := 0; r0 < N; r0 += tile {
		r1 := min(r0+tile, N)
		w.DequantizeRows(r0, r1, deq)
		tensor.ToF32(orig[:(r1-r0)*K], ref.DType, ref.Data[r0*K*es:r1*K*es])
		for i, v := range orig[:(r1-r0)*K] {
			d := math.Abs(float64(deq[i]) - float64(v))
			maxAbs = max(maxAbs, d)
			ss += d * d
		}
	}
	return maxAbs, math.Sqrt(ss / float64(N*K))
}
