package train

import (
	"math"

	"distill/core/tensor"
)

// LoRA dropout (PEFT: y += s·B·A·dropout(x)). The mask is a pure function of
// (seed, micro-batch, site, element) — a counter-based hash — so the forward,
// its recompute under checkpointing and the backward agree without storing
// a mask per module.

func (nt *Net) dropping() bool {
	return nt.Adapter != nil && nt.Adapter.Config.Dropout > 0 && !nt.evaluating
}

// mix is SplitMix64's finaliser: a bijective 64-bit hash.
func mix(z uint64) uint64 {
	z += 0x9e3779b97f4a7c15
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

func (nt *Net) dropBase(site int) (base, thresh uint64, keep float32) {
	p := nt.Adapter.Config.Dropout
	base = mix(nt.DropoutSeed ^ mix(uint64(nt.microBatches)<<16|uint64(site)))
	return base, uint64(p * math.MaxUint64), float32(1 / (1 - p))
}

// dropout writes x∘mask/(1−p) into dst and returns it.
func (nt *Net) dropout(dst, x []float32, site int) []float32 {
	base, thresh, keep := nt.dropBase(site)
	tensor.ParallelFor(len(x), 4096, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			if mix(base+uint64(i)) < thresh {
				dst[i] = 0
			} else {
				dst[i] = x[i] * keep
			}
		}
	})
	return dst
}

// dropoutAdd adds g∘mask/(1−p) to dx: the gradient through the dropout.
func (nt *Net) dropoutAdd(dx, g []float32, site int) {
	base, thresh, keep := nt.dropBase(site)
	tensor.ParallelFor(len(dx), 4096, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			if mix(base+uint64(i)) >= thresh {
				dx[i] += g[i] * keep
			}
		}
	})
}
