package train

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"distill/core/model"
)

// Event is what training reports after each optimizer step. Every front end
// (CLI progress, TUI, the run store) consumes the same stream.
type Event struct {
	Step, TotalSteps int
	Loss             float64 // mean token loss over the step's micro-batches
	LR               float64
	GradNorm         float64 // before clipping
	Tokens           int     // tokens processed in the step
	TokensPerSec     float64
	Elapsed          time.Duration
	RSS              int64 // resident memory, bytes
	// OptimizerOnDevice: the step's clipping and AdamW ran on the
	// accelerator (AcceleratedOptimizer), its moments held there.
	OptimizerOnDevice bool
	// Extra holds the objective's own metrics (DPO: rewards, margins,
	// preference accuracy).
	Extra map[string]float64
	// Notes are what the accelerator told the run during the step, each
	// once (a faster path it turned off, and why): for the run's log.
	Notes []string
}

// Objective is what a method optimises.
type Objective interface {
	// Count is what the loss is averaged over in b: counted tokens (SFT,
	// KD) or preference pairs (DPO).
	Count(b *Batch) int
	// Step runs forward and backward on b, adding the gradients of
	// Σ loss / denom to net.Grads, and returns Σ loss.
	Step(net *Net, b *Batch, denom int) (float64, error)
}

// MetricsReporter is an Objective with metrics of its own, read (and
// reset) after each optimizer step.
type MetricsReporter interface {
	TakeMetrics() map[string]float64
}

// SFT is masked cross-entropy.
type SFT struct{}

func (SFT) Count(b *Batch) int                                  { return b.Counted() }
func (SFT) Step(net *Net, b *Batch, denom int) (float64, error) { return net.Step(b, denom) }

// Count for KD: counted tokens.
func (kd *KD) Count(b *Batch) int { return b.Counted() }

// Step for KD.
func (kd *KD) Step(net *Net, b *Batch, denom int) (float64, error) { return net.StepKD(b, denom, kd) }

// Config is one training run's loop settings.
type Config struct {
	Steps       int     // optimizer steps
	Accum       int     // micro-batches per optimizer step (gradient accumulation)
	MaxGradNorm float64 // global-norm clipping; 0 disables
	Schedule    Schedule
	WeightDecay float64
	Objective   Objective // nil: SFT
	// Gate, when set, is called before each optimizer step and may block
	// (a paused run) until it returns or ctx ends.
	Gate func(ctx context.Context)
}

// Batches gives micro-batch k of the run (k counts from 0 across epochs).
// Random access by index makes the data order a function of the position
// alone, so a resumed run sees exactly the batches it would have.
type Batches interface {
	At(k int) (*Batch, error)
}

// Train runs cfg.Steps optimizer steps of opt over net's adapter, sending an
// Event per step on events (if non-nil; sends block, so the consumer must
// drain the channel and sees every step). It stops early, without error, when ctx is cancelled, leaving
// the adapter as of the last completed step.
//
// With an accelerator that takes the optimizer (AcceleratedOptimizer) and
// every micro-batch of the objective, the parameters, gradients and moments
// stay on the device for the whole call and come back when it returns —
// cancelled, failed or done.
func Train(ctx context.Context, net *Net, opt *AdamW, cfg Config, data Batches, events chan<- Event) (err error) {
	if cfg.Accum <= 0 {
		cfg.Accum = 1
	}
	if err := cfg.Schedule.Validate(); err != nil {
		return err
	}
	obj := cfg.Objective
	if obj == nil {
		obj = SFT{}
	}
	dev := net.deviceOptimizer(obj, opt)
	if dev != nil {
		err := dev.LoadOptimizer(net.Params, opt.M, opt.V)
		if errors.Is(err, model.ErrAcceleratorFull) {
			dev = nil // no room for the moments: the optimizer stays on the host
		} else if err != nil {
			return fmt.Errorf("optimizer to the device: %w", err)
		}
	}
	if dev != nil {
		net.devOpt = true
		step0 := opt.Step
		defer func() {
			net.devOpt = false
			if serr := dev.StoreOptimizer(net.Params, opt.M, opt.V); serr != nil {
				// The host's state is not this run's: say so, and leave
				// the step count where the parameters might be.
				opt.Step = step0
				err = errors.Join(err, fmt.Errorf("optimizer back from the device (the adapter in memory is not the trained one; resume from the last checkpoint): %w", serr))
			}
		}()
	}
	start := time.Now()
	for step := opt.Step; step < cfg.Steps; step++ {
		if cfg.Gate != nil {
			cfg.Gate(ctx)
		}
		if ctx.Err() != nil {
			return nil
		}
		t0 := time.Now()
		micro := make([]*Batch, cfg.Accum)
		denom, tokens := 0, 0
		for i := range micro {
			b, err := data.At(net.microBatches + i)
			if err != nil {
				return fmt.Errorf("step %d: %w", step+1, err)
			}
			micro[i] = b
			denom += obj.Count(b)
			tokens += b.Len()
		}
		if denom == 0 {
			return fmt.Errorf("step %d: nothing in the batch carries a loss (check the loss masks)", step+1)
		}
		mb0 := net.microBatches
		lossSum, err := microSteps(net, dev, obj, micro, denom)
		// The device filled up keeping activations (another process took
		// memory since the run's fit): the step again from its first
		// micro-batch, recomputing them — slower, the run goes on.
		for errors.Is(err, model.ErrAcceleratorFull) && net.shedActivations(step+1) {
			net.microBatches = mb0 // the same dropout masks
			if m, ok := obj.(MetricsReporter); ok {
				m.TakeMetrics() // the failed attempt's
			}
			lossSum, err = microSteps(net, dev, obj, micro, denom)
		}
		if err != nil {
			return fmt.Errorf("step %d: %w", step+1, err)
		}
		loss := lossSum / float64(denom)
		if math.IsNaN(loss) || math.IsInf(loss, 0) {
			return fmt.Errorf("step %d: loss is %v: lower the learning rate or check the data", step+1, loss)
		}
		lr := cfg.Schedule.LR(step)
		var norm float64
		if dev != nil {
			norm, err = dev.OptimizerStep(cfg.MaxGradNorm, lr, opt.Step+1, opt.Beta1, opt.Beta2, opt.Eps, opt.WeightDecay)
			if err != nil {
				return fmt.Errorf("step %d: optimizer: %w", step+1, err)
			}
			opt.Step++
		} else {
			norm = ClipGradNorm(net.Grads, cfg.MaxGradNorm)
			if err := opt.Update(net.Params, net.Grads, lr); err != nil {
				return err
			}
		}
		if events != nil {
			ev := Event{Step: step + 1, TotalSteps: cfg.Steps, Loss: loss, LR: lr, GradNorm: norm, Tokens: tokens,
				TokensPerSec: float64(tokens) / time.Since(t0).Seconds(), Elapsed: time.Since(start), RSS: ResidentBytes(),
				OptimizerOnDevice: dev != nil}
			if m, ok := obj.(MetricsReporter); ok {
				ev.Extra = m.TakeMetrics()
			}
			ev.Notes = net.DeviceNotes()
			events <- ev // every completed step is reported, even when stopping
		}
	}
	return nil
}

// microSteps zeroes the gradients and runs obj over an optimizer step's
// micro-batches, accumulating theirs; it returns the summed loss.
func microSteps(net *Net, dev AcceleratedOptimizer, obj Objective, micro []*Batch, denom int) (float64, error) {
	net.ZeroGrads()
	if dev != nil {
		if err := dev.ZeroGrads(); err != nil {
			return 0, err
		}
	}
	var lossSum float64
	for _, b := range micro {
		s, err := obj.Step(net, b, denom)
		if err != nil {
			return 0, err
		}
		lossSum += s
	}
	return lossSum, nil
}
