package model

import (
	"errors"
	"fmt"

	"distill/core/tensor"
)

// Accelerated runs Model.Forward and Model.ForwardStep with the weights and
// each cache's keys and values resident on a device (cuda/devnet's
// decoder), so a decoded token costs one pass over device memory instead of
// a round trip per op.
//
// The host cache stays the reference and every other path (copies between
// caches, a pass the host runs) keeps working on it: the
// device holds a mirror of rows [0, c.DevLen) of c. Either may hold f32 or
// bf16 (CacheBF16; a cache made before Accelerate keeps its kind): rows
// crossing between kinds are rounded to nearest even or widened. A pass brings the
// mirror up to date first (host rows [c.DevLen, c.Len) go up: rows some
// other path wrote since), then writes the new keys and values to both, so
// after it c.DevLen = c.Len. A mirror may be dropped at any time (memory):
// DevLen 0, and the next pass uploads the rows again.
//
// With the model's first CPULayers on the host (--cpu-offload) the device
// holds and runs only the layers after them: the host runs the first ones
// (their keys and values in the host cache alone) and hands the device
// their output x, the residual stream (T, hidden) entering its first
// layer; a mirror then holds those later layers' rows only. x is nil when
// CPULayers is 0: the device embeds ids itself.
type Accelerated interface {
	// Forward is Model.Forward of ids at positions c.Len.. on the device,
	// checked already (vocabulary, context, capacity); it leaves c.Len to
	// the caller and sets c.DevLen to c.Len+len(ids).
	Forward(ids []int, x []float32, c *Cache, out []float32) ([]float32, error)
	// ForwardStep is Model.ForwardStep on the device: ids[b] at position
	// caches[b].Len, on Forward's contract for each cache (the caller sets
	// each Len); x and out are (B, hidden).
	ForwardStep(ids []int, x []float32, caches []*Cache, out []float32) ([]float32, error)
	// ForwardBranches is Model.ForwardBranches on the device, checked
	// already: it brings c's mirror up to date (c.DevLen = c.Len) and, as
	// the host pass does, leaves the branches' keys and values in c's rows
	// [Len, Len+Σ len(branch)) — scratch past Len that callers may copy
	// (batched prefill does) — with c.Len and c.DevLen unchanged; x and out
	// are (Σ len(branch), hidden).
	ForwardBranches(branches [][]int, x []float32, c *Cache) ([]float32, error)
	// Takes says whether it can run with delta applied (nil: the base
	// alone); when not, Forward runs on the host for that pass.
	Takes(delta Delta) bool
	// CacheBF16 says whether its mirrors hold keys and values in bf16: the
	// host caches are then bf16 too (NewCache), the same values in half
	// the memory, copied between the two as they are.
	CacheBF16() bool
	// Logits is Model.Logits with the device's LM head (no delta touches
	// it); on an error Model.Logits computes them with its backend (on the
	// CPU for ErrAcceleratorFull).
	Logits(out, hidden []float32, T int) error
	Close()
}

// AutoCPULayers as Model.CPULayers asks Accelerate's device to choose them
// (serve's --cpu-offload auto): its opener sets CPULayers to the fewest
// first layers the host must run for the rest to fit the device's free
// memory, with room for a KV cache and a prompt's pass.
const AutoCPULayers = -1

// ErrAcceleratorFull wraps an accelerator's failure for want of device
// memory: the pass then runs on the host instead, on the CPU backend
// whatever backend it was given (an op-by-op one on the full device would
// fail too), and the caches stay right (DevLen ≤ Len holds after a failed
// pass).
var ErrAcceleratorFull = errors.New("model: the accelerator's device memory is full")

var accels tensor.Registry[func(*Model) (Accelerated, error)]

// RegisterAccelerated makes a device-resident forward pass available under a
// device name (cuda registers "cuda" in builds that have it).
func RegisterAccelerated(name string, open func(*Model) (Accelerated, error)) {
	accels.Register(name, open)
}

// Accelerate attaches the forward pass registered for device, when there is
// one: Forward then runs there whenever it can (a delta it takes). Set
// CPULayers first: the device then holds only the layers after them
// (AutoCPULayers: the device's opener chooses and sets them; when it has
// no room even for the last layer every layer stays on the CPU, and when
// it fails otherwise none does: the backend runs them op by op). It
// returns whether one was attached, and why not.
func (m *Model) Accelerate(device string) (bool, error) {
	open, ok, names := accels.Lookup(device)
	if m.CPULayers >= len(m.Layers) {
		return false, fmt.Errorf("all %d layers stay on the CPU (--cpu-offload %d): nothing runs on the device", len(m.Layers), m.CPULayers)
	}
	if !ok {
		if m.CPULayers == AutoCPULayers {
			m.CPULayers = 0
		}
		return false, fmt.Errorf("no device-resident forward pass for %q (built: %v)", device, names)
	}
	if m.accel != nil { // before the new one uploads: never two copies of the weights
		m.accel.Close()
		m.accel = nil
	}
	a, err := open(m)
	if err != nil {
		if m.CPULayers == AutoCPULayers {
			m.CPULayers = 0
			if errors.Is(err, ErrAcceleratorFull) {
				m.CPULayers = len(m.Layers)
			}
		}
		return false, err
	}
	if m.CPULayers == AutoCPULayers {
		a.Close()
		m.CPULayers = len(m.Layers)
		return false, fmt.Errorf("the %s accelerator left --cpu-offload auto unresolved", device)
	}
	m.accel, m.accelFrom = a, m.CPULayers
	return true, nil
}

// Attached says whether an accelerator is attached (its passes run there
// whenever they can).
func (m *Model) Attached() bool { return m.accel != nil }

// Detach frees an attached accelerator (its weights, its mirrors): passes
// run on the backend they are given again.
func (m *Model) Detach() {
	if m.accel != nil {
		m.accel.Close()
		m.accel = nil
	}
}

// accelerated is the attached accelerator when this pass can use it: a
// delta it takes, and the CPU layers it was opened for (it holds the rest).
func (m *Model) accelerated() Accelerated {
	if m.accel == nil || m.CPULayers != m.accelFrom || !m.accel.Takes(m.Delta) {
		return nil
	}
	return m.accel
}
