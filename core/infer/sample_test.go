package infer

import (
	"errors"
	"math"
	"testing"
)

func TestGreedyPicksArgmax(t *testing.T) {
	s := NewSampler(Sampling{})
	if got, err := s.Next([]float32{0.1, 3, -2, 2.9}, nil); got != 1 || err != nil {
		t.Fatalf("greedy chose %d (%v), want 1", got, err)
	}
}

// NaN or +Inf logits (a checkpoint with NaN weights), or none but −Inf, are
// an error, greedy or sampled — sampling used to panic on an empty
// candidate list; −Inf alone marks a token ruled out.
func TestNonFiniteLogitsAreAnError(t *testing.T) {
	inf := float32(math.Inf(1))
	nan := float32(math.NaN())
	for _, temp := range []float64{0, 0.7} {
		s := NewSampler(Sampling{Temperature: temp, TopP: 0.9, MinP: 0.05})
		for _, l := range [][]float32{{nan, nan, nan}, {1, nan, 2}, {1, inf, 0}, {-inf, -inf}} {
			if _, err := s.Next(l, nil); !errors.Is(err, ErrNonFinite) {
				t.Errorf("temperature %v, logits %v: %v, want ErrNonFinite", temp, l, err)
			}
		}
		if id, err := s.Next([]float32{-inf, 3, -inf}, nil); id != 1 || err != nil {
			t.Errorf("temperature %v: a ruled-out token around the only one: %d, %v", temp, id, err)
		}
	}
}

// counts samples n tokens from logits and returns the frequency of each id.
func counts(opt Sampling, logits []float32, n int) []int {
	s := NewSampler(opt)
	c := make([]int, len(logits))
	buf := make([]float32, len(logits))
	for i := 0; i < n; i++ {
		copy(buf, logits)
		id, err := s.Next(buf, nil)
		if err != nil {
			panic(err)
		}
		c[id]++
	}
	return c
}

func TestFiltersRestrictTheSupport(t *testing.T) {
	// p ∝ exp(logits) = 0.4, 0.3, 0.2, 0.1 (approximately, at T = 1).
	logits := []float32{float32(math.Log(0.4)), float32(math.Log(0.3)), float32(math.Log(0.2)), float32(math.Log(0.1))}
	for _, tc := range []struct {
		name    string
		opt     Sampling
		allowed int // ids >= allowed must never appear
	}{
		{"top-k 2", Sampling{Temperature: 1, TopK: 2}, 2},
		{"top-p 0.65", Sampling{Temperature: 1, TopP: 0.65}, 2}, // 0.4+0.3 ≥ 0.65
		{"top-p 0.75", Sampling{Temperature: 1, TopP: 0.75}, 3}, // needs the third
		{"min-p 0.6", Sampling{Temperature: 1, MinP: 0.6}, 2},   // floor 0.24
		{"min-p 0.3", Sampling{Temperature: 1, MinP: 0.3}, 3},   // floor 0.12
		{"none", Sampling{Temperature: 1}, 4},
	} {
		c := counts(tc.opt, logits, 4000)
		for id := range c {
			if id >= tc.allowed && c[id] > 0 {
				t.Errorf("%s: sampled filtered id %d (%d times)", tc.name, id, c[id])
			}
			if id < tc.allowed && c[id] == 0 {
				t.Errorf("%s: never sampled allowed id %d", tc.name, id)
			}
		}
	}
	// Unfiltered frequencies follow the distribution (4000 draws: ±0.03).
	c := counts(Sampling{Temperature: 1, Seed: 7}, logits, 4000)
	for id, p := range []float64{0.4, 0.3, 0.2, 0.1} {
		if f := float64(c[id]) / 4000; math.Abs(f-p) > 0.03 {
			t.Errorf("id %d sampled with frequency %.3f, want %.1f", id, f, p)
		}
	}
}

func TestSeedReproduces(t *testing.T) {
	logits := []float32{1, 1.1, 0.9, 1.05, 0.5}
	a := counts(Sampling{Temperature: 1, Seed: 3}, logits, 50)
	b := counts(Sampling{Temperature: 1, Seed: 3}, logits, 50)
	c := counts(Sampling{Temperature: 1, Seed: 4}, logits, 50)
	same := func(x, y []int) bool {
		for i := range x {
			if x[i] != y[i] {
				return false
			}
		}
		return true
	}
	if !same(a, b) {
		t.Error("the same seed gave different samples")
	}
	if same(a, c) {
		t.Error("different seeds gave identical sample counts")
	}
}

func TestRepetitionPenalty(t *testing.T) {
	logits := []float32{2, -1, 1.9}
	applyRepetitionPenalty(logits, []int{0, 0, 1}, 2)
	if logits[0] != 1 || logits[1] != -2 || logits[2] != 1.9 {
		t.Fatalf("penalised logits %v, want [1 -2 1.9]", logits)
	}
	if got, _ := NewSampler(Sampling{RepetitionPenalty: 2}).Next([]float32{2, -1, 1.9}, []int{0}); got != 2 {
		t.Fatalf("greedy with penalty chose %d, want 2", got)
	}
}

// TestExtremeTemperatures: a temperature so small that 1/T overflows
// samples only the top token (the limit), and a NaN one (or NaN filters)
// never empties the candidates — the sampler used to panic on both.
func TestExtremeTemperatures(t *testing.T) {
	logits := func() []float32 { return []float32{0.5, 2, -1, 2, 1.5} }
	for _, opt := range []Sampling{
		{Temperature: 1e-320}, {Temperature: math.SmallestNonzeroFloat64}, {Temperature: math.NaN()},
		{Temperature: 1, TopP: math.NaN(), MinP: math.NaN(), RepetitionPenalty: math.NaN()},
		{Temperature: 1e-320, TopK: 1}, {Temperature: 1e-320, MinP: 1},
	} {
		s := NewSampler(opt)
		for range 20 {
			id, err := s.Next(logits(), nil)
			if err != nil {
				t.Fatalf("%+v: %v", opt, err)
			}
			if opt.TopP != opt.TopP {
				continue // a real sample at temperature 1
			}
			if id != 1 && id != 3 {
				t.Fatalf("%+v: token %d, want a top one (1 or 3)", opt, id)
			}
		}
	}
}
