package train

import "math/rand/v2"

// Shuffled serves micro-batches epoch after epoch, each epoch in its own
// seeded order: micro-batch k is a function of (seed, k) alone, so a resumed
// run sees the same sequence.
type Shuffled struct {
	Batches []*Batch
	Seed    uint64

	epoch int
	perm  []int
}

// At returns micro-batch k (k counts across epochs).
func (s *Shuffled) At(k int) (*Batch, error) {
	n := len(s.Batches)
	e := k / n
	if s.perm == nil || e != s.epoch {
		s.epoch = e
		s.perm = rand.New(rand.NewPCG(s.Seed, uint64(e))).Perm(n)
	}
	return s.Batches[s.perm[k%n]], nil
}
