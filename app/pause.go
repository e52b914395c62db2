package app

import (
	"context"
	"sync"
	"time"
)

// pauser holds a run between optimizer steps while it is paused (the
// workstation's p): nothing is saved or freed, and the run goes on from
// the same step when resumed. Time spent paused is left out of the run's
// elapsed time.
type pauser struct {
	mu     sync.Mutex
	paused bool
	resume chan struct{} // closed when the run resumes
	since  time.Time     // when the pause began
	total  time.Duration // earlier pauses
}

// toggle pauses a running run or resumes a paused one, and says which.
func (p *pauser) toggle() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.paused {
		p.total += time.Since(p.since)
		close(p.resume)
	} else {
		p.resume, p.since = make(chan struct{}), time.Now()
	}
	p.paused = !p.paused
	return p.paused
}

// goOn lets a paused run go on (nothing when it is not paused).
func (p *pauser) goOn() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.paused {
		p.total += time.Since(p.since)
		close(p.resume)
		p.paused = false
	}
}

// wait blocks while the run is paused, until it resumes or ctx ends (a
// stop: the run checkpoints as usual).
func (p *pauser) wait(ctx context.Context) {
	p.mu.Lock()
	paused, resume := p.paused, p.resume
	p.mu.Unlock()
	if !paused {
		return
	}
	select {
	case <-resume:
	case <-ctx.Done():
	}
}

// pausedFor is the time spent paused so far.
func (p *pauser) pausedFor() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	d := p.total
	if p.paused {
		d += time.Since(p.since)
	}
	return d
}
