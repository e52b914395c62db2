//go:build cuda

package devnet

import (
	"errors"
	"fmt"
	"os"

	"distill/core/model"
	"distill/cuda"
)

// autoDecoder is the decoder for --cpu-offload auto: over the layers from
// offloadFrom's choice on, one more left to the host each time the device
// turns out too full to hold them (the plan is an estimate). On failure
// m.CPULayers is AutoCPULayers again, and a full device's error wraps
// model.ErrAcceleratorFull, so Accelerate says what runs where.
func autoDecoder(d *cuda.Device, m *model.Model) (*Decoder, error) {
	from, err := offloadFrom(d, m)
	for ; err == nil && from < len(m.Layers); from++ {
		m.CPULayers = from
		var dc *Decoder
		if dc, err = NewDecoder(d, m); err == nil {
			return dc, nil
		}
		if errors.Is(err, cuda.ErrOutOfMemory) {
			err = d.Pool.Trim() // what the failed upload left cached
		} else {
			break
		}
	}
	m.CPULayers = model.AutoCPULayers
	if err == nil {
		err = fmt.Errorf("--cpu-offload auto: %w", cuda.ErrOutOfMemory)
	}
	return nil, full(err)
}

// limitNote says that the free memory is DISTILL_CUDA_MEMORY's, when set.
func limitNote() string {
	if v := os.Getenv("DISTILL_CUDA_MEMORY"); v != "" {
		return fmt.Sprintf(" within DISTILL_CUDA_MEMORY=%s", v)
	}
	return ""
}

// offloadFrom is --cpu-offload auto's choice for m on d (Ollama's way, by
// the bytes each layer uploads): the fewest first layers the host runs so
// that the decoder's plan over the rest fits the device's free memory
// (and what its pool holds cached) less a tenth. It fails wrapping
// model.ErrAcceleratorFull when even the last layer's does not.
func offloadFrom(d *cuda.Device, m *model.Model) (int, error) {
	free, _, err := d.MemInfo()
	if err != nil {
		return 0, err
	}
	free = d.Pool.Room(free)
	from, ok := m.OffloadFor(model.OffloadRoom(free))
	if !ok {
		last := m.DecoderPlan(len(m.Layers) - 1)
		return 0, fmt.Errorf("%w: --cpu-offload auto: the device has %.2f GB free%s; even the last layer, the LM head, a %d-position cache, a prompt's pass and an adapter need %.2f GB",
			model.ErrAcceleratorFull, float64(free)/1e9, limitNote(), m.DecoderPlanContext(), float64(last.Total())/1e9)
	}
	return from, nil
}
