package gguf

import "math"

// The error-minimising scale searches of ggml's K-quants (ggml-quants.c's
// make_qkx2_quants and make_qx_quants), which llama-quantize runs when it
// has no importance matrix. They are followed step for step, in float32 and
// in the same order of operations, so that distill writes the very bytes
// llama-quantize writes (TestLlamaQuantizeBytes checks that against
// llama.cpp's library). Products that feed a sum are wrapped in float32()
// so that no compiler fuses them into one FMA (Go may on arm64, and the C
// reference is built without), which would round differently.

// groupMaxEps is ggml's GROUP_MAX_EPS: below it a group counts as zero.
const groupMaxEps = 1e-15

// nearestInt rounds to the nearest integer, halves to even, as ggml's
// nearest_int does and the same way: adding 1.5·2²³ in float32 leaves the
// integer in the low mantissa bits (for |f| < 2²², which the levels and
// scales quantisation rounds always are). float32(f) keeps a product the
// caller passes from being fused into the addition.
func nearestInt(f float32) int {
	return int(math.Float32bits(float32(f)+12582912)&0x007fffff) - 0x00400000
}

func sqrt32(f float32) float32 { return float32(math.Sqrt(float64(f))) }

func abs32(f float32) float32 { return math.Float32frombits(math.Float32bits(f) &^ (1 << 31)) }

func clampInt(v, lo, hi int) int { return max(lo, min(hi, v)) }

// fitScaleMin (make_qkx2_quants) fits x ≈ scale·L − min with L in
// [0, nmax], min ≥ 0, minimising Σ w·(error)²: it starts from the min/max
// grid, then tries nstep+1 other grid widths, (nmax + rmin + rdelta·is) /
// (max − min), each with the weighted least-squares scale and min for the
// levels it rounds to, and keeps the best. L gets the levels; Laux is
// scratch of len(x).
func fitScaleMin(x, w []float32, L, Laux []uint8, nmax int, rmin, rdelta float32, nstep int) (scale, theMin float32) {
	n := len(x)
	lo, hi := x[0], x[0]
	sumW := w[0]
	sumX := float32(sumW * x[0])
	for i := 1; i < n; i++ {
		if x[i] < lo {
			lo = x[i]
		}
		if x[i] > hi {
			hi = x[i]
		}
		sumW += w[i]
		sumX += float32(w[i] * x[i])
	}
	if lo > 0 {
		lo = 0
	}
	if hi == lo {
		clear(L[:n])
		return 0, -lo
	}
	iscale := float32(nmax) / (hi - lo)
	if nstep < 1 { // the min/max grid alone, as ggml returns
		scale = 1 / iscale
		for i := range n {
			L[i] = uint8(clampInt(nearestInt(iscale*(x[i]-lo)), 0, nmax))
		}
		return scale, -lo
	}
	scale = 1 / iscale
	var best float32
	for i := range n {
		l := clampInt(nearestInt(iscale*(x[i]-lo)), 0, nmax)
		L[i] = uint8(l)
		diff := float32(scale*float32(l)) + lo - x[i]
		best += float32(w[i] * float32(diff*diff))
	}
	for is := 0; is <= nstep; is++ {
		iscale = (rmin + float32(rdelta*float32(is)) + float32(nmax)) / (hi - lo)
		var sumL, sumL2, sumXL float32
		for i := range n {
			l := clampInt(nearestInt(iscale*(x[i]-lo)), 0, nmax)
			Laux[i] = uint8(l)
			wl := float32(w[i] * float32(l))
			sumL += wl
			sumL2 += float32(wl * float32(l))
			sumXL += float32(wl * x[i])
		}
		D := float32(sumW*sumL2) - float32(sumL*sumL)
		if D <= 0 {
			continue
		}
		thisScale := (float32(sumW*sumXL) - float32(sumX*sumL)) / D
		thisMin := (float32(sumL2*sumX) - float32(sumL*sumXL)) / D
		if thisMin > 0 {
			thisMin = 0
			thisScale = sumXL / sumL2
		}
		var cur float32
		for i := range n {
			diff := float32(thisScale*float32(Laux[i])) + thisMin - x[i]
			cur += float32(w[i] * float32(diff*diff))
		}
		if cur < best {
			copy(L[:n], Laux[:n])
			best, scale, lo = cur, thisScale, thisMin
		}
	}
	return scale, -lo
}

// fitScale (make_qx_quants with rmse_type 1 and no importance weights)
// fits x (at most 32 weights) ≈ scale·(L − nmax) with L in [0, 2·nmax),
// weighting each error by x²: from the grid through the largest magnitude,
// it tries 18 nearby grid widths and keeps the least-squares scale of the
// best. L gets the levels.
func fitScale(x []float32, L []uint8, nmax int) float32 {
	var top, amax float32
	for _, v := range x {
		if a := abs32(v); a > amax {
			amax, top = a, v
		}
	}
	if amax < groupMaxEps {
		clear(L[:len(x)])
		return 0
	}
	// w = x² and w·x, as the C computes them on every pass.
	var w, wx [kSub]float32
	for i, v := range x {
		w[i] = float32(v * v)
		wx[i] = float32(w[i] * v)
	}
	// sums is Σ w·x·l and Σ w·l² over the levels of one grid, the levels
	// (offset by nmax) stored in levels.
	sums := func(iscale float32, levels []uint8) (sumLX, sumL2 float32) {
		for i, v := range x {
			l := clampInt(nearestInt(iscale*v), -nmax, nmax-1)
			levels[i] = uint8(l + nmax)
			sumLX += float32(wx[i] * float32(l))
			sumL2 += float32(float32(w[i]*float32(l)) * float32(l))
		}
		return sumLX, sumL2
	}
	var Laux [kSub]uint8
	sumLX, sumL2 := sums(-float32(nmax)/top, L)
	var scale float32
	if sumL2 != 0 {
		scale = sumLX / sumL2
	}
	best := float32(scale * sumLX)
	for is := -9; is <= 9; is++ {
		if is == 0 {
			continue
		}
		iscale := -(float32(nmax) + float32(float32(0.1)*float32(is))) / top
		sumLX, sumL2 = sums(iscale, Laux[:])
		if sumL2 > 0 && float32(sumLX*sumLX) > float32(best*sumL2) {
			copy(L[:len(x)], Laux[:len(x)])
			scale = sumLX / sumL2
			best = float32(scale * sumLX)
		}
	}
	return scale
}
