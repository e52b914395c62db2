package app

import (
	"fmt"
	"path/filepath"
)

// fitMicroBatch picks the micro-batch a device can hold: the configured
// seq tokens divided by the smallest factor f whose step workspace,
// need(tokens), fits free bytes, with accumulation multiplied by f, so an
// optimizer step still sees about as many tokens. ok is false when not even
// 16 tokens fit.
func fitMicroBatch(seq, accum int, free int64, need func(tokens int) int64) (tokens, newAccum int, ok bool) {
	for f := 1; ; f++ {
		n := (seq + f - 1) / f
		if n < 16 {
			return 0, 0, false
		}
		if need(n) <= free {
			return n, accum * f, true
		}
	}
}

// fitDevice shrinks a new GPU run's micro-batch to what the device has free
// (the trainer picks the micro-batch from the memory plan) and records the
// effective values in the run's config.yaml, which a resume reads. Resumed
// runs keep theirs.
func (j *TrainJob) fitDevice() error {
	c := &j.Cfg
	free, ok := j.net.DeviceFree()
	if !ok || j.Resume || !c.OnGPU() {
		return nil
	}
	wb := weightBytes(j.m)
	need := func(n int) int64 {
		p := j.net.DevicePlan(n, wb, c.Quant == "nf4")
		return (p.Activations + p.Workspace) * 9 / 8 // the pool rounds buffers up by ≤ 1/8
	}
	n, accum, ok := fitMicroBatch(c.SeqLen, c.Accum, free, need)
	switch {
	case !ok:
		return fmt.Errorf("%s has %.2f GB free: not even 16 tokens per micro-batch fit (%.2f GB); free the device or train a smaller model",
			c.Device, float64(free)/1e9, float64(need(16))/1e9)
	case n == c.SeqLen:
		return nil
	}
	j.logf("seq_len %d needs %.2f GB on %s, %.2f GB free: %d tokens per micro-batch, accumulating %d",
		c.SeqLen, float64(need(c.SeqLen))/1e9, c.Device, float64(free)/1e9, n, accum)
	c.SeqLen, c.Accum = n, accum
	return writeRunConfig(filepath.Join(j.Dir, "config.yaml"), c)
}
