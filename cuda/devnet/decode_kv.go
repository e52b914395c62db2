//go:build cuda

package devnet

import (
	"slices"

	"distill/core/model"
	"distill/core/tensor"
	"distill/cuda"
)

// Rows between a host cache and its device mirror. Either side holds keys
// and values in f32 or in bf16: the mirror in bf16 where the flash kernels
// attend (model.DeviceKVBF16), the host cache in bf16 when the decoder says
// so (CacheBF16: then both hold the same values, copied as they are); rows
// cross between kinds rounded to nearest even or widened exactly.

// CacheBF16 says whether the mirrors this decoder makes hold bf16, so a
// host cache in bf16 holds exactly what they do (model.Accelerated): where
// it attends with the flash kernels, by their asynchronous forward (the
// one that reads bf16 keys and values; DISTILL_CUDA_FLASH_ASYNC=0 keeps
// the mirrors f32 for the synchronous one).
func (dc *Decoder) CacheBF16() bool {
	return model.DeviceKVBF16(dc.M.Config.HeadDim) && dc.base.flashAttention() && asyncTilesReady()
}

// hostKV is one layer's keys or values in a host cache: f32 rows, or bf16
// bits (h) in a bf16 cache.
type hostKV struct {
	f []float32
	h []uint16
}

// hostLayer is layer l's keys and values in c.
func hostLayer(c *model.Cache, l int) (k, v hostKV) {
	if c.BF16() {
		return hostKV{h: c.K16[l]}, hostKV{h: c.V16[l]}
	}
	return hostKV{f: c.K[l]}, hostKV{f: c.V[l]}
}

// set writes the f32 values x from element r0 on (rounded in a bf16
// cache) and returns how many.
func (hk hostKV) set(r0 int, x []float32) int {
	if hk.h == nil {
		return copy(hk.f[r0:], x)
	}
	tensor.RoundRowsBF16(hk.h[r0:], len(x), x, len(x), 1, len(x))
	return len(x)
}

// upRows writes elements [r0, r1) of hk into b, a mirror's layer buffer,
// at r0.
func (dc *Decoder) upRows(b *cuda.Buffer, hk hostKV, r0, r1 int) error {
	switch bf16 := b.Kind == cuda.BF16; {
	case hk.h != nil && bf16:
		return cuda.Write(b, r0, hk.h[r0:r1])
	case hk.h != nil:
		dc.wide = slices.Grow(dc.wide[:0], r1-r0)[:r1-r0]
		tensor.WidenBF16(dc.wide, hk.h[r0:r1])
		return cuda.Write(b, r0, dc.wide)
	case bf16:
		dc.host16 = slices.Grow(dc.host16[:0], r1-r0)[:r1-r0]
		tensor.RoundRowsBF16(dc.host16, r1-r0, hk.f[r0:r1], r1-r0, 1, r1-r0)
		return cuda.Write(b, r0, dc.host16)
	}
	return cuda.Write(b, r0, hk.f[r0:r1])
}

// downRows reads elements [r0, r1) of b, a mirror's layer buffer, into hk
// at r0.
func (dc *Decoder) downRows(hk hostKV, b *cuda.Buffer, r0, r1 int) error {
	switch bf16 := b.Kind == cuda.BF16; {
	case hk.h != nil && bf16:
		return cuda.Read(b, r0, hk.h[r0:r1])
	case hk.h != nil:
		dc.wide = slices.Grow(dc.wide[:0], r1-r0)[:r1-r0]
		if err := cuda.Read(b, r0, dc.wide); err != nil {
			return err
		}
		hk.set(r0, dc.wide)
		return nil
	case bf16:
		dc.host16 = slices.Grow(dc.host16[:0], r1-r0)[:r1-r0]
		if err := cuda.Read(b, r0, dc.host16); err != nil {
			return err
		}
		tensor.WidenBF16(hk.f[r0:r1], dc.host16)
		return nil
	}
	return cuda.Read(b, r0, hk.f[r0:r1])
}

// intoMirror writes a pass's f32 rows src into dst, rows of a mirror's layer
// buffer: copied, or rounded into a bf16 one.
func (p *pass) intoMirror(dst, src *cuda.Buffer) {
	if dst.Kind == cuda.BF16 {
		p.do(p.d.ToBF16(dst, src, src.Len))
		return
	}
	p.do(src.CopyTo(dst))
}

// fromMirror writes src, rows of a mirror's layer buffer, into the f32 rows
// dst: copied, or widened from bf16.
func (p *pass) fromMirror(dst, src *cuda.Buffer) {
	if src.Kind == cuda.BF16 {
		p.do(p.d.ToF32(dst, src, src.Len))
		return
	}
	p.do(src.CopyTo(dst))
}
