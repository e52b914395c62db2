package app

import "fmt"

// fitMicroBatch finds the micro-batch a device can hold: the configured seq
// tokens divided by the smallest factor f whose step workspace,
// need(tokens), fits free bytes, and accumulation multiplied by f, so an
// optimizer step sees about as many tokens. ok is false when nothing of at
// least min(16, seq) tokens fits.
func fitMicroBatch(seq, accum int, free int64, need func(tokens int) int64) (tokens, newAccum int, ok bool) {
	floor := min(16, seq)
	for f := 1; ; f++ {
		n := (seq + f - 1) / f
		if n < floor {
			return 0, 0, false
		}
		if need(n) <= free {
			return n, accum * f, true
		}
		if n == floor { // nothing smaller is tried
			return 0, 0, false
		}
	}
}

// checkDeviceFit refuses a GPU run whose micro-batch (seq_len) cannot fit
// the device's free memory by the memory plan, naming the seq_len and
// accumulation that would (a shorter seq_len also truncates longer
// examples, so the choice is left to the user rather than made silently).
func (j *TrainJob) checkDeviceFit() error {
	c := &j.Cfg
	free, ok := j.net.DeviceFree()
	if !ok || !c.OnGPU() {
		return nil
	}
	wb := weightBytes(j.m)
	need := func(n int) int64 {
		p := j.net.DevicePlan(n, wb, c.Quant == "nf4")
		return (p.Activations + p.Workspace) * 9 / 8 // the pool rounds buffers up by ≤ 1/8
	}
	if need(c.SeqLen) <= free {
		return nil
	}
	n, accum, ok := fitMicroBatch(c.SeqLen, c.Accum, free, need)
	if !ok {
		return fmt.Errorf("%s has %.2f GB free: seq_len %d needs %.2f GB and not even %d tokens fit; free the device or train a smaller model",
			c.Device, float64(free)/1e9, c.SeqLen, float64(need(c.SeqLen))/1e9, min(16, c.SeqLen))
	}
	return fmt.Errorf("seq_len %d needs %.2f GB on %s, %.2f GB free: --seq-len %d --accum %d fits with about as many tokens a step (examples over %d tokens are then cut from the left)",
		c.SeqLen, float64(need(c.SeqLen))/1e9, c.Device, float64(free)/1e9, n, accum, n)
}
