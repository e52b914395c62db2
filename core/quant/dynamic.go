package quant

import (
	"distill/core/tensor"

	"math"
	"sort"
)

// DynamicMap is bitsandbytes' signed dynamic 8-bit map,
// create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8), which
// QLoRA's double quantisation uses for the absmaxes: for i = 0..6, the
// 2^i midpoints of linspace(0.1, 1, 2^i + 1) scaled by 10^(i-6), with both
// signs (254 values), then 0 and 1, sorted. It is increasing: index 0 is
// -0.99296875, 127 is 0, 255 is 1.
//
// bitsandbytes computes it with torch in f32, so its last bits are those of
// torch's CPU linspace, which dynamicMap reproduces (see linspaceTorch); the
// goldens of tools/quantref/nf4_ref.py hold the map as torch 1.13 builds it.
var DynamicMap = dynamicMap()

func dynamicMap() [256]float32 {
	v := make([]float32, 0, 256)
	for i := 0; i < 7; i++ {
		b := linspaceTorch(0.1, 1, 1<<i+1)
		scale := float32(math.Pow10(i - 6))
		for j := 0; j+1 < len(b); j++ {
			mean := float32(b[j]+b[j+1]) / 2
			v = append(v, scale*mean, -(scale * mean))
		}
	}
	v = append(v, 0, 1)
	sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
	var m [256]float32
	copy(m[:], v)
	return m
}

// linspaceTorch is torch.linspace(start, end, n) in f32 as torch's CPU kernel
// computes it on x86-64 (ATen's AVX2 build, as torch 1.13 dispatches it):
// step = (end-start)/(n-1); element i is start + step·i below n/2 and
// end - step·(n-1-i) from there, each a fused multiply-add (the compiler
// contracts them); but runs of 16 elements are written as two vectors of 8
// whose lane j is base + (j·step), rounded twice, from the fused base of the
// lane-0 element. For the n of the dynamic map (2 to 65) this is the
// difference between matching bitsandbytes' map bit for bit and 44 of its 256
// values one ulp off.
func linspaceTorch(start, end float32, n int) []float32 {
	out := make([]float32, n)
	if n == 1 {
		out[0] = start
		return out
	}
	step := (end - start) / float32(n-1)
	half := n / 2
	fma := func(a, b, c float32) float32 { return float32(math.FMA(float64(a), float64(b), float64(c))) }
	at := func(i int) float32 {
		if i < half {
			return fma(step, float32(i), start)
		}
		return fma(-step, float32(n-1-i), end)
	}
	const vec = 8
	i := 0
	for i+2*vec <= n { // a pair of vectors at a time, as ATen's loop
		for range 2 {
			base := at(i)
			for j := 0; j < vec; j++ {
				out[i+j] = base + float32(float32(j)*step)
			}
			i += vec
		}
	}
	for ; i < n; i++ {
		out[i] = at(i)
	}
	return out
}

// dynIndex is bitsandbytes' dQuantize (deterministic rounding) of x against
// the 256-entry map m: a 7-step binary search from index 127 that ends on an
// even index p with m[p-1] < x ≤ m[p+1], then the nearer of p and its
// neighbour on x's side, the midpoint (m[p] + m[neighbour])·0.5 computed in
// f32, ties to p. NaN searches to index 0.
func dynIndex(x float32, m *[256]float32) byte {
	pivot, upperPivot, lowerPivot := 127, 255, 0
	lower, upper := float32(-1), float32(1)
	val := m[pivot]
	for i := 64; i > 0; i >>= 1 {
		if x > val {
			lowerPivot, lower = pivot, val
			pivot += i
		} else {
			upperPivot, upper = pivot, val
			pivot -= i
		}
		val = m[pivot]
	}
	if upperPivot == 255 {
		upper = m[upperPivot]
	}
	if lowerPivot == 0 {
		lower = m[lowerPivot]
	}
	if x > val {
		if x > float32(upper+val)*0.5 {
			return byte(upperPivot)
		}
		return byte(pivot)
	}
	if x < float32(lower+val)*0.5 {
		return byte(lowerPivot)
	}
	return byte(pivot)
}

// doubleQuantize is bitsandbytes' compress_statistics: offset = the mean of
// the absmaxes; the centred absmaxes are quantised blockwise (256 a block)
// with the dynamic map: absmax2 = max |a - offset| over the block, code =
// dynIndex((a - offset) · (1/absmax2)), all in f32.
//
// The mean is the correctly rounded f64 sum (fsum) divided by the count and
// rounded to f32. bitsandbytes takes torch's f32 mean on the GPU, whose
// rounding depends on the reduction order; the two agree to an ulp or so.
func doubleQuantize(absmax []float32, m *[256]float32) (qabs []byte, absmax2 []float32, offset float32) {
	offset = float32(fsum(absmax) / float64(len(absmax)))
	qabs = make([]byte, len(absmax))
	absmax2 = make([]float32, (len(absmax)+255)/256)
	tensor.ParallelChunks(len(absmax2), 16, 1, func(lo, hi int) {
		var c [256]float32
		for j := lo; j < hi; j++ {
			blk := absmax[256*j : min(256*(j+1), len(absmax))]
			var am float32
			for i, a := range blk {
				c[i] = a - offset
				am = max(am, float32(math.Abs(float64(c[i]))))
			}
			absmax2[j] = am
			inv := 1 / am // +Inf when every centred absmax is 0: 0·Inf = NaN → code 0
			for i := range blk {
				qabs[256*j+i] = dynIndex(c[i]*inv, m)
			}
		}
	})
	return qabs, absmax2, offset
}

// fsum returns the correctly rounded sum of v, by Shewchuk's exact partials
// (the algorithm of Python's math.fsum, which the golden script uses).
func fsum(v []float32) float64 {
	var p []float64
	for _, f := range v {
		x := float64(f)
		i := 0
		for _, y := range p {
			if math.Abs(x) < math.Abs(y) {
				x, y = y, x
			}
			hi := x + y
			lo := y - (hi - x)
			if lo != 0 {
				p[i] = lo
				i++
			}
			x = hi
		}
		p = append(p[:i], x)
	}
	n := len(p)
	if n == 0 {
		return 0
	}
	n--
	hi := p[n]
	var lo float64
	for n > 0 {
		x := hi
		n--
		y := p[n]
		hi = x + y
		lo = y - (hi - x)
		if lo != 0 {
			break
		}
	}
	// Round half-way cases as the exact sum says (a tie broken by the
	// partials below).
	if n > 0 && ((lo < 0 && p[n-1] < 0) || (lo > 0 && p[n-1] > 0)) {
		y := lo * 2
		x := hi + y
		if y == x-hi {
			hi = x
		}
	}
	return hi
}
