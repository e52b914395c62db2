//go:build cuda

package devnet

import (
	"fmt"
	"sync/atomic"

	"distill/core/train"
	"distill/cuda"
)

// Scoring passes (LogProbs: DPO's references, validation) run eagerly on
// the kept arena's pass for their bucket when there is one, so the arena
// and its recordings outlive them: a pass of their own would free both,
// and the next step would allocate the arena again (gigabytes, on a card
// where the allocation may then no longer fit), run a warm-up and record
// again.

// Scoring passes run on a kept step's pass (scoreGraphed), in this process.
var keptScores atomic.Int64

// scoreGraphed is LogProbs on the kept arena's pass for b's bucket,
// eagerly: the adapter on without its dropout, or off (the base alone).
// done false when there is none (no arena, or b longer than it is laid
// out for) or the layout cannot take b: then LogProbs' own pass frees the
// arena.
func (nt *Net) scoreGraphed(b *train.Batch, adapterOff bool) (logp []float64, done bool, err error) {
	if nt.rowsHeld {
		return nil, true, errRowsHeld
	}
	if !stepGraphsReady() || nt.Profile != nil || len(nt.skip) > 0 || nt.sg == nil {
		return nil, false, nil
	}
	_, nb, fits := nt.stepKeyOf(b, nil)
	if !fits || nb > nt.sg.cap {
		return nil, false, nil
	}
	bp, ok := nt.bucketOf(nb)
	if !ok {
		return nil, false, nil
	}
	k, chunks, err := nt.sg.upload(bp, b, 1, nil)
	if err != nil {
		return nil, true, err
	}
	p := bp.p
	kx, drop := p.kx, p.drop
	func() {
		defer func() { p.adapterOff, p.kx, p.drop = false, kx, drop }() // the steps' pass, whatever the phases did
		if p.drop = nil; adapterOff {
			p.baseOnly()
		}
		bp.phase(chunks, phaseForward)
		bp.phase(chunks, phaseLogProbs)
	}()
	if err := p.failed(); err != nil {
		nt.dropStepGraph() // its pass is spent
		return nil, true, err
	}
	losses := make([]float32, k)
	if err := cuda.Read(bp.loss, 0, losses); err != nil {
		return nil, true, fmt.Errorf("%w: %d tokens: %w", errStep, nb, err)
	}
	logp = make([]float64, k)
	for i, v := range losses {
		logp[i] = -float64(v)
	}
	keptScores.Add(1)
	return logp, true, nil
}
