package gguf

import (
	"encoding/binary"
	"fmt"
	"math"

	"distill/core/quant"
	"distill/core/tensor"
)

// encodeRows stores src (whole rows) at t into dst, which must hold exactly
// their bytes. A NaN or ±Inf (a diverged adapter folded in) is an error, and
// so is a value past f16's range at F16 (it would become ±Inf).
func encodeRows(dst []byte, t Type, src []float32) error {
	if n, err := t.rowBytes(len(src)); err != nil {
		return err
	} else if n != len(dst) {
		return fmt.Errorf("%d weights at %s take %d bytes, not %d", len(src), t, n, len(dst))
	}
	for i, f := range src {
		switch {
		case math.IsNaN(float64(f)) || math.IsInf(float64(f), 0):
			return fmt.Errorf("value %d is %v: the weights (or the adapter folded in) diverged", i, f)
		case t == F16 && math.Abs(float64(f)) > 65504:
			return fmt.Errorf("value %d is %g, past f16's range (65504): export --type bf16 or f32", i, f)
		}
	}
	switch t {
	case F32:
		for i, f := range src {
			binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(f))
		}
	case F16:
		for i, f := range src {
			binary.LittleEndian.PutUint16(dst[2*i:], tensor.F32ToF16(f))
		}
	case BF16:
		for i, f := range src {
			binary.LittleEndian.PutUint16(dst[2*i:], tensor.F32ToBF16(f))
		}
	case Q8_0:
		// core/quant's quantiser computes ggml's Q8_0 codes (checked against
		// tools/quantref); the block stores its scale rounded to f16.
		q, err := quant.QuantizeQ8(tensor.FromF32("", src, 1, len(src)))
		if err != nil {
			return err
		}
		for b, d := range q.Scales {
			blk := dst[b*q8Bytes : (b+1)*q8Bytes]
			binary.LittleEndian.PutUint16(blk, tensor.F32ToF16(d))
			for j, v := range q.Qs[b*q8Block : (b+1)*q8Block] {
				blk[2+j] = byte(v)
			}
		}
	case Q5_0:
		quantizeQ5_0(dst, src)
	case Q4_K:
		quantizeQ4K(dst, src)
	case Q5_K:
		quantizeQ5K(dst, src)
	case Q6_K:
		quantizeQ6K(dst, src)
	default:
		return fmt.Errorf("cannot encode %s", t)
	}
	if t != F32 && t != F16 && t != BF16 {
		return checkScales(dst, t, len(src))
	}
	return nil
}

// checkScales decodes what a quantised type stored and refuses a non-finite
// value: a block's f16 scale overflows past 65504·(its largest level), for
// weights far past any trained model's (llama-quantize would write the
// ±Inf).
func checkScales(dst []byte, t Type, n int) error {
	back := make([]float32, n)
	if err := Dequantize(back, t, dst); err != nil {
		return err
	}
	for i, f := range back {
		if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
			return fmt.Errorf("value %d is past what %s's f16 block scales hold: export --type bf16 or f32", i, t)
		}
	}
	return nil
}
