// Package train trains LoRA adapters (over a frozen, possibly quantized base)
// with an explicit forward and backward for every op, as llm.c does: each
// layer's forward saves what its backward needs, nothing else.
package train

import (
	"fmt"

	"distill/core/lora"
	"distill/core/model"
	"distill/core/tensor"
)

// Net is a model under training: the frozen base, the adapter being trained
// and its gradient buffer (the same layout as the adapter's parameters).
type Net struct {
	M       *model.Model
	Be      tensor.Backend
	Adapter *lora.Adapter  // nil in full fine-tuning
	Params  []float32      // what the optimizer updates: the adapter's, or every weight
	Grads   []float32      // d loss / d Params
	gPairs  [][]*lora.Pair // views of Grads, per layer and module (LoRA)

	full      *fullGrads  // views of Grads per weight (full fine-tuning)
	fullNames []paramSpan // the weights' names and places in Params

	// Checkpoint recomputes each layer's forward during backward instead of
	// keeping its activations: memory O(layers × tokens × hidden) for the
	// layer inputs plus one layer's activations, at ~1.3× the compute.
	Checkpoint bool
	// KeepAttention, with Checkpoint, asks a device step to keep each
	// layer's attention-side activations and recompute only its MLP side
	// (AttentionKeeper; the CPU step recomputes everything): between
	// Checkpoint's memory and keeping every layer's.
	KeepAttention bool

	// DropoutSeed seeds the LoRA dropout masks (one per micro-batch and module).
	DropoutSeed uint64

	buf          []float32  // the workspace: every activation and temporary of a Step
	ws           *workspace // views into buf for the Step in progress
	microBatches int        // Steps taken: keys the dropout masks
	notes        []string   // for the run's log (DeviceNotes)
	lastLoss     float64    // the objective's loss in the pass just run
	adapterOff   bool       // run the base alone (DPO's reference policy)
	evaluating   bool       // a forward outside training: no dropout

	accel      Accelerated // when attached, SFT steps run there (Accelerate)
	accelGrads []float32   // its gradients, downloaded before adding
	devOpt     bool        // inside Train with the optimizer on the accelerator (AcceleratedOptimizer)
}

// NewNet wraps a model and an adapter built for it.
func NewNet(be tensor.Backend, m *model.Model, a *lora.Adapter) (*Net, error) {
	if len(a.Layers) != len(m.Layers) {
		return nil, fmt.Errorf("adapter has %d layers, model %d", len(a.Layers), len(m.Layers))
	}
	n := &Net{M: m, Be: be, Adapter: a, Params: a.Params, Grads: make([]float32, len(a.Params))}
	n.gPairs = a.Mirror(n.Grads)
	return n, nil
}

// ZeroGrads clears the gradient buffer (start of an optimizer step).
func (n *Net) ZeroGrads() { clear(n.Grads) }

// Batch is a flattened token stream. Rows of a padded batch and examples
// packed into one row are alike: each is a segment, attention never crosses
// a segment boundary, and positions restart at 0 in each.
type Batch struct {
	IDs      []int // (n) input tokens
	Targets  []int // (n) the token to predict after position i, or -1 for no loss
	Pos      []int // (n) position ids
	SegStart []int // (n) index of the first token of i's segment
}

// Len is the number of tokens.
func (b *Batch) Len() int { return len(b.IDs) }

// Counted is the number of positions that carry a loss.
func (b *Batch) Counted() int {
	c := 0
	for _, t := range b.Targets {
		if t >= 0 {
			c++
		}
	}
	return c
}

// AddSequence appends one example: ids, and mask[t] = true where ids[t]
// should be predicted from ids[:t] (mask[0] is ignored: nothing precedes it).
func (b *Batch) AddSequence(ids []int, mask []bool) {
	start := len(b.IDs)
	for t, id := range ids {
		b.IDs = append(b.IDs, id)
		b.Pos = append(b.Pos, t)
		b.SegStart = append(b.SegStart, start)
		target := -1
		if t+1 < len(ids) && mask[t+1] {
			target = ids[t+1]
		}
		b.Targets = append(b.Targets, target)
	}
}

// Validate checks ids against the vocabulary and the stream's consistency.
func (b *Batch) Validate(vocab int) error {
	n := len(b.IDs)
	if len(b.Targets) != n || len(b.Pos) != n || len(b.SegStart) != n {
		return fmt.Errorf("batch: ids, targets, positions and segments differ in length")
	}
	for i := 0; i < n; i++ {
		if b.IDs[i] < 0 || b.IDs[i] >= vocab {
			return fmt.Errorf("batch: token id %d at %d outside the vocabulary [0, %d)", b.IDs[i], i, vocab)
		}
		if b.Targets[i] >= vocab {
			return fmt.Errorf("batch: target id %d at %d outside the vocabulary [0, %d)", b.Targets[i], i, vocab)
		}
		if s := b.SegStart[i]; s > i || s < 0 || (i > 0 && s != i && s != b.SegStart[i-1]) || b.Pos[i] != i-s {
			return fmt.Errorf("batch: position %d: segment start %d and position id %d are inconsistent", i, s, b.Pos[i])
		}
	}
	return nil
}

var noPairs = make([]*lora.Pair, len(lora.Modules))

// pairs returns layer l's adapter pairs and their gradient views (all nil in
// full fine-tuning).
func (nt *Net) pairs(l int) (p, g []*lora.Pair) {
	if nt.Adapter == nil || nt.adapterOff {
		return noPairs, noPairs
	}
	return nt.Adapter.Layers[l], nt.gPairs[l]
}

// layerGrads returns layer l's weight gradients, or an empty set (LoRA).
func (nt *Net) layerGrads(l int) *layerGrads {
	if nt.full == nil {
		return &layerGrads{}
	}
	return &nt.full.Layers[l]
}

func (nt *Net) rank() int {
	if nt.Adapter == nil {
		return 0
	}
	return nt.Adapter.Config.R
}
