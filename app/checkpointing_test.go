package app

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"distill/core/train"
	"distill/store"
)

// grad_checkpointing reads true, false and auto from a run's YAML and from
// --grad-checkpointing (alone: true), writes true and false back as YAML
// booleans, and refuses anything else naming the line.
func TestCheckpointingReadsAndWrites(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		yaml string
		want Checkpointing
	}{{"true", CheckpointOn}, {"false", CheckpointOff}, {"auto", CheckpointAuto}} {
		p := filepath.Join(dir, c.yaml+".yaml")
		if err := os.WriteFile(p, []byte("method: sft\ngrad_checkpointing: "+c.yaml+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		cfg := defaultRunConfig("sft")
		if err := readRunConfig(p, &cfg); err != nil || cfg.GradCheckpointing != c.want {
			t.Errorf("grad_checkpointing: %s read as %q, %v", c.yaml, cfg.GradCheckpointing, err)
		}
		if err := writeRunConfig(p, &cfg); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(p); !strings.Contains(string(b), "\ngrad_checkpointing: "+c.yaml+"\n") {
			t.Errorf("grad_checkpointing %s written as\n%s", c.yaml, b)
		}
	}
	// Unset (YAML's null skips UnmarshalYAML): the default, written back as auto.
	p := filepath.Join(dir, "null.yaml")
	os.WriteFile(p, []byte("method: sft\ngrad_checkpointing:\n"), 0o644)
	cfg := defaultRunConfig("sft")
	if err := readRunConfig(p, &cfg); err != nil || !cfg.GradCheckpointing.Auto() || !cfg.GradCheckpointing.Recomputes() {
		t.Errorf("grad_checkpointing unset: %q, %v", cfg.GradCheckpointing, err)
	}
	if err := writeRunConfig(p, &cfg); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); !strings.Contains(string(b), "\ngrad_checkpointing: auto\n") {
		t.Errorf("grad_checkpointing unset written as\n%s", b)
	}
	p = filepath.Join(dir, "bad.yaml")
	os.WriteFile(p, []byte("method: sft\n\ngrad_checkpointing: sometimes\n"), 0o644)
	cfg = defaultRunConfig("sft")
	if err := readRunConfig(p, &cfg); err == nil || !strings.Contains(err.Error(), "line 3") || !strings.Contains(err.Error(), "true, false or auto") {
		t.Errorf("grad_checkpointing: sometimes: %v", err)
	}
	for _, c := range []struct {
		args []string
		want Checkpointing
	}{{nil, CheckpointAuto}, {[]string{"--grad-checkpointing"}, CheckpointOn}, {[]string{"--grad-checkpointing=false"}, CheckpointOff},
		{[]string{"--grad-checkpointing=auto"}, CheckpointAuto}, {[]string{"--grad-checkpointing=1"}, CheckpointOn}} {
		cfg := defaultRunConfig("sft")
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		bindRunFlags(fs, &cfg)
		if err := fs.Parse(c.args); err != nil || cfg.GradCheckpointing != c.want {
			t.Errorf("%v: %q, %v; want %q", c.args, cfg.GradCheckpointing, err, c.want)
		}
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	bindRunFlags(fs, &cfg)
	if err := fs.Parse([]string{"--grad-checkpointing=sometimes"}); err == nil {
		t.Error("--grad-checkpointing=sometimes parsed")
	}
}

// grad_checkpointing: auto on a GPU takes the fastest way to hold the
// activations that fits nine tenths of the device's free memory — every
// layer's kept, else each layer's attention side, else none — says so and
// records it in config.yaml as the run will resume it.
func TestGPURunPicksActivationsWhenAuto(t *testing.T) {
	m := tinyModel(t)
	cfg := defaultRunConfig("sft")
	cfg.Model, cfg.Data, cfg.Device = m, "../examples/tickets/train.jsonl", "fakegpu"
	cfg.SeqLen, cfg.Steps, cfg.CheckpointEvery, cfg.LoRA.Dropout = 256, 1, 0, 0
	need := func(gc Checkpointing, attention bool) int64 {
		c := cfg
		c.GradCheckpointing, c.KeepAttention = gc, attention
		return planNeed(t, c)
	}
	keep, attn := need(CheckpointOff, false), need(CheckpointOn, true)
	if !(keep > attn && attn*10/9 > keep) {
		t.Fatalf("keeping every layer's activations plans %d bytes, their attention side %d: the cases below want a tenth between", keep, attn)
	}
	db := runsDB(t)
	defer func(f func() bool) { train.DeviceKeepsActivations = f }(train.DeviceKeepsActivations)
	for i, c := range []struct {
		free      int64
		recompute bool
		attention bool
		says      string
		capped    bool // keep_attention: true, auto's ceiling
		noKeep    bool // the device does not keep them all (its gate: DISTILL_CUDA_KEEP=0)
	}{
		{keep * 10 / 9, false, false, "keeping every layer's activations", false, false},
		{attn * 10 / 9, true, true, "keeping each layer's attention side", false, false}, // keeping all would fit without the margin
		{attn, true, false, "recomputing every layer's activations", false, false},       // the attention side too
		{keep * 10 / 9, true, true, "keeping each layer's attention side", true, false},
		{keep * 10 / 9, true, true, "keeping each layer's attention side", false, true},
	} {
		fakeFree.Store(c.free + 8) // the ninth is rounded down
		train.DeviceKeepsActivations = func() bool { return !c.noKeep }
		run := cfg
		run.KeepAttention = c.capped
		var log strings.Builder
		job := &TrainJob{Cfg: run, ID: fmt.Sprint("auto", i), Dir: filepath.Join(t.TempDir(), "auto"), DB: db, Log: &log}
		if err := job.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		if job.net.Checkpoint != c.recompute || job.net.KeepAttention != c.attention || !strings.Contains(log.String(), "grad_checkpointing auto: "+c.says) {
			t.Errorf("%d bytes free: recomputes %v, attention kept %v, want %v, %v; log:\n%s", c.free, job.net.Checkpoint, job.net.KeepAttention, c.recompute, c.attention, log.String())
		}
		var saved RunConfig
		if err := readRunConfig(filepath.Join(job.Dir, "config.yaml"), &saved); err != nil {
			t.Fatal(err)
		}
		if saved.GradCheckpointing.Recomputes() != c.recompute || saved.GradCheckpointing == CheckpointAuto || saved.KeepAttention != c.attention {
			t.Errorf("%d bytes free: config.yaml records grad_checkpointing %q, keep_attention %v", c.free, saved.GradCheckpointing, saved.KeepAttention)
		}
		if rec := recordedConfig(t, db, job.ID); rec.GradCheckpointing != saved.GradCheckpointing || rec.KeepAttention != saved.KeepAttention {
			t.Errorf("%d bytes free: the run's record says grad_checkpointing %q, keep_attention %v; config.yaml %q, %v", c.free,
				rec.GradCheckpointing, rec.KeepAttention, saved.GradCheckpointing, saved.KeepAttention)
		}
	}
}

// grad_checkpointing: auto on the CPU keeps every layer's activations when
// what they add to recomputing them is at most half the available memory,
// else recomputes; it says which and records it.
func TestCPURunPicksActivationsWhenAuto(t *testing.T) {
	m := tinyModel(t)
	cfg := defaultRunConfig("sft")
	cfg.Model, cfg.Data, cfg.Device = m, "../examples/tickets/train.jsonl", "cpu"
	cfg.SeqLen, cfg.Steps, cfg.CheckpointEvery, cfg.LoRA.Dropout = 256, 1, 0, 0
	plan := func(gc Checkpointing) int64 {
		c := cfg
		c.GradCheckpointing = gc
		var w Workstation
		p, err := w.PlanRun(c)
		if err != nil {
			t.Fatal(err)
		}
		return p.Activations + p.Workspace
	}
	extra := plan(CheckpointOff) - plan(CheckpointOn)
	if extra <= 0 {
		t.Fatalf("keeping the activations plans %d bytes more than recomputing them", extra)
	}
	defer func(f func() int64) { hostAvailable = f }(hostAvailable)
	db := runsDB(t)
	for _, c := range []struct {
		avail     int64
		recompute bool
	}{{2 * extra, false}, {2*extra - 2, true}, {0, true}} {
		hostAvailable = func() int64 { return c.avail }
		var log strings.Builder
		job := &TrainJob{Cfg: cfg, ID: fmt.Sprint("cpuauto", c.avail), Dir: filepath.Join(t.TempDir(), "auto"), DB: db, Log: &log}
		if err := job.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		says := map[bool]string{true: "recomputing every layer's", false: "keeping every layer's"}[c.recompute]
		if job.net.Checkpoint != c.recompute || !strings.Contains(log.String(), "grad_checkpointing auto: "+says) {
			t.Errorf("%d bytes available: recomputes %v, want %v; log:\n%s", c.avail, job.net.Checkpoint, c.recompute, log.String())
		}
		var saved RunConfig
		if err := readRunConfig(filepath.Join(job.Dir, "config.yaml"), &saved); err != nil {
			t.Fatal(err)
		}
		if saved.GradCheckpointing != map[bool]Checkpointing{true: CheckpointOn, false: CheckpointOff}[c.recompute] {
			t.Errorf("%d bytes available: config.yaml records grad_checkpointing %q", c.avail, saved.GradCheckpointing)
		}
		if rec := recordedConfig(t, db, job.ID); rec.GradCheckpointing != saved.GradCheckpointing {
			t.Errorf("%d bytes available: the run's record says grad_checkpointing %q, config.yaml %q", c.avail, rec.GradCheckpointing, saved.GradCheckpointing)
		}
	}
}

// A run whose steps took to recomputing mid-run (the device filled up)
// records it in config.yaml at the next checkpoint, so a resume starts
// that way; one that holds its activations as recorded writes nothing.
func TestRecordShedWritesTheConfig(t *testing.T) {
	dir := t.TempDir()
	cfg := defaultRunConfig("sft")
	cfg.GradCheckpointing = CheckpointOff
	j := &TrainJob{Cfg: cfg, Dir: dir, net: &train.Net{Checkpoint: false}}
	path := filepath.Join(dir, "config.yaml")
	if err := j.recordShed(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err == nil {
		t.Error("config.yaml written though nothing changed")
	}
	j.net.Checkpoint = true
	if err := j.recordShed(); err != nil {
		t.Fatal(err)
	}
	var saved RunConfig
	if err := readRunConfig(path, &saved); err != nil || saved.GradCheckpointing != CheckpointOn {
		t.Errorf("after shedding: grad_checkpointing %q recorded, %v", saved.GradCheckpointing, err)
	}
}

// recordedConfig is run id's config as its database record holds it.
func recordedConfig(t *testing.T, db *store.DB, id string) RunConfig {
	t.Helper()
	r, err := db.GetRun(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	var c RunConfig
	if err := json.Unmarshal([]byte(r.Config), &c); err != nil {
		t.Fatalf("run %s's recorded config: %v", id, err)
	}
	return c
}

// cgroupRoom finds the tightest memory limit over the process's cgroup
// and those above it (v2) or its hierarchy's (v1), less usage without the
// reclaimable inactive file pages; no limit anywhere is not ok, and a full
// cgroup leaves 1 byte, not the 0 that means unknown.
func TestCgroupRoom(t *testing.T) {
	const G = int64(1) << 30
	for _, c := range []struct {
		name  string
		self  string
		files map[string]string
		room  int64
		ok    bool
	}{
		{"v2 nested, the parent tighter", "0::/a/b\n", map[string]string{
			"a/b/memory.max": fmt.Sprint(8 * G), "a/b/memory.current": fmt.Sprint(3 * G), "a/b/memory.stat": fmt.Sprintf("anon 5\ninactive_file %d\n", G),
			"a/memory.max": fmt.Sprint(5 * G), "a/memory.current": fmt.Sprint(3 * G),
		}, 2 * G, true},
		{"v2 own limit, page cache reclaimable", "0::/a\n", map[string]string{
			"a/memory.max": fmt.Sprint(8 * G), "a/memory.current": fmt.Sprint(8 * G), "a/memory.stat": fmt.Sprintf("inactive_file %d\n", 6*G),
		}, 6 * G, true},
		{"v2 full", "0::/a\n", map[string]string{"a/memory.max": fmt.Sprint(8 * G), "a/memory.current": fmt.Sprint(8 * G)}, 1, true},
		{"v2 no limit", "0::/a\n", map[string]string{"a/memory.max": "max", "a/memory.current": fmt.Sprint(G)}, 0, false},
		{"v1", "4:memory:/x\n0::/\n", map[string]string{
			"memory/x/memory.usage_in_bytes": fmt.Sprint(5 * G), "memory/x/memory.stat": fmt.Sprintf("cache 9\nhierarchical_memory_limit %d\ntotal_inactive_file %d\n", 4*G, 2*G),
		}, G, true},
		{"v1 no limit", "4:memory:/x\n", map[string]string{
			"memory/x/memory.usage_in_bytes": "1", "memory/x/memory.stat": "hierarchical_memory_limit 9223372036854771712\n",
		}, 0, false},
		{"no cgroups", "", map[string]string{}, 0, false},
	} {
		root := t.TempDir()
		for name, v := range c.files {
			path := filepath.Join(root, name)
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(v+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if room, ok := cgroupRoom(root, c.self); room != c.room || ok != c.ok {
			t.Errorf("%s: room %d ok %v, want %d %v", c.name, room, ok, c.room, c.ok)
		}
	}
}
