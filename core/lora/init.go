package lora

import (
	"math"
	"math/rand/v2"
)

// kaimingA is the negative slope PEFT passes to kaiming_uniform_ for lora_A
// (torch.nn.Linear's own default initialisation).
var kaimingA = math.Sqrt(5)

// InitBound is the half-width of lora_A's uniform initialisation for a layer
// with in inputs, as torch.nn.init.kaiming_uniform_(A, a=√5) computes it:
// gain = √(2/(1+a²)) (leaky_relu), fan_in = in (A is (r, in)),
// bound = gain·√(3/fan_in), which is 1/√in.
func InitBound(in int) float64 {
	gain := math.Sqrt(2 / (1 + kaimingA*kaimingA))
	return gain * math.Sqrt(3/float64(in))
}

// Init sets every A to U[-bound, bound) with bound = InitBound(in) and every
// B to zero, so the adapted model starts equal to the base (PEFT's
// init_lora_weights=True). Each Pair draws from its own PCG stream keyed by
// (seed, layer, module): the same seed gives the same A for a projection
// whatever else is targeted.
func Init(a *Adapter, seed uint64) {
	for l, layer := range a.Layers {
		for i, p := range layer {
			if p == nil {
				continue
			}
			rng := rand.New(rand.NewPCG(seed, 0x10ea<<32|uint64(l*len(Modules)+i)))
			bound := InitBound(p.In)
			for j := range p.A {
				p.A[j] = float32(bound * (2*rng.Float64() - 1))
			}
			clear(p.B)
		}
	}
}
