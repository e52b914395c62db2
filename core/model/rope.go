package model

import (
	"math"
	"sync"
)

// ropeTables holds cos/sin of position × inv_freq, (positions, headDim/2),
// grown on demand: a 128k-context model should not pay for 128k rows up front.
type ropeTables struct {
	mu       sync.Mutex
	invFreq  []float64
	cos, sin []float32
	n        int // positions filled
}

func newRopeTables(c *Config) ropeTables {
	half := c.HeadDim / 2
	inv := make([]float64, half)
	for i := range inv {
		inv[i] = 1 / math.Pow(c.RopeTheta, float64(2*i)/float64(c.HeadDim))
	}
	switch r := c.RopeScaling; r.Kind() {
	case "linear":
		for i := range inv {
			inv[i] /= r.Factor
		}
	case "llama3":
		// Llama 3.1: long wavelengths (low frequencies) are slowed by factor,
		// short ones kept, and the band between interpolated smoothly.
		lowWavelen := float64(r.OriginalMaxPositionEmbeddings) / r.LowFreqFactor
		highWavelen := float64(r.OriginalMaxPositionEmbeddings) / r.HighFreqFactor
		for i, f := range inv {
			wavelen := 2 * math.Pi / f
			switch {
			case wavelen < highWavelen:
			case wavelen > lowWavelen:
				inv[i] = f / r.Factor
			default:
				smooth := (float64(r.OriginalMaxPositionEmbeddings)/wavelen - r.LowFreqFactor) / (r.HighFreqFactor - r.LowFreqFactor)
				inv[i] = (1-smooth)*f/r.Factor + smooth*f
			}
		}
	}
	return ropeTables{invFreq: inv}
}

// RopeInvFreq is c's rotary frequencies, per pair of a head's dimensions,
// with its rope_scaling applied (exporters write them in other forms).
func RopeInvFreq(c *Config) []float64 { return newRopeTables(c).invFreq }

// upTo returns tables covering positions [0, n).
func (r *ropeTables) upTo(n int) (cos, sin []float32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n > r.n {
		grow := max(n, 2*r.n, 256)
		half := len(r.invFreq)
		cos := make([]float32, grow*half)
		sin := make([]float32, grow*half)
		copy(cos, r.cos)
		copy(sin, r.sin)
		for p := r.n; p < grow; p++ {
			for i, f := range r.invFreq {
				a := float64(p) * f
				cos[p*half+i] = float32(math.Cos(a))
				sin[p*half+i] = float32(math.Sin(a))
			}
		}
		r.cos, r.sin, r.n = cos, sin, grow
	}
	return r.cos, r.sin
}

// Rope returns cos/sin tables, (positions, headDim/2), covering positions
// [0, n); valid until the next call that grows them.
func (m *Model) Rope(n int) (cos, sin []float32) { return m.rope.upTo(n) }
