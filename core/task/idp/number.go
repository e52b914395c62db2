package idp

import (
	"fmt"
	"math/big"
)

// Numbers are generated as plain decimals, -?(0|[1-9][0-9]*)(\.[0-9]+)?,
// never with an exponent: integers with at most intDigitsInteger digits,
// numbers with at most intDigitsNumber integer and fracDigits fraction
// digits. Bounds (minimum, maximum, exclusive*) are enforced exactly: a
// value is tracked as an integer count of units (10^-fracDigits), and each
// digit is allowed only while some completion still lies within the bounds.
const (
	intDigitsInteger = 15 // exactly representable as a float64 (and in JavaScript)
	intDigitsNumber  = 12
	fracDigits       = 6
)

const (
	numStart = 0 // nothing yet
	numMinus = 1 // after '-'
	numZero  = 2 // "0": only '.' may follow
	numInt   = 3 // integer digits, the first non-zero
	numDot   = 4 // after '.'
	numFrac  = 5 // fraction digits
	numNeg   = 8 // flag: the value is negative
)

var pow10 [19]int64

func init() {
	pow10[0] = 1
	for i := 1; i < len(pow10); i++ {
		pow10[i] = pow10[i-1] * 10
	}
}

type numSpec struct {
	integer   bool
	ni, nf    int32 // most integer / fraction digits
	unit      int64 // 10^nf
	lo, hi    int64 // inclusive bounds, in units
	startCost int32 // tokens of the shortest value
}

// newNumSpec builds a number spec from bounds given as decimal strings
// (empty: none). Exclusive bounds exclude their value.
func newNumSpec(integer bool, minS, maxS string, exclMin, exclMax bool) (*numSpec, error) {
	s := &numSpec{integer: integer, ni: intDigitsNumber, nf: fracDigits}
	if integer {
		s.ni, s.nf = intDigitsInteger, 0
	}
	s.unit = pow10[s.nf]
	maxMag := pow10[s.ni+s.nf] - 1
	s.lo, s.hi = -maxMag, maxMag
	u := new(big.Rat).SetInt64(s.unit)
	clamp := func(x *big.Int) int64 {
		if x.Cmp(big.NewInt(maxMag)) > 0 {
			return maxMag + 1
		}
		if x.Cmp(big.NewInt(-maxMag)) < 0 {
			return -maxMag - 1
		}
		return x.Int64()
	}
	if minS != "" {
		r, ok := new(big.Rat).SetString(minS)
		if !ok {
			return nil, fmt.Errorf("minimum %q is not a number", minS)
		}
		r.Mul(r, u)
		q := ceilRat(r)
		if exclMin && r.IsInt() {
			q.Add(q, big.NewInt(1))
		}
		s.lo = max(s.lo, clamp(q))
	}
	if maxS != "" {
		r, ok := new(big.Rat).SetString(maxS)
		if !ok {
			return nil, fmt.Errorf("maximum %q is not a number", maxS)
		}
		r.Mul(r, u)
		q := floorRat(r)
		if exclMax && r.IsInt() {
			q.Sub(q, big.NewInt(1))
		}
		s.hi = min(s.hi, clamp(q))
	}
	if s.lo > s.hi {
		what := "number"
		if integer {
			what = "integer"
		}
		return nil, fmt.Errorf("no %s of at most %d integer and %d fraction digits lies within the bounds", what, s.ni, s.nf)
	}
	best := int32(inf)
	for _, b := range []byte("-0123456789") {
		f := frame{}
		if s.step(&f, b) {
			best = min(best, addCost(1, int64(s.cost(&f))))
		}
	}
	s.startCost = best
	return s, nil
}

func floorRat(r *big.Rat) *big.Int {
	q, _ := new(big.Int).DivMod(r.Num(), r.Denom(), new(big.Int))
	return q // DivMod is Euclidean: floor for a positive denominator
}

func ceilRat(r *big.Rat) *big.Int {
	q := floorRat(r)
	if !r.IsInt() {
		q.Add(q, big.NewInt(1))
	}
	return q
}

// magBounds are the bounds on the magnitude for the given sign; ok is false
// when no value of that sign is allowed. Negative values have a non-zero
// magnitude: "-0" is never generated.
func (s *numSpec) magBounds(neg bool) (lo, hi int64, ok bool) {
	if neg {
		return max(-s.hi, 1), -s.lo, s.lo <= -1
	}
	return max(s.lo, 0), s.hi, s.hi >= 0
}

// gridIn reports whether a multiple of step lies in [a,b] ∩ [lo,hi] (all >= 0).
func gridIn(a, b, step, lo, hi int64) bool {
	x, y := max(a, lo), min(b, hi)
	if x > y {
		return false
	}
	c := (x + step - 1) / step * step
	return c <= y
}

// feasible reports whether some completion of f lies within the bounds.
func (s *numSpec) feasible(f *frame) bool {
	lo, hi, ok := s.magBounds(f.st&numNeg != 0)
	if !ok {
		return false
	}
	v := f.v
	switch f.st &^ numNeg {
	case numStart, numMinus:
		return lo <= hi
	case numZero:
		return gridIn(0, s.unit-1, 1, lo, hi)
	case numInt:
		for j := int32(0); j <= s.ni-f.n; j++ {
			a := v * pow10[j] * s.unit
			if gridIn(a, a+pow10[j]*s.unit-1, 1, lo, hi) {
				return true
			}
		}
		return false
	case numDot:
		return gridIn(v*s.unit, v*s.unit+s.unit-1, 1, lo, hi)
	case numFrac:
		sc := pow10[s.nf-f.m]
		return gridIn(v*sc, v*sc+sc-1, 1, lo, hi)
	}
	return false
}

// accepting reports whether f is a complete value within the bounds.
func (s *numSpec) accepting(f *frame) bool {
	var mag int64
	switch f.st &^ numNeg {
	case numZero:
		mag = 0
	case numInt:
		mag = f.v * s.unit
	case numFrac:
		mag = f.v * pow10[s.nf-f.m]
	default:
		return false
	}
	lo, hi, ok := s.magBounds(f.st&numNeg != 0)
	return ok && lo <= mag && mag <= hi
}

// step feeds b to the number in f; it changes f only when b is allowed.
func (s *numSpec) step(f *frame, b byte) bool {
	g := *f
	neg := g.st & numNeg
	isDigit := b >= '0' && b <= '9'
	d := int64(b - '0')
	switch g.st &^ numNeg {
	case numStart, numMinus:
		switch {
		case b == '-' && g.st == numStart && s.lo < 0:
			g.st = numMinus | numNeg
		case b == '0':
			g.st, g.v, g.n = numZero|neg, 0, 1
		case isDigit:
			g.st, g.v, g.n = numInt|neg, d, 1
		default:
			return false
		}
	case numZero, numInt:
		switch {
		case b == '.' && !s.integer:
			g.st = numDot | neg
		case isDigit && g.st&^numNeg == numInt && g.n < s.ni:
			g.v, g.n = g.v*10+d, g.n+1
		default:
			return false
		}
	case numDot:
		if !isDigit {
			return false
		}
		g.st, g.v, g.m = numFrac|neg, g.v*10+d, 1
	case numFrac:
		if !isDigit || g.m >= s.nf {
			return false
		}
		g.v, g.m = g.v*10+d, g.m+1
	default:
		return false
	}
	if !s.feasible(&g) {
		return false
	}
	*f = g
	return true
}

// cost is the number of bytes (one-byte tokens) that finish f within the
// bounds: 0 when it is already a complete value.
func (s *numSpec) cost(f *frame) int32 {
	if s.accepting(f) {
		return 0
	}
	switch f.st &^ numNeg {
	case numStart:
		return s.startCost
	case numMinus:
		best := int32(inf)
		for b := byte('0'); b <= '9'; b++ {
			g := *f
			if s.step(&g, b) {
				best = min(best, addCost(1, int64(s.cost(&g))))
			}
		}
		return best
	}
	lo, hi, ok := s.magBounds(f.st&numNeg != 0)
	if !ok {
		return inf
	}
	best := int32(inf)
	// frac returns the fewest fraction digits (beyond have) that put a
	// value in [a,b] within the bounds.
	frac := func(a, b int64, have int32) int32 {
		for d := have + 1; d <= s.nf; d++ {
			if gridIn(a, b, pow10[s.nf-d], lo, hi) {
				return d - have
			}
		}
		return inf
	}
	v := f.v
	switch f.st &^ numNeg {
	case numZero:
		if x := frac(0, s.unit-1, 0); x < inf {
			best = 1 + x
		}
	case numInt:
		for j := int32(0); j <= s.ni-f.n && j < best; j++ {
			a := v * pow10[j] * s.unit
			b := a + pow10[j]*s.unit - 1
			if gridIn(a, b, s.unit, lo, hi) {
				best = min(best, j)
				break
			}
			if x := frac(a, b, 0); x < inf {
				best = min(best, j+1+x)
			}
		}
	case numDot:
		best = frac(v*s.unit, v*s.unit+s.unit-1, 0)
	case numFrac:
		sc := pow10[s.nf-f.m]
		best = frac(v*sc, v*sc+sc-1, f.m)
	}
	return best
}
