//go:build cuda

package cuda

/*
#include "distill_cuda.h"
*/
import "C"

import (
	"math"
)

// AdamWStep is one fused AdamW update of n parameters at optimizer step
// `step` (1-based, the step being taken), with the constants computed as
// core/train's AdamW.Update computes them.
func (d *Device) AdamWStep(p, g, m, v *Buffer, n, step int, lr, beta1, beta2, eps, weightDecay float64) error {
	if err := check("adamw").buf("params", p, F32, n).buf("grads", g, F32, n).buf("m", m, F32, n).buf("v", v, F32, n).
		true(step >= 1, "step %d (the first is 1)", step).err; err != nil {
		return err
	}
	bc1 := 1 - math.Pow(beta1, float64(step))
	bc2 := 1 - math.Pow(beta2, float64(step))
	return call(func() C.int {
		return C.dc_adamw((*C.float)(p.ptr), (*C.float)(g.ptr), (*C.float)(m.ptr), (*C.float)(v.ptr), C.int64_t(n),
			C.float(float32(beta1)), C.float(float32(beta2)), C.float(float32(1-lr*weightDecay)),
			C.float(float32(lr/bc1)), C.float(float32(math.Sqrt(bc2))), C.float(float32(eps)))
	})
}

// ClipGradNorm scales g(n) so its global L2 norm is at most maxNorm (no
// clipping when maxNorm <= 0) and returns the norm before clipping, as
// core/train.ClipGradNorm. scratch is one f64 element of device memory. The
// scaling reads the norm on the device; only the returned value waits for it.
func (d *Device) ClipGradNorm(g, scratch *Buffer, n int, maxNorm float64) (float64, error) {
	if err := check("clip_grad_norm").buf("g", g, F32, n).buf("scratch", scratch, F64, 1).err; err != nil {
		return 0, err
	}
	if err := call(func() C.int { return C.dc_sumsq((*C.double)(scratch.ptr), (*C.float)(g.ptr), C.int64_t(n)) }); err != nil {
		return 0, err
	}
	if err := call(func() C.int {
		return C.dc_clip_scale((*C.float)(g.ptr), C.int64_t(n), (*C.double)(scratch.ptr), C.double(maxNorm))
	}); err != nil {
		return 0, err
	}
	var ss [1]float64
	if err := Read(scratch, 0, ss[:]); err != nil {
		return 0, err
	}
	return math.Sqrt(ss[0]), nil
}

// CrossEntropy sets loss[r] = logsumexp(logits[r]) − logits[r][target[r]]
// for rows rows of logits (rows, vocab) and, when grad, overwrites logits
// with scale·(softmax − onehot(target)) as core/train's ceRows. Targets
// (i32) must be in [0, vocab): check them on the host.
func (d *Device) CrossEntropy(loss, logits, target *Buffer, rows, vocab int, scale float32, grad bool) error {
	if err := check("xent").buf("loss", loss, F32, rows).buf("logits", logits, F32, rows*vocab).buf("target", target, I32, rows).err; err != nil {
		return err
	}
	return call(func() C.int {
		return C.dc_xent((*C.float)(loss.ptr), (*C.float)(logits.ptr), (*C.int32_t)(target.ptr), C.int(rows), C.int(vocab), C.float(scale), cbool(grad))
	})
}

// CrossEntropyRows is CrossEntropy with the gradient scaled per row: logits
// become rowScale[r]·(softmax − onehot(target)) (rowScale f32, rows).
func (d *Device) CrossEntropyRows(loss, logits, target, rowScale *Buffer, rows, vocab int) error {
	if err := check("xent_rows").buf("loss", loss, F32, rows).buf("logits", logits, F32, rows*vocab).buf("target", target, I32, rows).
		buf("row_scale", rowScale, F32, rows).err; err != nil {
		return err
	}
	return call(func() C.int {
		return C.dc_xent_rows((*C.float)(loss.ptr), (*C.float)(logits.ptr), (*C.int32_t)(target.ptr), C.int(rows), C.int(vocab), (*C.float)(rowScale.ptr))
	})
}

// KDDivergences numbers the divergences of KDRows as core/train names them.
var KDDivergences = map[string]int{"forward_kl": 0, "reverse_kl": 1, "jsd": 2}

// KDRows is core/train's KD.row for rows rows at once: loss[r] from student
// logits z and teacher logits t (rows, vocab), z overwritten with
// scale·dloss/dz. Targets (i32) must be in [0, vocab).
func (d *Device) KDRows(loss, z, t, target *Buffer, rows, vocab int, divergence string, tau, alpha, beta, scale float32) error {
	div, known := KDDivergences[divergence]
	if err := check("kd_rows").true(known, "unknown divergence %q", divergence).buf("loss", loss, F32, rows).
		buf("z", z, F32, rows*vocab).buf("t", t, F32, rows*vocab).buf("target", target, I32, rows).err; err != nil {
		return err
	}
	return call(func() C.int {
		return C.dc_kd_rows((*C.float)(loss.ptr), (*C.float)(z.ptr), (*C.float)(t.ptr), (*C.int32_t)(target.ptr), C.int(rows), C.int(vocab),
			C.int(div), C.float(tau), C.float(alpha), C.float(beta), C.float(scale), nil)
	})
}

// KDRowsScaled is KDRows with each row's gradient scaled by rowScale[r]
// (f32, rows): a recorded step's, its padding rows at 0.
func (d *Device) KDRowsScaled(loss, z, t, target, rowScale *Buffer, rows, vocab int, divergence string, tau, alpha, beta float32) error {
	div, known := KDDivergences[divergence]
	if err := check("kd_rows").true(known, "unknown divergence %q", divergence).buf("loss", loss, F32, rows).
		buf("z", z, F32, rows*vocab).buf("t", t, F32, rows*vocab).buf("target", target, I32, rows).
		buf("row_scale", rowScale, F32, rows).err; err != nil {
		return err
	}
	return call(func() C.int {
		return C.dc_kd_rows((*C.float)(loss.ptr), (*C.float)(z.ptr), (*C.float)(t.ptr), (*C.int32_t)(target.ptr), C.int(rows), C.int(vocab),
			C.int(div), C.float(tau), C.float(alpha), C.float(beta), 0, (*C.float)(rowScale.ptr))
	})
}
