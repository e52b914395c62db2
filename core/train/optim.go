package train

import (
	"fmt"
	"math"

	"distill/core/tensor"
)

// AdamW is Adam with decoupled weight decay (Loshchilov & Hutter), as
// torch.optim.AdamW: p ← p·(1 − lr·wd), then p ← p − lr·m̂/(√v̂ + ε).
// Its moments mirror the parameters element for element.
type AdamW struct {
	Beta1, Beta2, Eps, WeightDecay float64
	M, V                           []float32 // first and second moments
	Step                           int       // updates taken
}

// NewAdamW makes an optimizer for n parameters with torch's defaults for
// the betas and ε.
func NewAdamW(n int, weightDecay float64) *AdamW {
	return &AdamW{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: weightDecay, M: make([]float32, n), V: make([]float32, n)}
}

// Update applies one step at learning rate lr to params given grads.
func (o *AdamW) Update(params, grads []float32, lr float64) error {
	if len(params) != len(o.M) || len(grads) != len(o.M) {
		return fmt.Errorf("adamw: %d params, %d grads, optimizer sized for %d", len(params), len(grads), len(o.M))
	}
	o.Step++
	bc1 := 1 - math.Pow(o.Beta1, float64(o.Step))
	bc2 := 1 - math.Pow(o.Beta2, float64(o.Step))
	b1, b2 := float32(o.Beta1), float32(o.Beta2)
	decay := float32(1 - lr*o.WeightDecay)
	stepSize := float32(lr / bc1)
	sqrtBC2 := float32(math.Sqrt(bc2))
	eps := float32(o.Eps)
	tensor.ParallelFor(len(params), 4096, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			g := grads[i]
			m := b1*o.M[i] + (1-b1)*g
			v := b2*o.V[i] + (1-b2)*g*g
			o.M[i], o.V[i] = m, v
			p := params[i] * decay
			params[i] = p - stepSize*m/(float32(math.Sqrt(float64(v)))/sqrtBC2+eps)
		}
	})
	return nil
}

// GradNorm is the global L2 norm of g, accumulated in float64.
func GradNorm(g []float32) float64 {
	var s float64
	for _, v := range g {
		s += float64(v) * float64(v)
	}
	return math.Sqrt(s)
}

// ClipGradNorm scales g so its global norm is at most maxNorm (as
// torch.nn.utils.clip_grad_norm_) and returns the norm before clipping.
// maxNorm <= 0 disables clipping.
func ClipGradNorm(g []float32, maxNorm float64) float64 {
	norm := GradNorm(g)
	if maxNorm > 0 && norm > maxNorm {
		c := float32(maxNorm / (norm + 1e-6))
		for i := range g {
			g[i] *= c
		}
	}
	return norm
}

// Schedule gives the learning rate at an optimizer step (0-based), as
// transformers' get_{constant,linear,cosine}_schedule_with_warmup do: a
// linear warm-up from 0 over Warmup steps, then constant, linear decay to 0,
// or half a cosine to 0 at Total.
type Schedule struct {
	Kind   string // "constant", "linear" or "cosine"
	Peak   float64
	Warmup int
	Total  int
}

// Validate checks the schedule's fields.
func (s Schedule) Validate() error {
	switch s.Kind {
	case "constant", "linear", "cosine":
	default:
		return fmt.Errorf("unknown lr schedule %q (constant, linear or cosine)", s.Kind)
	}
	if s.Peak <= 0 || s.Warmup < 0 || s.Total <= 0 {
		return fmt.Errorf("lr schedule needs a positive learning rate and step count, and warm-up >= 0")
	}
	return nil
}

// LR is the learning rate for optimizer step `step`.
func (s Schedule) LR(step int) float64 {
	if step < s.Warmup {
		return s.Peak * float64(step) / float64(max(1, s.Warmup))
	}
	if s.Kind == "constant" {
		return s.Peak
	}
	progress := float64(step-s.Warmup) / float64(max(1, s.Total-s.Warmup))
	switch s.Kind {
	case "linear":
		return s.Peak * max(0, 1-progress)
	case "cosine":
		return s.Peak * max(0, 0.5*(1+math.Cos(math.Pi*progress)))
	}
	return s.Peak
}
