//go:build cuda

package devnet

import (
	"fmt"
	"time"

	"distill/core/train"
	"distill/cuda"
)

// StepKD runs forward and backward on b with logit distillation from kd's
// teacher, as core/train's Net.StepKD: the teacher runs on the device too
// (its own Net, uploaded on first use and kept), once over the packed batch,
// and its logits are formed HeadRows rows at a time beside the student's.
// Gradients are of Σ loss / denom; it returns Σ loss.
func (nt *Net) StepKD(b *train.Batch, denom int, drop train.DropoutMask, kd *train.KD) (loss float64, err error) {
	defer func() { err = full(err) }()
	if loss, done, err := nt.stepGraphed(b, denom, drop, kd); done {
		return loss, err
	}
	start := time.Now()
	t, err := nt.teacher(kd)
	if err != nil {
		return 0, err
	}
	hidden, err := t.Hidden(b)
	if err != nil {
		return 0, fmt.Errorf("kd teacher: %w", err)
	}
	defer hidden.Free()
	p, err := nt.newPass(b, drop, passTrain)
	if err != nil {
		return 0, err
	}
	defer p.free()
	c, tc := &nt.M.Config, &t.M.Config
	R := p.hb.Len / c.HiddenSize
	h := &kdHead{hidden: hidden, head: t.head, dt: tc.HiddenSize, divergence: kd.Divergence,
		tau: float32(kd.Temperature), alpha: float32(kd.Alpha), beta: float32(kd.Beta),
		th: p.take(cuda.F32, R*tc.HiddenSize), thb: p.take(cuda.BF16, R*tc.HiddenSize), logits: p.take(cuda.F32, R*c.VocabSize)}
	if p.err != nil {
		return 0, p.failed()
	}
	x := p.forward()
	p.mark("head")
	p.head(headMode{grad: true, scale: 1 / float32(denom), kd: h})
	p.backward(x)
	return p.lossAfter(start), p.failed()
}

// teacher is kd's teacher on the device, uploaded on first use.
func (nt *Net) teacher(kd *train.KD) (*Net, error) {
	if kd.Teacher.Config.VocabSize != nt.M.Config.VocabSize {
		return nil, fmt.Errorf("devnet: the teacher's vocabulary (%d) differs from the student's (%d)", kd.Teacher.Config.VocabSize, nt.M.Config.VocabSize)
	}
	if t, ok := nt.teachers[kd.Teacher]; ok {
		return t, nil
	}
	t, err := New(nt.D, kd.Teacher, nil)
	if err != nil {
		return nil, fmt.Errorf("kd teacher: %w", err)
	}
	if nt.teachers == nil {
		nt.teachers = map[any]*Net{}
	}
	nt.teachers[kd.Teacher] = t
	return t, nil
}

// Hidden runs the model alone over b (packed segments attend within
// themselves) and returns its final normed hidden states (n, hidden) in a
// new buffer the caller frees.
func (nt *Net) Hidden(b *train.Batch) (*cuda.Buffer, error) {
	p, err := nt.newPass(b, nil, passHidden)
	if err != nil {
		return nil, err
	}
	defer p.free()
	p.baseOnly()
	p.forward()
	out, err := nt.D.Alloc(cuda.F32, p.hf.Len)
	if err != nil {
		return nil, err
	}
	p.do(p.hf.CopyTo(out))
	if err := p.failed(); err != nil {
		out.Free()
		return nil, err
	}
	return out, nil
}
