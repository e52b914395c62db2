//go:build cuda

package devnet

import (
	"errors"
	"fmt"
	"time"

	"distill/core/train"
	"distill/cuda"
)

// DPO's steps (StepRows) in the kept arena. A step goes to the host
// between its forward and backward — the pairs' loss needs every
// sequence's log-prob — so it is four recordings launched in two halves:
// the forward and the head (an SFT step's recording, each targeted row's
// scale 1: the log-probs and the gradients at hf unscaled); the host's row
// gradients written into the row scales; those rows of the gradient at hf
// scaled by them (phaseRowScale) and the backward. Eager StepRows runs the
// same kernels. Between the halves the net refuses other passes
// (rowsHeld): they would overwrite the held step's buffers or free them.
//
// The reference policy's log-probs (LogProbs with the adapter off, once
// per batch of a run) run eagerly on the same kept pass (scoreGraphed): a
// pass of its own would free the arena, and a DPO run's first epoch meets
// a new batch, and so its reference, every step.

// errRowsHeld refuses a pass asked for by StepRows' gradient callback,
// which would run over the held step's buffers or free them.
var errRowsHeld = errors.New("devnet: a pass of the net from inside StepRows' row-gradient callback (the step's pass is held)")

// rowsGraphed runs StepRows by recordings when it can; done false leaves
// the step to the eager pass.
func (nt *Net) rowsGraphed(b *train.Batch, drop train.DropoutMask, grad func(logp []float64) ([]float64, error)) (done bool, err error) {
	gs, err := nt.graphStep(b, 1, drop, nil) // each targeted row's scale 1: the head's gradients unscaled
	if gs == nil {
		return err != nil, err
	}
	phases := []int{phaseForward, phaseHead, phaseRowScale, phaseBackward}
	var graphs []*cuda.Graph
	if gs.replay { // all four before any launches: making one may drop the others
		if graphs = gs.recorded(phases...); graphs == nil {
			return false, nil
		}
	}
	if err := gs.run(graphs[:min(2, len(graphs))], phases[:2]...); err != nil {
		return true, err
	}
	losses, err := gs.losses()
	if err != nil {
		return true, err
	}
	logp := make([]float64, len(losses))
	for i, v := range losses {
		logp[i] = -float64(v)
	}
	g, err := nt.holdingRows(grad, logp)
	if err != nil {
		return true, err
	}
	if len(g) != len(logp) {
		return true, fmt.Errorf("devnet: %d row gradients for %d rows", len(g), len(logp))
	}
	// The padding rows' scales stay 0.
	if err := cuda.Write(gs.bp.scale, 0, negated(g)); err != nil {
		return true, fmt.Errorf("%w: %d tokens: row scales: %w", errStep, gs.bp.p.n, err)
	}
	if err := gs.run(graphs[min(2, len(graphs)):], phases[2:]...); err != nil {
		return true, err
	}
	gs.done()
	nt.LastIssue = time.Since(gs.start)
	return true, nil
}

// holdingRows calls grad with the rows held (a pass meanwhile is refused:
// it would overwrite them), released however grad returns, a panic too.
func (nt *Net) holdingRows(grad func([]float64) ([]float64, error), logp []float64) ([]float64, error) {
	nt.rowsHeld = true
	defer func() { nt.rowsHeld = false }()
	return grad(logp)
}
