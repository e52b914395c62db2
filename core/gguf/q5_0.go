package gguf

import (
	"encoding/binary"

	"distill/core/tensor"
)

// Q5_0 (ggml-common.h's block_q5_0), llama-quantize's stand-in for Q4_K in
// rows that do not fill super-blocks of 256: 32 weights w = d·(q − 16) with
// q of 5 bits. Bytes (22):
//
//	d f16 | qh uint32 | qs [16]
//
// qs byte j holds the low nibbles of weights j (low) and j+16 (high); bit j
// of qh is weight j's fifth bit, bit j+16 weight j+16's.

// quantizeQ5_0 stores x (whole blocks) as Q5_0 blocks in dst, as ggml's
// quantize_row_q5_0_ref does (the weight largest in magnitude sets d so
// that it lands on −16; the rest round to nearest, halves up).
func quantizeQ5_0(dst []byte, x []float32) {
	for b := 0; b < len(x)/q5Block; b++ {
		blk := dst[b*q5Bytes : (b+1)*q5Bytes]
		xb := x[b*q5Block : (b+1)*q5Block]
		var amax, top float32
		for _, v := range xb {
			if a := abs32(v); amax < a {
				amax, top = a, v
			}
		}
		d := top / -16
		var id float32
		if d != 0 {
			id = 1 / d
		}
		binary.LittleEndian.PutUint16(blk, tensor.F32ToF16(d))
		var qh uint32
		for j := range q5Block / 2 {
			// The C truncates x·id + 16.5 (in [0.5, 32.5]) to an integer.
			q0 := uint8(min(31, int(float32(xb[j]*id)+16.5)))
			q1 := uint8(min(31, int(float32(xb[j+16]*id)+16.5)))
			blk[6+j] = q0&0xF | (q1&0xF)<<4
			qh |= uint32(q0>>4) << j
			qh |= uint32(q1>>4) << (j + 16)
		}
		binary.LittleEndian.PutUint32(blk[2:], qh)
	}
}

// dequantizeQ5_0 widens Q5_0 blocks (dequantize_row_q5_0).
func dequantizeQ5_0(dst []float32, src []byte) {
	for b := range len(dst) / q5Block {
		blk := src[b*q5Bytes : (b+1)*q5Bytes]
		d := tensor.F16ToF32(binary.LittleEndian.Uint16(blk))
		qh := binary.LittleEndian.Uint32(blk[2:])
		y := dst[b*q5Block:]
		for j := range q5Block / 2 {
			q0 := int32(blk[6+j]&0xF) | int32(qh>>j&1)<<4
			q1 := int32(blk[6+j]>>4) | int32(qh>>(j+16)&1)<<4
			y[j] = float32(q0-16) * d
			y[j+16] = float32(q1-16) * d
		}
	}
}
