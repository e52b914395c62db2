//go:build cuda

package devnet

import (
	"fmt"

	"distill/core/model"
	"distill/cuda"
)

// offloadSlack: --cpu-offload auto keeps a tenth of the device's free
// memory beyond the decoder's plan (model.DecoderPlan) — the pool's
// rounding of each buffer up to its size class (≤ 1/8 of it), cuBLAS's
// workspaces, a second sequence's cache.
const offloadSlack = 10

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
	free += d.Pool.Stats().Cached
	from, ok := m.OffloadFor(free - free/offloadSlack)
	if !ok {
		return 0, fmt.Errorf("%w: --cpu-offload auto: the device has %.2f GB free; even the last layer, the LM head and a %d-position cache need %.2f GB",
			model.ErrAcceleratorFull, float64(free)/1e9, model.DecoderPlanContext, float64(m.DecoderPlan(len(m.Layers)-1).Total())/1e9)
	}
	return from, nil
}
