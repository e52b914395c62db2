package gguf

import (
	"encoding/binary"

	"distill/core/tensor"
)

// Q6_K (ggml-common.h's block_q6_K): a super-block of 256 weights in 16
// sub-blocks of 16, each weight w ≈ d·sc·(q − 32) with q of 6 bits, sc the
// sub-block's int8 scale and d the super-block's f16 scale. Bytes (210):
//
//	ql [128] | qh [64] | scales [16]int8 | d f16
//
// Each half of 128 weights takes 64 bytes of ql and 32 of qh: ql byte l
// holds the low nibbles of weights l (low) and l+64 (high), byte l+32 those
// of l+32 and l+96; qh byte l holds the top 2 bits of weights l, l+32, l+64
// and l+96, from its low bits up.

// kSub16 is a Q6_K sub-block: 16 weights.
const kSub16 = 16

// quantizeQ6K stores x (whole super-blocks) as Q6_K blocks in dst, as
// ggml's quantize_row_q6_K_ref does: each sub-block's scale by fitScale,
// the 16 scales to int8 against the largest in magnitude (−128 for it),
// then every weight re-rounded to the scale it will be read with.
func quantizeQ6K(dst []byte, x []float32) {
	var L [qkK]uint8
	var scales [qkK / kSub16]float32
	for b := 0; b < len(x)/qkK; b++ {
		blk := dst[b*q6KBytes : (b+1)*q6KBytes]
		xb := x[b*qkK : (b+1)*qkK]
		var maxScale, maxAbs float32
		for ib := range scales {
			scales[ib] = fitScale(xb[kSub16*ib:kSub16*(ib+1)], L[kSub16*ib:], 32)
			if a := abs32(scales[ib]); a > maxAbs {
				maxAbs, maxScale = a, scales[ib]
			}
		}
		if maxAbs < groupMaxEps {
			clear(blk) // all zero, d = 0
			continue
		}
		ql, qh, sc := blk[0:128], blk[128:192], blk[192:208]
		iscale := -128 / maxScale
		d := tensor.F32ToF16(1 / iscale)
		binary.LittleEndian.PutUint16(blk[208:], d)
		for ib := range scales {
			sc[ib] = byte(int8(min(127, nearestInt(iscale*scales[ib]))))
		}
		df := tensor.F16ToF32(d)
		for j := range scales {
			dl := df * float32(int8(sc[j]))
			if dl == 0 {
				continue // the fitted levels stay, as in ggml
			}
			for i, v := range xb[kSub16*j : kSub16*(j+1)] {
				L[kSub16*j+i] = uint8(clampInt(nearestInt(v/dl), -32, 31) + 32)
			}
		}
		for h := range 2 {
			q, ql, qh := L[128*h:], ql[64*h:], qh[32*h:]
			for l := range 32 {
				ql[l] = q[l]&0xF | (q[l+64]&0xF)<<4
				ql[l+32] = q[l+32]&0xF | (q[l+96]&0xF)<<4
				qh[l] = q[l]>>4 | (q[l+32]>>4)<<2 | (q[l+64]>>4)<<4 | (q[l+96]>>4)<<6
			}
		}
	}
}

// dequantizeQ6K widens Q6_K blocks (dequantize_row_q6_K).
func dequantizeQ6K(dst []float32, src []byte) {
	for b := range len(dst) / qkK {
		blk := src[b*q6KBytes : (b+1)*q6KBytes]
		d := tensor.F16ToF32(binary.LittleEndian.Uint16(blk[208:]))
		for h := range 2 {
			ql, qh, sc := blk[64*h:], blk[128+32*h:], blk[192+8*h:]
			y := dst[b*qkK+128*h:]
			for l := range 32 {
				is := l / 16
				q1 := int8(ql[l]&0xF|(qh[l]&3)<<4) - 32
				q2 := int8(ql[l+32]&0xF|(qh[l]>>2&3)<<4) - 32
				q3 := int8(ql[l]>>4|(qh[l]>>4&3)<<4) - 32
				q4 := int8(ql[l+32]>>4|(qh[l]>>6&3)<<4) - 32
				y[l] = float32(d*float32(int8(sc[is]))) * float32(q1)
				y[l+32] = float32(d*float32(int8(sc[is+2]))) * float32(q2)
				y[l+64] = float32(d*float32(int8(sc[is+4]))) * float32(q3)
				y[l+96] = float32(d*float32(int8(sc[is+6]))) * float32(q4)
			}
		}
	}
}
