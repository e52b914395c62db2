package app

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
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
// less where the process's cgroup (a container's limit, a systemd unit's
// MemoryMax) leaves less; 0 where neither is known. A variable for the
// tests.
var hostAvailable = func() int64 {
	avail := meminfo("MemAvailable")
	self, _ := os.ReadFile("/proc/self/cgroup")
	if room, ok := cgroupRoom("/sys/fs/cgroup", string(self)); ok && (avail == 0 || room < avail) {
		return room
	}
	return avail
}

// cgroupRoom is what the memory cgroups of the process (self: its
// /proc/self/cgroup) under root still let it take: the tightest limit
// less usage over its cgroup and those above it, usage without the
// inactive file pages the kernel reclaims before it fails an allocation
// (as kubelet counts a container's working set). cgroup v2: memory.max,
// memory.current and memory.stat's inactive_file at each level; v1:
// memory.stat's hierarchical_memory_limit, total_inactive_file and
// memory.usage_in_bytes. ok is false where no limit is found. A full
// cgroup has 1 byte of room, not 0, which hostAvailable's callers read as
// unknown.
func cgroupRoom(root, self string) (room int64, ok bool) {
	num := func(path string) (int64, bool) {
		b, err := os.ReadFile(path)
		if err != nil {
			return 0, false
		}
		v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		return v, err == nil // "max" (no limit) does not parse
	}
	stat := func(path, key string) int64 {
		b, _ := os.ReadFile(path)
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) == 2 && f[0] == key {
				v, _ := strconv.ParseInt(f[1], 10, 64)
				return v
			}
		}
		return 0
	}
	fit := func(limit, used, inactive int64) {
		if limit <= 0 || limit >= 1<<60 { // v1 writes "no limit" as a huge number
			return
		}
		r := max(limit-max(used-inactive, 0), 1)
		if !ok || r < room {
			room, ok = r, true
		}
	}
	for _, line := range strings.Split(self, "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		switch {
		case f[0] == "0" && f[1] == "": // v2: the process's cgroup and every one above it
			for dir := filepath.Join(root, f[2]); strings.HasPrefix(dir, root); dir = filepath.Dir(dir) {
				limit, has := num(filepath.Join(dir, "memory.max"))
				used, _ := num(filepath.Join(dir, "memory.current"))
				if has {
					fit(limit, used, stat(filepath.Join(dir, "memory.stat"), "inactive_file"))
				}
				if dir == root {
					break
				}
			}
		case slices.Contains(strings.Split(f[1], ","), "memory"): // v1: its hierarchy's limit
			dir := filepath.Join(root, "memory", f[2])
			used, has := num(filepath.Join(dir, "memory.usage_in_bytes"))
			if has {
				st := filepath.Join(dir, "memory.stat")
				fit(stat(st, "hierarchical_memory_limit"), used, stat(st, "total_inactive_file"))
			}
		}
	}
	return room, ok
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
