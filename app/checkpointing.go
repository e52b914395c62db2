package app

import (
	"fmt"
	"strconv"

	"go.yaml.in/yaml/v3"
)

// Checkpointing is a run's grad_checkpointing: whether each layer's
// activations are recomputed in the backward (less memory) or kept from
// the forward (a forward less a step), or auto — the fastest that fits,
// decided when the run starts from the memory it finds free (gpufit.go)
// and recorded in the run's config.yaml as true or false.
type Checkpointing string

const (
	CheckpointOn   Checkpointing = "true"  // recompute every layer's activations
	CheckpointOff  Checkpointing = "false" // keep every layer's
	CheckpointAuto Checkpointing = "auto"  // the fastest that fits
)

// Recomputes says whether a run starts out recomputing: true and auto
// (which starts from the least memory and keeps more where it fits).
func (c Checkpointing) Recomputes() bool { return c != CheckpointOff }

// Auto says whether the run picks (auto, or unset: the default).
func (c Checkpointing) Auto() bool { return c == CheckpointAuto || c == "" }

// String is flag.Value's.
func (c Checkpointing) String() string { return string(c) }

// Set is flag.Value's: true or false (as strconv.ParseBool reads them), or
// auto.
func (c *Checkpointing) Set(s string) error {
	if s == string(CheckpointAuto) || s == "" {
		*c = CheckpointAuto
		return nil
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return fmt.Errorf("grad_checkpointing is true, false or auto, not %q", s)
	}
	*c = map[bool]Checkpointing{true: CheckpointOn, false: CheckpointOff}[b]
	return nil
}

// IsBoolFlag lets --grad-checkpointing alone mean true, as before it took
// auto.
func (c *Checkpointing) IsBoolFlag() bool { return true }

// UnmarshalYAML reads true, false or auto.
func (c *Checkpointing) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: grad_checkpointing is true, false or auto", n.Line)
	}
	if err := c.Set(n.Value); err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	return nil
}

// MarshalYAML writes true and false as YAML's booleans, auto (or unset) as
// auto.
func (c Checkpointing) MarshalYAML() (any, error) {
	switch c {
	case CheckpointOn, CheckpointOff:
		return c == CheckpointOn, nil
	}
	return string(CheckpointAuto), nil
}
