package infer

import (
	"errors"
	"math"
	"math/rand/v2"
	"sort"
)

// ErrNonFinite is the sampler's refusal of logits that are NaN or +Inf (or
// all −Inf): the model's weights or its adapter hold NaN or Inf (an
// overflowed training run), and any token chosen from them would be noise.
var ErrNonFinite = errors.New("the model's next-token logits are NaN or infinite: its weights or adapter hold NaN or Inf (check the checkpoint, or the run that trained the adapter)")

// Sampling configures how the next token is chosen. The zero value is greedy.
type Sampling struct {
	Temperature       float64 // <= 0: greedy (argmax)
	TopK              int     // keep the k most likely; 0: off
	TopP              float64 // keep the smallest set with mass >= p; 0 or 1: off
	MinP              float64 // drop tokens below min_p × p(top); 0: off
	RepetitionPenalty float64 // HF's CTRL-style penalty on seen tokens; 0 or 1: off
	Seed              uint64
}

// Sampler picks tokens from logits; it owns its RNG so a seed reproduces a
// generation exactly.
type Sampler struct {
	opt   Sampling
	rng   *rand.Rand
	cands []cand
}

type cand struct {
	id int
	p  float64
}

func NewSampler(opt Sampling) *Sampler {
	return &Sampler{opt: opt, rng: rand.New(rand.NewPCG(opt.Seed, opt.Seed^0x9e3779b97f4a7c15))}
}

// Next returns the chosen token id. logits (vocab) may be modified in place;
// history is every token so far (prompt and generated), for the penalty.
// −Inf logits are tokens ruled out (constrained decoding's); a NaN or +Inf
// one, or none left, is ErrNonFinite.
func (s *Sampler) Next(logits []float32, history []int) (int, error) {
	finite := false
	for _, l := range logits {
		if l != l || l > math.MaxFloat32 {
			return 0, ErrNonFinite
		}
		finite = finite || l >= -math.MaxFloat32
	}
	if !finite {
		return 0, ErrNonFinite
	}
	if p := s.opt.RepetitionPenalty; p > 0 && p != 1 {
		applyRepetitionPenalty(logits, history, float32(p))
	}
	if !(s.opt.Temperature > 0) { // NaN too: greedy
		return argmax(logits), nil
	}
	// Softmax at temperature over all tokens, then filter: the order HF's
	// processors use (temperature, top-k, top-p, min-p). A temperature so
	// small that 1/T overflows leaves the top tokens alone (the limit).
	inv := 1 / s.opt.Temperature
	maxL := float64(logits[argmax(logits)])
	s.cands = s.cands[:0]
	var sum float64
	for id, l := range logits {
		p := 1.0 // the top logit: exp(0), never 0·Inf
		if d := float64(l) - maxL; d != 0 {
			p = math.Exp(d * inv)
		}
		if p > 0 {
			s.cands = append(s.cands, cand{id, p})
			sum += p
		}
	}
	sort.Slice(s.cands, func(i, j int) bool {
		if s.cands[i].p != s.cands[j].p {
			return s.cands[i].p > s.cands[j].p
		}
		return s.cands[i].id < s.cands[j].id
	})
	c := s.cands
	for i := range c {
		c[i].p /= sum
	}
	if k := s.opt.TopK; k > 0 && k < len(c) {
		c = c[:k]
	}
	if p := s.opt.TopP; p > 0 && p < 1 {
		var cum, total float64
		for _, x := range c {
			total += x.p
		}
		for i, x := range c {
			cum += x.p / total
			if cum >= p {
				c = c[:i+1]
				break
			}
		}
	}
	if mp := s.opt.MinP; mp > 0 {
		floor := mp * c[0].p
		n := 1
		for n < len(c) && c[n].p >= floor {
			n++
		}
		c = c[:n]
	}
	var total float64
	for _, x := range c {
		total += x.p
	}
	r := s.rng.Float64() * total
	for _, x := range c {
		r -= x.p
		if r < 0 {
			return x.id, nil
		}
	}
	return c[len(c)-1].id, nil
}

func argmax(x []float32) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}

// applyRepetitionPenalty divides positive logits of seen tokens by p and
// multiplies negative ones, once per distinct token (as HF does).
func applyRepetitionPenalty(logits []float32, history []int, p float32) {
	seen := make(map[int]bool, len(history))
	for _, id := range history {
		if seen[id] || id < 0 || id >= len(logits) {
			continue
		}
		seen[id] = true
		if logits[id] > 0 {
			logits[id] /= p
		} else {
			logits[id] *= p
		}
	}
}
