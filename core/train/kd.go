package train

import (
	"fmt"
	"math"

	"distill/core/model"
	"distill/core/tensor"
)

// KD configures logit distillation: loss = α·CE + (1−α)·τ²·D(teacher ‖
// student) on every counted position, with both distributions softened by
// temperature τ. D is forward KL (Hinton), reverse KL, or the generalised
// Jensen–Shannon divergence JSD(β) of GKD.
type KD struct {
	Teacher     *model.Model
	Backend     tensor.Backend
	Divergence  string  // "forward_kl", "reverse_kl" or "jsd"
	Temperature float64 // τ > 0
	Alpha       float64 // weight of the cross-entropy term, in [0, 1]
	Beta        float64 // JSD's mixing weight, in (0, 1)

	// The CPU step's scratch, kept from step to step: fresh each step, the
	// teacher's logits, gradients (a loss chunk's rows × V, in float64), hidden
	// states and KV cache piled up between collections, past the memory
	// plan.
	tLogits, tHidden, hidden []float32
	grads                    []float64
	cache                    *model.Cache
	cacheFor                 *model.Model // the teacher cache was made for
}

// grown is buf with room for n values: buf itself when it has it.
func grown[T any](buf []T, n int) []T {
	if cap(buf) >= n {
		return buf[:n]
	}
	return make([]T, n)
}

// Validate checks the configuration and that teacher and student share a
// vocabulary: logit distillation compares distributions token by token.
func (k *KD) Validate(student *model.Model) error {
	switch k.Divergence {
	case "forward_kl", "reverse_kl":
	case "jsd":
		if k.Beta <= 0 || k.Beta >= 1 {
			return fmt.Errorf("kd: jsd needs 0 < beta < 1, got %g", k.Beta)
		}
	default:
		return fmt.Errorf("kd: unknown divergence %q (forward_kl, reverse_kl or jsd)", k.Divergence)
	}
	if k.Temperature <= 0 {
		return fmt.Errorf("kd: temperature must be positive, got %g", k.Temperature)
	}
	if k.Alpha < 0 || k.Alpha > 1 {
		return fmt.Errorf("kd: alpha must be in [0, 1], got %g", k.Alpha)
	}
	if k.Teacher.Config.VocabSize != student.Config.VocabSize {
		return fmt.Errorf("kd: the teacher's vocabulary (%d) differs from the student's (%d): logit distillation needs a shared tokenizer — distil from teacher traces instead (distill kd traces)", k.Teacher.Config.VocabSize, student.Config.VocabSize)
	}
	return nil
}

// StepKD runs forward and backward on b with the distillation objective and
// returns the summed loss over counted tokens (gradients of Σ / denom). The
// teacher runs once over each segment; its logits are formed a loss chunk
// at a time beside the student's, never for the whole batch at once.
func (nt *Net) StepKD(b *Batch, denom int, kd *KD) (float64, error) {
	if r := nt.accelKD(kd); r != nil {
		if err := b.Validate(nt.M.Config.VocabSize); err != nil {
			return 0, err
		}
		return nt.accelStepKD(r, b, denom, kd)
	}
	th, err := teacherHidden(kd, b)
	if err != nil {
		return 0, err
	}
	V, Dt := nt.M.Config.VocabSize, kd.Teacher.Config.HiddenSize
	rows := lossRowsFor(b.Len(), V) // the workspace's chunk
	kd.tLogits, kd.tHidden = grown(kd.tLogits, rows*V), grown(kd.tHidden, rows*Dt)
	kd.grads = grown(kd.grads, rows*V) // per-row d div/dz scratch
	tLogits, tHidden, grads := kd.tLogits, kd.tHidden, kd.grads
	scale := 1 / float32(denom)
	err = nt.run(b, func(ws *workspace) float64 {
		return nt.head(ws, b.Targets, true, func(rows []int, logits []float32, losses []float64) {
			for i, r := range rows {
				copy(tHidden[i*Dt:(i+1)*Dt], th[r*Dt:(r+1)*Dt])
			}
			kd.Teacher.Logits(kd.Backend, tLogits, tHidden, len(rows))
			tensor.ParallelFor(len(rows), 1, func(lo, hi int) {
				for i := lo; i < hi; i++ {
					losses[i] = kd.row(logits[i*V:(i+1)*V], tLogits[i*V:(i+1)*V], b.Targets[rows[i]], scale, grads[i*V:(i+1)*V])
				}
			})
		})
	})
	return nt.lastLoss, err
}

// teacherHidden runs the teacher over each segment of b (its own KV cache,
// positions from 0) and returns its final hidden states (n, D_teacher).
func teacherHidden(kd *KD, b *Batch) ([]float32, error) {
	D := kd.Teacher.Config.HiddenSize
	kd.hidden = grown(kd.hidden, b.Len()*D)
	out := kd.hidden
	if longest := maxSegment(b.SegStart); kd.cache == nil || kd.cache.Cap < longest || kd.cacheFor != kd.Teacher {
		kd.cache = nil // the old one goes before the larger one is made
		kd.cache, kd.cacheFor = kd.Teacher.NewCache(longest), kd.Teacher
	}
	for s := 0; s < b.Len(); {
		e := s + 1
		for e < b.Len() && b.SegStart[e] == s {
			e++
		}
		c := kd.cache
		c.Truncate(0) // one cache, each segment from position 0
		if _, err := kd.Teacher.Forward(kd.Backend, b.IDs[s:e], c, out[s*D:e*D]); err != nil {
			return nil, fmt.Errorf("kd teacher: %w", err)
		}
		s = e
	}
	return out, nil
}

// row computes one position's loss from the student logits z and teacher
// logits t (both (V)) and overwrites z with scale·dloss/dz; grad is (V)
// scratch.
func (kd *KD) row(z, t []float32, target int, scale float32, grad []float64) float64 {
	V := len(z)
	tau := kd.Temperature
	// Hard-label cross-entropy at τ = 1.
	zt := float64(z[target])
	lse1 := logSumExp64(z, 1)
	ce := lse1 - zt
	// Softened distributions, in float64 for the divergences' logs.
	lseS := logSumExp64(z, tau)
	lseT := logSumExp64(t, tau)
	var div float64 // and grad: d div / d z, before τ² and α
	switch kd.Divergence {
	case "forward_kl": // Σ p_t (log p_t − log p_s); d/dz = (p_s − p_t)/τ
		for i := 0; i < V; i++ {
			ls, lt := float64(z[i])/tau-lseS, float64(t[i])/tau-lseT
			pt, ps := math.Exp(lt), math.Exp(ls)
			div += pt * (lt - ls)
			grad[i] = (ps - pt) / tau
		}
	case "reverse_kl": // Σ p_s (log p_s − log p_t); d/dz_i = p_s,i (g_i − Σ p_s g)/τ, g = log p_s − log p_t
		for i := 0; i < V; i++ {
			ls, lt := float64(z[i])/tau-lseS, float64(t[i])/tau-lseT
			ps := math.Exp(ls)
			div += ps * (ls - lt)
			grad[i] = ps * (ls - lt)
		}
		for i := 0; i < V; i++ {
			ps := math.Exp(float64(z[i])/tau - lseS)
			grad[i] = (grad[i] - ps*div) / tau
		}
	case "jsd": // β KL(p_t‖m) + (1−β) KL(p_s‖m), m = β p_t + (1−β) p_s; ∂/∂p_s,i = (1−β) log(p_s,i/m_i)
		b := kd.Beta
		lb, l1b := math.Log(b), math.Log1p(-b)
		var mean float64
		for i := 0; i < V; i++ {
			ls, lt := float64(z[i])/tau-lseS, float64(t[i])/tau-lseT
			ps, pt := math.Exp(ls), math.Exp(lt)
			// log m in log space: β·p_t + (1−β)·p_s of a subnormal p_s can round
			// to 0, and then p_s·(log p_s − log 0) is +Inf.
			lm := logAddExp(lb+lt, l1b+ls)
			if pt > 0 {
				div += b * pt * (lt - lm)
			}
			if ps > 0 {
				div += (1 - b) * ps * (ls - lm)
			}
			g := 0.0
			if ps > 0 {
				g = (1 - b) * (ls - lm)
			}
			grad[i] = g
			mean += ps * g
		}
		for i := 0; i < V; i++ {
			ps := math.Exp(float64(z[i])/tau - lseS)
			grad[i] = ps * (grad[i] - mean) / tau
		}
	}
	a := kd.Alpha
	w := (1 - a) * tau * tau
	for i := 0; i < V; i++ {
		p1 := math.Exp(float64(z[i]) - lse1)
		g := a*p1 + w*grad[i]
		if i == target {
			g -= a
		}
		z[i] = scale * float32(g)
	}
	return a*ce + w*div
}

// logSumExp64 is log Σ exp(x/τ) in float64.
func logSumExp64(x []float32, tau float64) float64 {
	m := math.Inf(-1)
	for _, v := range x {
		m = max(m, float64(v)/tau)
	}
	var s float64
	for _, v := range x {
		s += math.Exp(float64(v)/tau - m)
	}
	return m + math.Log(s)
}

// logAddExp is log(eˣ + eʸ) without overflow or underflow to −Inf while
// either term is representable in the log domain.
func logAddExp(x, y float64) float64 {
	hi, lo := max(x, y), min(x, y)
	if math.IsInf(hi, -1) {
		return hi
	}
	return hi + math.Log1p(math.Exp(lo-hi))
}
