package gguf

import (
	"encoding/binary"

	"distill/core/tensor"
)

// Q4_K and Q5_K (ggml-common.h's block_q4_K, block_q5_K): a super-block of
// 256 weights in 8 sub-blocks of 32, each weight w ≈ d·sc·q − dmin·m with
// q of 4 (5) bits, sc and m the sub-block's 6-bit scale and min, d and dmin
// the super-block's f16 scales for them. Bytes:
//
//	q4_K (144): d f16 | dmin f16 | scales [12] | qs [128]
//	q5_K (176): d f16 | dmin f16 | scales [12] | qh [32] | qs [128]
//
// scales packs the 8 scales and 8 mins of 6 bits (get_scale_min_k4):
// sub-blocks 0-3 keep scale and min in the low 6 bits of bytes j and j+4;
// sub-blocks 4-7 keep their low 4 bits in byte j+4 (scale low nibble, min
// high nibble) and their top 2 bits in the top 2 bits of bytes j-4 (scale)
// and j (min). qs holds 64 weights per 32 bytes: byte l of the chunk is
// weight l in its low nibble and weight l+32 in its high one. q5_K's qh
// byte l holds the fifth bits of weight l (bit 2c) and l+32 (bit 2c+1) of
// chunk c.

// kSub is a K-quant sub-block with a min: 32 weights.
const kSub = 32

// quantizeQ4K stores x (whole super-blocks) as Q4_K blocks in dst, as
// ggml's quantize_row_q4_K_ref does.
func quantizeQ4K(dst []byte, x []float32) {
	var L [qkK]uint8
	for b := 0; b < len(x)/qkK; b++ {
		blk := dst[b*q4KBytes : (b+1)*q4KBytes]
		quantizeScaleMinBlock(blk[:16], L[:], x[b*qkK:(b+1)*qkK], 15, -1, 20)
		qs := blk[16:]
		for c := range qkK / 64 {
			for l := range 32 {
				qs[32*c+l] = L[64*c+l] | L[64*c+l+32]<<4
			}
		}
	}
}

// quantizeQ5K stores x as Q5_K blocks, as quantize_row_q5_K_ref does.
func quantizeQ5K(dst []byte, x []float32) {
	var L [qkK]uint8
	for b := 0; b < len(x)/qkK; b++ {
		blk := dst[b*q5KBytes : (b+1)*q5KBytes]
		quantizeScaleMinBlock(blk[:16], L[:], x[b*qkK:(b+1)*qkK], 31, -0.5, 15)
		qh, qs := blk[16:48], blk[48:]
		clear(qh)
		for c := range qkK / 64 {
			for l := range 32 {
				lo, hi := L[64*c+l], L[64*c+l+32]
				qh[l] |= (lo>>4)<<(2*c) | (hi>>4)<<(2*c+1)
				qs[32*c+l] = lo&0xF | (hi&0xF)<<4
			}
		}
	}
}

// quantizeScaleMinBlock fits one super-block x of a scale-and-min K-quant
// with levels up to nmax: each sub-block's scale and min by fitScaleMin
// (weights |x| + the sub-block's RMS, grid widths from nmax+rmin in steps
// of 0.1), the 8 scales and 8 mins to 6 bits against the largest of each,
// then every weight re-rounded to the scale and min it will be read with.
// It writes d, dmin and the packed scales into head (16 bytes) and the
// levels into L.
func quantizeScaleMinBlock(head []byte, L []uint8, x []float32, nmax int, rmin float32, nstep int) {
	var scales, mins [8]float32
	var weights [kSub]float32
	var Laux [kSub]uint8
	var maxScale, maxMin float32
	for j := range 8 {
		sub := x[kSub*j : kSub*(j+1)]
		var sumX2 float32
		for _, v := range sub {
			sumX2 += float32(v * v)
		}
		avX := sqrt32(sumX2 / kSub)
		for l, v := range sub {
			weights[l] = avX + abs32(v)
		}
		scales[j], mins[j] = fitScaleMin(sub, weights[:], L[kSub*j:], Laux[:], nmax, rmin, 0.1, nstep)
		maxScale = max(maxScale, scales[j])
		maxMin = max(maxMin, mins[j])
	}
	var invScale, invMin float32
	if maxScale > 0 {
		invScale = 63 / maxScale
	}
	if maxMin > 0 {
		invMin = 63 / maxMin
	}
	sc := head[4:16]
	for j := range 8 {
		// uint8 as the C stores nearest_int's int, then at most 63.
		ls := min(63, uint8(nearestInt(invScale*scales[j])))
		lm := min(63, uint8(nearestInt(invMin*mins[j])))
		if j < 4 {
			sc[j], sc[j+4] = ls, lm
		} else {
			sc[j+4] = ls&0xF | (lm&0xF)<<4
			sc[j-4] |= (ls >> 4) << 6
			sc[j] |= (lm >> 4) << 6
		}
	}
	d, dmin := tensor.F32ToF16(maxScale/63), tensor.F32ToF16(maxMin/63)
	binary.LittleEndian.PutUint16(head[0:], d)
	binary.LittleEndian.PutUint16(head[2:], dmin)
	df, dminf := tensor.F16ToF32(d), tensor.F16ToF32(dmin)
	for j := range 8 {
		s, m := scaleMinK4(j, sc)
		dl := df * float32(s)
		if dl == 0 {
			continue // the fitted levels stay, as in ggml
		}
		ml := dminf * float32(m)
		for i, v := range x[kSub*j : kSub*(j+1)] {
			L[kSub*j+i] = uint8(clampInt(nearestInt((v+ml)/dl), 0, nmax))
		}
	}
}

// scaleMinK4 unpacks sub-block j's 6-bit scale and min (get_scale_min_k4).
func scaleMinK4(j int, q []byte) (sc, m uint8) {
	if j < 4 {
		return q[j] & 63, q[j+4] & 63
	}
	return q[j+4]&0xF | (q[j-4]>>6)<<4, q[j+4]>>4 | (q[j]>>6)<<4
}

// dequantizeQ4K widens Q4_K blocks (dequantize_row_q4_K).
func dequantizeQ4K(dst []float32, src []byte) {
	for b := range len(dst) / qkK {
		blk := src[b*q4KBytes : (b+1)*q4KBytes]
		d := tensor.F16ToF32(binary.LittleEndian.Uint16(blk[0:]))
		dmin := tensor.F16ToF32(binary.LittleEndian.Uint16(blk[2:]))
		sc, qs := blk[4:16], blk[16:]
		y := dst[b*qkK:]
		for c := range qkK / 64 {
			s1, m1 := scaleMinK4(2*c, sc)
			s2, m2 := scaleMinK4(2*c+1, sc)
			d1, min1 := float32(d*float32(s1)), float32(dmin*float32(m1))
			d2, min2 := float32(d*float32(s2)), float32(dmin*float32(m2))
			for l := range 32 {
				q := qs[32*c+l]
				y[64*c+l] = float32(d1*float32(q&0xF)) - min1
				y[64*c+32+l] = float32(d2*float32(q>>4)) - min2
			}
		}
	}
}

// dequantizeQ5K widens Q5_K blocks (dequantize_row_q5_K).
func dequantizeQ5K(dst []float32, src []byte) {
	for b := range len(dst) / qkK {
		blk := src[b*q5KBytes : (b+1)*q5KBytes]
		d := tensor.F16ToF32(binary.LittleEndian.Uint16(blk[0:]))
		dmin := tensor.F16ToF32(binary.LittleEndian.Uint16(blk[2:]))
		sc, qh, qs := blk[4:16], blk[16:48], blk[48:]
		y := dst[b*qkK:]
		for c := range qkK / 64 {
			s1, m1 := scaleMinK4(2*c, sc)
			s2, m2 := scaleMinK4(2*c+1, sc)
			d1, min1 := float32(d*float32(s1)), float32(dmin*float32(m1))
			d2, min2 := float32(d*float32(s2)), float32(dmin*float32(m2))
			for l := range 32 {
				q := qs[32*c+l]
				lo := q&0xF | (qh[l]>>(2*c)&1)<<4
				hi := q>>4 | (qh[l]>>(2*c+1)&1)<<4
				y[64*c+l] = float32(d1*float32(lo)) - min1
				y[64*c+32+l] = float32(d2*float32(hi)) - min2
			}
		}
	}
}
