//go:build cuda

package devnet

import (
	"fmt"
	"sync"
)

// notes are messages for a run's user (train.Noter): a faster path this
// net left for the rest of the run, and why. A run reads them after each
// step.
type notes struct {
	mu   sync.Mutex
	msgs []string
}

func (n *notes) add(msg string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.msgs = append(n.msgs, msg)
}

func (n *notes) take() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	m := n.msgs
	n.msgs = nil
	return m
}

// stepGraphStats is how the step graphs fared on a net over a run.
type stepGraphStats struct {
	steps      int   // micro-batches stepped with the gate open (Step, StepKD)
	replays    int   // of them, replayed from recordings
	untaken    int   // of them, eager because the recorded layout cannot take them (stepKeyOf)
	full       int   // of them, eager because the device had no room for their workspace (Net.sgFull)
	recordings int   // graphs recorded
	arena      int64 // the largest arena, bytes
	failed     error // why the net went back to eager steps
}

// TakeNotes is train.Noter: the notes since the last call.
func (nt *Net) TakeNotes() []string { return nt.notes.take() }

// Summary is train.Noter: with step graphs on, how many micro-batches
// replayed a recording (each optimizer step has accum of them), how many
// were recorded, and the largest arena held between steps.
func (nt *Net) Summary() []string {
	s := nt.sgStats
	if s.steps == 0 {
		return nil
	}
	line := fmt.Sprintf("CUDA step graphs: %d of %d micro-batches replayed, %d recordings, arena %.1f MB held between steps",
		s.replays, s.steps, s.recordings, float64(s.arena)/1e6)
	if s.untaken > 0 {
		line += fmt.Sprintf("; %d eager because the recorded layout cannot take them (attention not by the flash kernels, a position past the bucket, dropout rates that differ between modules)", s.untaken)
	}
	if s.full > 0 {
		line += fmt.Sprintf("; %d eager because the device had no room for the recorded step's workspace", s.full)
	}
	if s.failed != nil {
		line += fmt.Sprintf("; off after a failure: %v", s.failed)
	}
	return []string{line}
}
