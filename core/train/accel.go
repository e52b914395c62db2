package train

import (
	"fmt"

	"distill/core/lora"
	"distill/core/model"
	"distill/core/tensor"
)

// Accelerated is an SFT step that keeps the model and its activations on an
// accelerator (cuda/devnet on a GPU): the same forward and backward as
// Net.Step over its own copy of the adapter's parameters. A Net with one
// attached hands its SFT steps to it and keeps the host's Params and Grads
// authoritative, so the optimizer, clipping, checkpoints and resume work
// unchanged — except inside Train with an AcceleratedOptimizer, where the
// device holds them until Train returns. DPO and logit-KD steps go to it too when it also implements
// AcceleratedRows or AcceleratedKD and says it is ready; else they stay on
// the Net's backend.
type Accelerated interface {
	// Step adds the gradients of Σ loss / denom over b to the device's
	// gradients and returns Σ loss. drop keys the LoRA dropout masks of the
	// micro-batch (nil: no dropout).
	Step(b *Batch, denom int, drop DropoutMask) (float64, error)
	ZeroGrads() error
	UploadParams() error               // host Params → device
	DownloadGrads(dst []float32) error // device gradients → dst
	Close()
}

// AcceleratedOptimizer is an Accelerated that also takes the optimizer
// step on the device: for the length of a Train call the parameters, their
// gradients and AdamW's moments live there (a micro-batch neither uploads
// the parameters nor downloads its gradients: they accumulate on the
// device), gradient-norm clipping and the fused AdamW update run there, and
// the parameters and moments come back to the host when Train returns, so
// checkpoints, evaluation and resume see them as always.
type AcceleratedOptimizer interface {
	Accelerated
	// OptimizerReady says whether to use it.
	OptimizerReady() bool
	// LoadOptimizer puts the parameters and AdamW's moments on the device.
	LoadOptimizer(params, m, v []float32) error
	// OptimizerStep clips the device's gradients to maxNorm (0: no
	// clipping) and takes AdamW step `step` (1-based) at lr, as AdamW.Update
	// with those constants; it returns the norm before clipping.
	OptimizerStep(maxNorm, lr float64, step int, beta1, beta2, eps, weightDecay float64) (float64, error)
	// StoreOptimizer copies the parameters and moments back to the host.
	StoreOptimizer(params, m, v []float32) error
}

// DropoutMask keys module site l·7+m's LoRA dropout mask for the micro-batch
// in progress: element i is dropped when SplitMix64(base+i) < thresh, and
// kept ones scale by keep = 1/(1−p). A device computes the same masks.
type DropoutMask func(site int) (base, thresh uint64, keep float32)

// AcceleratedRows is an Accelerated that also runs objectives of the
// targeted rows' log-probabilities (DPO) on the device.
type AcceleratedRows interface {
	Accelerated
	// StepRows runs forward and backward on b: grad receives log p(target)
	// of each row that carries a target (in row order) and returns
	// d loss / d log p of each, which flows back to the device's gradients.
	// grad runs between the step's forward and backward: it may not run
	// passes of its own on the device (the step's are held).
	StepRows(b *Batch, drop DropoutMask, grad func(logp []float64) ([]float64, error)) error
	// LogProbs is log p(target) of each row that carries a target, forward
	// only, with the adapter or without it.
	LogProbs(b *Batch, adapterOff bool) ([]float64, error)
}

// AcceleratedKD is an Accelerated that also runs logit distillation on the
// device, the teacher too. KDReady says whether to use it for kd: not for a
// teacher it cannot hold.
type AcceleratedKD interface {
	Accelerated
	StepKD(b *Batch, denom int, drop DropoutMask, kd *KD) (float64, error)
	KDReady(kd *KD) bool
}

var accels tensor.Registry[func(m *model.Model, a *lora.Adapter) (Accelerated, error)]

// RegisterAccelerated makes a device's step available under the name of its
// tensor backend; device packages call it from init().
func RegisterAccelerated(name string, open func(m *model.Model, a *lora.Adapter) (Accelerated, error)) {
	accels.Register(name, open)
}

// Accelerate attaches the step registered for device, if there is one and
// it can take this Net (LoRA). It returns whether one was
// attached, and why not when it could not be.
func (nt *Net) Accelerate(device string) (bool, error) {
	open, ok, names := accels.Lookup(device)
	switch {
	case !ok:
		return false, fmt.Errorf("no device-resident step for %q (built: %v)", device, names)
	case nt.Adapter == nil:
		return false, fmt.Errorf("full fine-tuning runs through the %s backend op by op", device)
	}
	a, err := open(nt.M, nt.Adapter)
	if err != nil {
		return false, err
	}
	nt.accel = a
	nt.accelGrads = make([]float32, len(nt.Grads))
	return true, nil
}

// Close releases an attached accelerator's memory.
func (nt *Net) Close() {
	if nt.accel != nil {
		nt.accel.Close()
		nt.accel = nil
	}
}

// Checkpointer is an Accelerated whose steps follow Net.Checkpoint:
// recompute each layer's activations in the backward (true) or keep every
// layer's from the forward (false: more memory, a forward less to run).
type Checkpointer interface {
	SetCheckpoint(on bool)
}

// AttentionKeeper is an Accelerated whose recomputing steps can keep each
// layer's attention-side activations (Net.KeepAttention).
type AttentionKeeper interface {
	SetKeepAttention(on bool)
}

// beginMicro readies the accelerator for a micro-batch: it takes the Net's
// checkpointing, the host's parameters go up and its gradients are zeroed —
// unless the optimizer is on the device (devOpt), where both stay there.
func (nt *Net) beginMicro(a Accelerated) error {
	if c, ok := a.(Checkpointer); ok {
		c.SetCheckpoint(nt.Checkpoint)
	}
	if k, ok := a.(AttentionKeeper); ok {
		k.SetKeepAttention(nt.Checkpoint && nt.KeepAttention)
	}
	if nt.devOpt {
		return nil
	}
	if err := a.UploadParams(); err != nil {
		return err
	}
	return a.ZeroGrads()
}

// endMicro adds the micro-batch's gradients, downloaded, to Grads — unless
// the optimizer is on the device, where they accumulate.
func (nt *Net) endMicro(a Accelerated) error {
	if nt.devOpt {
		return nil
	}
	if err := a.DownloadGrads(nt.accelGrads); err != nil {
		return err
	}
	for i, g := range nt.accelGrads {
		nt.Grads[i] += g
	}
	return nil
}

// accelStep is Step on the attached accelerator: one micro-batch between
// beginMicro and endMicro.
func (nt *Net) accelStep(b *Batch, denom int) (float64, error) {
	defer func() { nt.microBatches++ }()
	a := nt.accel
	if err := nt.beginMicro(a); err != nil {
		return 0, err
	}
	var drop DropoutMask
	if nt.dropping() {
		drop = nt.dropBase
	}
	loss, err := a.Step(b, denom, drop)
	if err != nil {
		return 0, err
	}
	if err := nt.endMicro(a); err != nil {
		return 0, err
	}
	nt.lastLoss = loss
	return loss, nil
}

// deviceOptimizer is the attached accelerator when Train can keep the
// optimizer on it: one that offers it, ready, with every micro-batch of obj
// running there too (a KD teacher it cannot hold keeps steps on the host).
func (nt *Net) deviceOptimizer(obj Objective, opt *AdamW) AcceleratedOptimizer {
	d, ok := nt.accel.(AcceleratedOptimizer)
	if !ok || !d.OptimizerReady() || len(opt.M) != len(nt.Params) || nt.adapterOff {
		return nil
	}
	switch o := obj.(type) {
	case SFT:
		return d
	case *DPOObjective:
		if nt.accelRows() != nil {
			return d
		}
	case *KD:
		if nt.accelKD(o) != nil {
			return d
		}
	}
	return nil
}

// DeviceMemory is the attached accelerator's memory high-water mark and its
// card's total, in bytes; ok is false without one (or one that does not
// report it).
func (nt *Net) DeviceMemory() (peak, total int64, ok bool) {
	r, is := nt.accel.(interface{ DeviceMemory() (peak, total int64) })
	if !is {
		return 0, 0, false
	}
	peak, total = r.DeviceMemory()
	return peak, total, true
}

// Noter is an Accelerated with things to tell a run's user: a faster path
// it left for the rest of the run, and why (results are unchanged).
type Noter interface {
	TakeNotes() []string // each note once
	Summary() []string   // how its optional paths fared, for the run's end
}

// DeviceNotes are the Net's notes on its accelerator and the attached
// accelerator's own (Noter) since the last call; nil without any.
func (nt *Net) DeviceNotes() []string {
	notes := nt.notes
	nt.notes = nil
	if r, ok := nt.accel.(Noter); ok {
		notes = append(notes, r.TakeNotes()...)
	}
	return notes
}

// shedActivations, after a step the accelerator had no memory for, holds
// fewer activations from here on — recomputing each layer's in the
// backward instead of keeping them all or their attention side — and says
// so in a note; false when it recomputes them already, as asked or because
// the device does not keep them (its gates): nothing to shed.
func (nt *Net) shedActivations(step int) bool {
	keeping := !nt.Checkpoint && (DeviceKeepsActivations == nil || DeviceKeepsActivations()) ||
		nt.Checkpoint && nt.KeepAttention && (DeviceKeepsAttention == nil || DeviceKeepsAttention())
	if nt.accel == nil || !keeping { // the device recomputes them already (its gates)
		return false
	}
	held := "every layer's activations"
	if nt.Checkpoint {
		held = "each layer's attention side"
	}
	nt.Checkpoint, nt.KeepAttention = true, false
	nt.notes = append(nt.notes, fmt.Sprintf("step %d: the device ran out of memory keeping %s (something else took memory since the run started?): the step again, recomputing them in the backward from here on (slower; grad_checkpointing: true)", step, held))
	return true
}

// DeviceSummary is the attached accelerator's account of its optional
// paths over the run (Noter); nil without one.
func (nt *Net) DeviceSummary() []string {
	if r, ok := nt.accel.(Noter); ok {
		return r.Summary()
	}
	return nil
}

// DeviceFree is the attached accelerator's free memory now, in bytes; ok is
// false without one (or one that does not report it).
func (nt *Net) DeviceFree() (free int64, ok bool) {
	r, is := nt.accel.(interface{ FreeMemory() int64 })
	if !is {
		return 0, false
	}
	return r.FreeMemory(), true
}

// accelRows is the attached accelerator when it runs row objectives.
func (nt *Net) accelRows() AcceleratedRows {
	if r, ok := nt.accel.(AcceleratedRows); ok {
		return r
	}
	return nil
}

// segmentsOfRows sums per-row values of b's targeted rows (in row order)
// into their segments.
func segmentsOfRows(b *Batch, rows []float64, nSeg int) ([]float64, error) {
	seg, _ := segmentIndex(b)
	out := make([]float64, nSeg)
	k := 0
	for i, t := range b.Targets {
		if t < 0 {
			continue
		}
		if k >= len(rows) {
			return nil, fmt.Errorf("device returned %d row log-probs, batch has more targeted rows", len(rows))
		}
		out[seg[i]] += rows[k]
		k++
	}
	if k != len(rows) {
		return nil, fmt.Errorf("device returned %d row log-probs for %d targeted rows", len(rows), k)
	}
	return out, nil
}

// accelSequenceLogProbs is SequenceLogProbs on the device.
func (nt *Net) accelSequenceLogProbs(r AcceleratedRows, b *Batch, adapterOff bool) ([]float64, error) {
	if !nt.devOpt { // else the device's parameters are the current ones
		if err := r.UploadParams(); err != nil {
			return nil, err
		}
	}
	logp, err := r.LogProbs(b, adapterOff)
	if err != nil {
		return nil, err
	}
	_, nSeg := segmentIndex(b)
	return segmentsOfRows(b, logp, nSeg)
}

// accelStepDPO is StepDPO on the device: the pair losses on the host from
// the device's row log-probs, their gradients back through the device.
func (nt *Net) accelStepDPO(r AcceleratedRows, b *Batch, ref []float64, pairsInStep int, d *DPO) (DPOStats, error) {
	defer func() { nt.microBatches++ }()
	var st DPOStats
	seg, nSeg := segmentIndex(b)
	if err := nt.beginMicro(r); err != nil {
		return st, err
	}
	var drop DropoutMask
	if nt.dropping() {
		drop = nt.dropBase
	}
	err := r.StepRows(b, drop, func(logp []float64) ([]float64, error) {
		policy, err := segmentsOfRows(b, logp, nSeg)
		if err != nil {
			return nil, err
		}
		coef := make([]float64, nSeg)
		st = dpoPairs(d, policy, ref, segmentTokens(b, seg, nSeg), pairsInStep, coef)
		g := make([]float64, 0, len(logp))
		for i, t := range b.Targets {
			if t >= 0 {
				g = append(g, coef[seg[i]])
			}
		}
		return g, nil
	})
	if err != nil {
		return st, err
	}
	if err := nt.endMicro(r); err != nil {
		return st, err
	}
	nt.lastLoss = st.Loss
	return st, nil
}

// RowsOnDevice says whether objectives of the rows' log-probabilities (DPO,
// its reference policy too) run on the attached device.
func (nt *Net) RowsOnDevice() bool { return nt.accelRows() != nil }

// KDOnDevice says whether logit distillation from kd's teacher runs on the
// attached device, the teacher there too.
func (nt *Net) KDOnDevice(kd *KD) bool { return nt.accelKD(kd) != nil }

// accelKD is the attached accelerator when it runs this distillation.
func (nt *Net) accelKD(kd *KD) AcceleratedKD {
	if r, ok := nt.accel.(AcceleratedKD); ok && r.KDReady(kd) && !nt.adapterOff {
		return r
	}
	return nil
}

// accelStepKD is StepKD on the device: one micro-batch between beginMicro
// and endMicro.
func (nt *Net) accelStepKD(r AcceleratedKD, b *Batch, denom int, kd *KD) (float64, error) {
	defer func() { nt.microBatches++ }()
	if err := nt.beginMicro(r); err != nil {
		return 0, err
	}
	var drop DropoutMask
	if nt.dropping() {
		drop = nt.dropBase
	}
	loss, err := r.StepKD(b, denom, drop, kd)
	if err != nil {
		return 0, err
	}
	if err := nt.endMicro(r); err != nil {
		return 0, err
	}
	nt.lastLoss = loss
	return loss, nil
}
