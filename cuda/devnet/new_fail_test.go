//go:build cuda

package devnet_test

import (
	"testing"

	"distill/core/model"
	"distill/core/tensor"
	"distill/cuda/devnet"
)

// A trainer that fails to fit (the pool's limit reached halfway through a
// layer's uploads) gives back everything it had uploaded: the offload's
// retries with one more layer on the host, and the trainer's fallback,
// depend on the room a failed try leaves. NF4 weights are reachable
// through their layer only, so a half-built layer must reach Close too.
func TestNewFreesWhatItUploadedOnFailure(t *testing.T) {
	d := device(t)
	s := setups[0]
	dir := t.TempDir()
	ok(t, model.WriteRandom(dir, s.shape, tensor.BF16, 5))
	m, a := build(t, dir, s)
	defer d.Pool.SetLimit(0)
	ok(t, d.Pool.Trim())
	before := d.Pool.Stats().InUse
	full, err := devnet.New(d, m, a)
	ok(t, err)
	size := d.Pool.Stats().InUse - before
	full.Close()
	failed := 0
	for room := int64(0); room < size; room += max(1, size/40) {
		ok(t, d.Pool.Trim())
		d.Pool.SetLimit(before + room)
		nt, err := devnet.New(d, m, a)
		d.Pool.SetLimit(0)
		if err == nil {
			nt.Close()
			continue
		}
		failed++
		if left := d.Pool.Stats().InUse - before; left != 0 {
			t.Errorf("room %d of %d: New failed (%v) leaving %d bytes in use", room, size, err, left)
		}
	}
	if failed == 0 {
		t.Fatal("no limit made New fail: the test tests nothing")
	}
}
