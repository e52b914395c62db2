package gguf

import (
	"encoding/binary"
	"fmt"
	"math"

	"distill/core/tensor"
)

// Dequantize widens src, whole rows of n weights stored at t, into dst
// (len(dst) weights), as llama.cpp reads them (ggml's to_float): the
// weights a GGUF file gives llama.cpp, for checking a file against a
// forward of distill's own.
func Dequantize(dst []float32, t Type, src []byte) error {
	size, err := t.rowBytes(len(dst))
	if err != nil {
		return err
	}
	if len(src) != size {
		return fmt.Errorf("%d weights at %s take %d bytes, not %d", len(dst), t, size, len(src))
	}
	switch t {
	case F32:
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
		}
	case F16:
		for i := range dst {
			dst[i] = tensor.F16ToF32(binary.LittleEndian.Uint16(src[2*i:]))
		}
	case BF16:
		for i := range dst {
			dst[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(src[2*i:])) << 16)
		}
	case Q8_0:
		for b := range len(dst) / q8Block {
			blk := src[b*q8Bytes:]
			d := tensor.F16ToF32(binary.LittleEndian.Uint16(blk))
			for j := range q8Block {
				dst[b*q8Block+j] = float32(int8(blk[2+j])) * d
			}
		}
	case Q5_0:
		dequantizeQ5_0(dst, src)
	case Q4_K:
		dequantizeQ4K(dst, src)
	case Q5_K:
		dequantizeQ5K(dst, src)
	case Q6_K:
		dequantizeQ6K(dst, src)
	default:
		return fmt.Errorf("cannot read %s", t)
	}
	return nil
}
