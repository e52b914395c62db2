package data

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strings"
)

// Splits are seeded and deterministic: the same rows and seed give the same
// split on every machine and Go version (the shuffle uses its own
// SplitMix64 generator, not math/rand). Both sides keep the rows in file
// order.

// Split puts round(valFraction·len(rows)) rows, chosen at random with seed,
// in val and the rest in train. A positive fraction takes at least one row,
// and at least one row always stays in train.
func Split(rows []Row, valFraction float64, seed uint64) (train, val []Row, err error) {
	if math.IsNaN(valFraction) || valFraction < 0 || valFraction >= 1 {
		return nil, nil, fmt.Errorf("split: validation fraction %v: want 0 <= f < 1", valFraction)
	}
	n := len(rows)
	k := int(math.Round(valFraction * float64(n)))
	if valFraction > 0 {
		k = max(k, 1)
	}
	k = min(k, n-1)
	if k <= 0 {
		return slices.Clone(rows), nil, nil
	}
	r := newSplitmix(seed)
	inVal := make([]bool, n)
	for _, i := range r.perm(n)[:k] {
		inVal[i] = true
	}
	train, val = partition(rows, inVal)
	return train, val, nil
}

// PerClass says how many rows of each class BalancedSplit puts in
// validation: Count rows, or the fraction Fraction of the class's rows
// (rounded, at least one). Set exactly one.
type PerClass struct {
	Count    int
	Fraction float64
}

// String reads per as a user gave it: "count 3", "fraction 0.2".
func (per PerClass) String() string {
	switch {
	case per.Count != 0 && per.Fraction != 0:
		return fmt.Sprintf("both count %d and fraction %g", per.Count, per.Fraction)
	case per.Fraction != 0:
		return fmt.Sprintf("fraction %g", per.Fraction)
	case per.Count != 0:
		return fmt.Sprintf("count %d", per.Count)
	}
	return "neither a count nor a fraction"
}

// valid says per sets exactly one of a count >= 1 and a fraction in
// (0, 1) — (0, 1] when whole is true. NaN is no fraction.
func (per PerClass) valid(whole bool) bool {
	if per.Count != 0 {
		return per.Count >= 1 && per.Fraction == 0
	}
	return per.Fraction > 0 && (per.Fraction < 1 || whole && per.Fraction == 1)
}

// ClassShortfall is a class with too few rows for the validation rows
// asked of it.
type ClassShortfall struct {
	Label string
	Rows  int // rows of the class
	Want  int // validation rows asked for
	Got   int // validation rows taken
}

func (s ClassShortfall) String() string {
	return fmt.Sprintf("label %q: %d rows, %d wanted for validation, %d taken", s.Label, s.Rows, s.Want, s.Got)
}

// BalancedSplit takes validation rows per class of a classification
// dataset's rows: up to per.Count (or per.Fraction of the class) chosen at
// random with seed, the rest to train. Every class keeps at least one
// training row, so a class with too few rows gives fewer validation rows;
// such classes are returned in short, sorted by label. Classes are drawn in
// label order, so the split depends only on the rows and the seed.
func BalancedSplit(rows []Row, per PerClass, seed uint64) (train, val []Row, short []ClassShortfall, err error) {
	if !per.valid(false) {
		return nil, nil, nil, fmt.Errorf("balanced split: want a count >= 1 or a fraction in (0, 1) of each class's rows, got %v", per)
	}
	inVal, short, err := perClass(rows, per, seed, 1)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("balanced split: %w", err)
	}
	train, val = partition(rows, inVal)
	return train, val, short, nil
}

// BalancedSample takes up to per.Count rows of each class (or per.Fraction
// of the class, rounded, at least one; a fraction of 1 takes every row),
// chosen at random with seed, in file order: an evaluation set with every
// class and none dominating. Classes with fewer rows than asked give all
// they have and are returned in short, sorted by label.
func BalancedSample(rows []Row, per PerClass, seed uint64) (sample []Row, short []ClassShortfall, err error) {
	if !per.valid(true) {
		return nil, nil, fmt.Errorf("balanced sample: want a count >= 1 or a fraction in (0, 1] of each class's rows, got %v", per)
	}
	in, short, err := perClass(rows, per, seed, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("balanced sample: %w", err)
	}
	_, sample = partition(rows, in)
	return sample, short, nil
}

// perClass marks up to per's rows of each class, leaving keep rows of each
// unmarked; classes that could not give what was asked are returned.
func perClass(rows []Row, per PerClass, seed uint64, keep int) (marked []bool, short []ClassShortfall, err error) {
	switch {
	case per.Count != 0 && per.Fraction != 0:
		return nil, nil, errors.New("set a per-class count or a fraction, not both")
	case per.Count == 0 && per.Fraction == 0:
		return nil, nil, errors.New("set a per-class count or a fraction")
	case !per.valid(true):
		return nil, nil, fmt.Errorf("want a count >= 1 or a fraction in (0, 1], got %v", per)
	}
	byLabel := map[string][]int{}
	for i, r := range rows {
		byLabel[r.Label] = append(byLabel[r.Label], i)
	}
	labels := make([]string, 0, len(byLabel))
	for l := range byLabel {
		labels = append(labels, l)
	}
	slices.Sort(labels)
	rng := newSplitmix(seed)
	inVal := make([]bool, len(rows))
	for _, l := range labels {
		idx := byLabel[l]
		want := per.Count
		if per.Fraction > 0 {
			want = max(1, int(math.Round(per.Fraction*float64(len(idx)))))
		}
		got := max(0, min(want, len(idx)-keep))
		for _, j := range rng.perm(len(idx))[:got] {
			inVal[idx[j]] = true
		}
		if got < want {
			short = append(short, ClassShortfall{Label: l, Rows: len(idx), Want: want, Got: got})
		}
	}
	return inVal, short, nil
}

// Leaked counts the rows of val whose input — the text or features, the
// prompt, the document — some row of train has too: a split of a file with
// duplicates puts copies on both sides, and validation on them measures
// memory, not generalisation.
func Leaked(train, val []Row) int {
	seen := map[string]bool{}
	for _, r := range train {
		seen[inputKey(r)] = true
	}
	n := 0
	for _, r := range val {
		if seen[inputKey(r)] {
			n++
		}
	}
	return n
}

// inputKey is what a row gives the model, whitespace-trimmed.
func inputKey(r Row) string {
	var b strings.Builder
	b.WriteString(strings.TrimSpace(r.Text))
	keys := make([]string, 0, len(r.Features))
	for k := range r.Features {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "\x00%s=%s", k, strings.TrimSpace(r.Features[k]))
	}
	fmt.Fprintf(&b, "\x00%s\x00%s", strings.TrimSpace(r.Prompt), strings.TrimSpace(r.Document))
	for _, m := range append(slices.Clone(r.PromptMessages), r.Messages...) {
		if m.Role != "assistant" { // the answers are the targets, not the input
			fmt.Fprintf(&b, "\x00%s:%s", m.Role, strings.TrimSpace(m.Content))
		}
	}
	return b.String()
}

func partition(rows []Row, inVal []bool) (train, val []Row) {
	for i, r := range rows {
		if inVal[i] {
			val = append(val, r)
		} else {
			train = append(train, r)
		}
	}
	return train, val
}

// LoadWithValidation loads a training file and an explicit validation
// file with the same options; the validation file must have the training
// file's format, and for classification the same features and only labels
// the training file has (a label the classifier never saw cannot be
// predicted).
func LoadWithValidation(trainPath, valPath string, opt Options) (train, val *Dataset, err error) {
	train, err = Load(trainPath, opt)
	if err != nil {
		return nil, nil, err
	}
	vopt := opt
	vopt.Format = train.Format
	val, err = Load(valPath, vopt)
	if err != nil {
		return nil, nil, err
	}
	if train.Format != FormatClassification {
		return train, val, nil
	}
	if train.textRows != val.textRows || !sameSet(train.features, val.features) {
		return nil, nil, fmt.Errorf("validation file %s has the features [%s] but training file %s has [%s]",
			valPath, strings.Join(val.features, ", "), trainPath, strings.Join(train.features, ", "))
	}
	val.features, val.FeatureOrder = train.features, train.FeatureOrder // prompts list features in one order
	known := train.Labels()
	var unseen []string
	for _, l := range val.Labels() {
		if _, ok := slices.BinarySearch(known, l); !ok {
			unseen = append(unseen, fmt.Sprintf("%q", l))
		}
	}
	if len(unseen) > 0 {
		return nil, nil, fmt.Errorf("validation file %s has labels the training file %s lacks: %s", valPath, trainPath, strings.Join(unseen, ", "))
	}
	return train, val, nil
}

func sameSet(a, b []string) bool {
	return len(a) == len(b) && !slices.ContainsFunc(a, func(s string) bool { return !slices.Contains(b, s) })
}

// splitmix is SplitMix64 (Steele, Lea and Flood 2014), a small generator
// whose output is fixed by its definition.
type splitmix struct{ s uint64 }

func newSplitmix(seed uint64) *splitmix { return &splitmix{seed} }

func (r *splitmix) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	z := r.s
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// intn returns a number in [0, n) (multiply-shift; the bias is below 2^-40
// for any n a dataset has).
func (r *splitmix) intn(n int) int {
	hi, _ := bits.Mul64(r.next(), uint64(n))
	return int(hi)
}

// perm is a Fisher–Yates shuffle of 0..n-1.
func (r *splitmix) perm(n int) []int {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	for i := n - 1; i > 0; i-- {
		j := r.intn(i + 1)
		p[i], p[j] = p[j], p[i]
	}
	return p
}
