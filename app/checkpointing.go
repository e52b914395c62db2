package app

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"distill/core/train"
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

// recordActivations writes how the run holds its activations, as
// resolved, into its config and config.yaml.
func (j *TrainJob) recordActivations() error {
	c := &j.Cfg
	c.GradCheckpointing = map[bool]Checkpointing{true: CheckpointOn, false: CheckpointOff}[j.net.Checkpoint]
	c.KeepAttention = j.net.Checkpoint && j.net.KeepAttention
	return j.saveConfig()
}

// recordShed records a run that now holds fewer activations than its
// config.yaml says — the device filled up mid-run and Train took to
// recomputing them — so that a resume starts as it goes on.
func (j *TrainJob) recordShed() error {
	c := &j.Cfg
	if j.net.Checkpoint == c.GradCheckpointing.Recomputes() && j.net.KeepAttention == c.KeepAttention || c.GradCheckpointing.Auto() {
		return nil
	}
	return j.recordActivations()
}

// hostAvailable is the memory a CPU run may still take: MemAvailable, or
// less where the process's cgroup (a container's limit) leaves less; a
// variable for the tests.
var hostAvailable = func() int64 {
	avail := meminfo("MemAvailable")
	if room, ok := cgroupRoom("/sys/fs/cgroup"); ok && (avail == 0 || room < avail) {
		return room
	}
	return avail
}

// cgroupRoom is what the cgroup mounted at root still lets the process
// take: its memory limit less its usage (cgroup v2's memory.max and
// memory.current, or v1's memory/memory.limit_in_bytes and
// usage_in_bytes); ok is false where there is no limit or none is read.
func cgroupRoom(root string) (room int64, ok bool) {
	read := func(name string) (int64, bool) {
		b, err := os.ReadFile(filepath.Join(root, name))
		if err != nil {
			return 0, false
		}
		v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		return v, err == nil // "max" (no limit) does not parse
	}
	for _, f := range [][2]string{{"memory.max", "memory.current"}, {"memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes"}} {
		limit, ok1 := read(f[0])
		used, ok2 := read(f[1])
		if ok1 && ok2 && limit < 1<<60 { // v1 writes "no limit" as a huge number
			return max(limit-used, 0), true
		}
	}
	return 0, false
}

// fitHostCheckpointing resolves grad_checkpointing: auto on the CPU: keep
// every layer's activations (no forward recomputed: about a quarter of a
// step) where what that adds to recomputing them is at most half the
// memory the machine has available, else recompute; it says which and
// records it like pickActivations.
func (j *TrainJob) fitHostCheckpointing() error {
	c := &j.Cfg
	if !c.GradCheckpointing.Auto() {
		return nil
	}
	avail := hostAvailable()
	keep, extra := keepsOnHost(j.net, c.SeqLen, avail)
	gb := func(b int64) float64 { return float64(b) / 1e9 }
	if keep {
		j.logf("grad_checkpointing auto: keeping every layer's activations (%.2f GB more than recomputing them; %.2f GB available; grad_checkpointing: false)", gb(extra), gb(avail))
	} else {
		j.logf("grad_checkpointing auto: recomputing every layer's activations in the backward (keeping them would take %.2f GB more; %.2f GB available)", gb(extra), gb(avail))
	}
	return j.recordActivations()
}

// keepsOnHost is grad_checkpointing auto's choice on the CPU for net at seq
// tokens a micro-batch, with avail bytes available: keep every layer's
// activations when the extra bytes that takes over recomputing them are at
// most half of avail. It leaves net.Checkpoint set to the choice.
func keepsOnHost(net *train.Net, seq int, avail int64) (keep bool, extra int64) {
	held := func(checkpoint bool) int64 {
		net.Checkpoint = checkpoint
		p := net.PlanMemory(seq, 0)
		return p.Activations + p.Workspace
	}
	extra = held(false) - held(true)
	keep = avail > 0 && extra <= avail/2
	net.Checkpoint = !keep
	return keep, extra
}
