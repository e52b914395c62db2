package model

// Module names a decoder layer's linear projection, in PEFT's module order.
type Module int

const (
	ModQ Module = iota
	ModK
	ModV
	ModO
	ModGate
	ModUp
	ModDown
)

// Delta adds a trained update to a projection's output during the forward
// pass: y(T, out) += Δ(x(T, in)) for layer l's module. Implementations must
// leave modules they do not target untouched.
type Delta interface {
	Apply(l int, mod Module, y, x []float32, T int)
}
