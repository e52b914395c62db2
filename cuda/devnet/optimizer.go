//go:build cuda

package devnet

import (
	"errors"
	"fmt"

	"distill/core/model"
	"distill/core/train"
	"distill/cuda"
)

// optimizerVerified: the optimizer on the device (clipping and AdamW for a
// whole train.Train call, the parameters, gradients and moments held there)
// passed TestDeviceOptimizerParity on an H200 (2026-11-26; written after the
// device time of the session before was spent). DISTILL_CUDA_OPTIMIZER=0
// keeps it on the host.
const optimizerVerified = true

// optimizer is the device side of train.AcceleratedOptimizer: AdamW's
// moments and the clipping norm's f64 accumulator, allocated on first use.
type optimizer struct {
	m, v, sumsq *cuda.Buffer
}

// OptimizerReady says whether train.Train may keep the optimizer here.
func (nt *Net) OptimizerReady() bool { return optimizerReady() }

func optimizerReady() bool { return gateOpen("DISTILL_CUDA_OPTIMIZER", optimizerVerified) }

func init() { train.DeviceKeepsOptimizer = optimizerReady }

// LoadOptimizer uploads the parameters and AdamW's moments (allocating the
// moments on first use: 2 × 4 bytes a parameter). Out of device memory is
// model.ErrAcceleratorFull: Train keeps the optimizer on the host then.
func (nt *Net) LoadOptimizer(params, m, v []float32) error {
	n := len(nt.A.Params)
	if len(params) != n || len(m) != n || len(v) != n {
		return fmt.Errorf("devnet: optimizer state of %d/%d/%d values for %d parameters", len(params), len(m), len(v), n)
	}
	if nt.opt.m == nil {
		bm, err1 := nt.D.Alloc(cuda.F32, n)
		bv, err2 := nt.D.Alloc(cuda.F32, n)
		bs, err3 := nt.D.Alloc(cuda.F64, 1)
		if err := errors.Join(err1, err2, err3); err != nil {
			bm.Free()
			bv.Free()
			bs.Free()
			if errors.Is(err, cuda.ErrOutOfMemory) {
				return fmt.Errorf("%w: AdamW's moments: %w", model.ErrAcceleratorFull, err)
			}
			return err
		}
		nt.opt = optimizer{m: nt.keep(bm), v: nt.keep(bv), sumsq: nt.keep(bs)}
	}
	lay := &nt.lay // the device's order (adapter_layout.go)
	return errors.Join(cuda.Write(nt.Params, 0, lay.toDevice(params)), cuda.Write(nt.opt.m, 0, lay.toDevice(m)), cuda.Write(nt.opt.v, 0, lay.toDevice(v)))
}

// OptimizerStep clips the accumulated gradients and takes AdamW step `step`
// over the parameters, both fused kernels on the device; the norm before
// clipping is the one value that comes back.
func (nt *Net) OptimizerStep(maxNorm, lr float64, step int, beta1, beta2, eps, weightDecay float64) (float64, error) {
	if nt.opt.m == nil {
		return 0, errors.New("devnet: OptimizerStep before LoadOptimizer")
	}
	n := len(nt.A.Params)
	norm, err := nt.D.ClipGradNorm(nt.Grads, nt.opt.sumsq, n, maxNorm)
	if err != nil {
		return 0, err
	}
	return norm, nt.D.AdamWStep(nt.Params, nt.Grads, nt.opt.m, nt.opt.v, n, step, lr, beta1, beta2, eps, weightDecay)
}

// StoreOptimizer copies the parameters and moments back to the host.
func (nt *Net) StoreOptimizer(params, m, v []float32) error {
	if nt.opt.m == nil {
		return errors.New("devnet: StoreOptimizer before LoadOptimizer")
	}
	return errors.Join(nt.readAdapter(params, nt.Params), nt.readAdapter(m, nt.opt.m), nt.readAdapter(v, nt.opt.v))
}

var _ train.AcceleratedOptimizer = (*Net)(nil)
