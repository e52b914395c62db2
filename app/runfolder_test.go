package app

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"distill/store"
)

// TestRemoveRunFolderKeepsOtherFiles: `runs rm` deletes what the run wrote
// (and what a crash mid-save left), never the user's files beside it; the
// folder goes only once empty.
func TestRemoveRunFolderKeepsOtherFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "thesis")
	for _, p := range []string{"checkpoints/step-000001/state.json", "adapter/adapter_config.json", ".adapter.tmp-42/x", "config.yaml", "log.jsonl", "val.jsonl", "eval/r.json", "notes.txt", "mymodel/config.json"} {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, p), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := removeRunFolder(dir); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	var left []string
	for _, e := range entries {
		left = append(left, e.Name())
	}
	if !slices.Equal(left, []string{"mymodel", "notes.txt"}) {
		t.Errorf("left %v, want the user's mymodel and notes.txt", left)
	}
	os.RemoveAll(filepath.Join(dir, "mymodel"))
	os.Remove(filepath.Join(dir, "notes.txt"))
	os.MkdirAll(filepath.Join(dir, "checkpoints"), 0o755)
	if err := removeRunFolder(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("an emptied run folder stays: %v", err)
	}
}

// TestRunRecordsOutliveItsDirectory: the run database holds absolute
// paths (other processes read it from other directories), the best
// validation figure is the best, not the last, and a resume finds a
// checkpoint the busy database did not record.
func TestRunRecordsOutliveItsDirectory(t *testing.T) {
	cfg, db := sftRun(t)
	cfg.Steps, cfg.CheckpointEvery = 2, 1
	t.Chdir(t.TempDir())
	job := &TrainJob{Cfg: cfg, ID: "rel", Dir: filepath.Join("runs", "rel"), DB: db}
	if err := job.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r, err := db.GetRun(ctx, "rel")
	if err != nil || !filepath.IsAbs(r.Dir) || !filepath.IsAbs(r.BaseModel) || !filepath.IsAbs(r.Dataset) {
		t.Fatalf("run dir %q, base %q, data %q (%v): want absolute", r.Dir, r.BaseModel, r.Dataset, err)
	}
	cps, _ := db.Checkpoints(ctx, "rel")
	as, _ := db.ListAdapters(ctx)
	if len(cps) == 0 || !filepath.IsAbs(cps[0].Path) || len(as) != 1 || !filepath.IsAbs(as[0].Path) || !filepath.IsAbs(as[0].BaseModel) {
		t.Errorf("checkpoints %v, adapters %v: want absolute paths", cps, as)
	}
	for _, v := range []float64{10.9, 7.6, 7.5, 7.7} {
		job.recordBest("val_loss", v, true)
	}
	if r, _ := db.GetRun(ctx, "rel"); r.BestMetric == nil || *r.BestMetric != 7.5 {
		t.Errorf("best val_loss %v, want 7.5", r.BestMetric)
	}
	os.MkdirAll(filepath.Join(job.Dir, "checkpoints", "step-000007"), 0o755)
	os.MkdirAll(filepath.Join(job.Dir, "checkpoints", "step-000003.old"), 0o755)
	got := withSavedCheckpoints(cps, "rel", job.Dir)
	if n := len(got); n != len(cps)+1 || got[n-1].Step != 7 {
		t.Errorf("checkpoints with the unrecorded one: %+v", got)
	}
}

// A run that failed before its first checkpoint leaves its config and log;
// a new run given the same --out takes the folder over: the old record
// forgets it, so `runs rm` of the old run keeps the new run's files, and
// the new run's log holds its own steps only. config.yaml names the files
// absolutely, so a resume from elsewhere finds them.
func TestNewRunTakesOverAFailedRunsFolder(t *testing.T) {
	cfg, db := sftRun(t)
	cfg.Steps, cfg.CheckpointEvery = 2, 1
	t.Chdir(t.TempDir())
	ctx := context.Background()
	dir := "out"
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "config.yaml"), []byte("method: sft\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "log.jsonl"), []byte(`{"step":1,"loss":9}`+"\n"+`{"step":2,"loss":9}`+"\n"+`{"step":3,"loss":9}`+"\n"), 0o644)
	if err := db.CreateRun(ctx, store.Run{ID: "old", Method: "sft", Status: store.StatusFailed, Dir: absPath(dir)}); err != nil {
		t.Fatal(err)
	}
	job := &TrainJob{Cfg: cfg, ID: "new", Dir: dir, DB: db}
	if err := job.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if losses := logLosses(t, dir); len(losses) != 2 || losses[0] == 9 {
		t.Errorf("log.jsonl losses %v: want the new run's two steps only", losses)
	}
	if err := deleteRun(ctx, db, "old"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "adapter", "adapter_model.safetensors")); err != nil {
		t.Fatalf("runs rm of the old run deleted the new run's adapter: %v", err)
	}
	var saved RunConfig
	if err := readRunConfig(filepath.Join(dir, "config.yaml"), &saved); err != nil {
		t.Fatal(err)
	}
	if !filepath.IsAbs(saved.Model) || !filepath.IsAbs(saved.Data) {
		t.Errorf("config.yaml model %q data %q: want absolute paths", saved.Model, saved.Data)
	}
}

// Two runs into one folder at once would write each other's checkpoints:
// the folder is locked while a run trains into it.
func TestRunFolderIsLocked(t *testing.T) {
	dir := t.TempDir()
	unlock, err := lockRunFolder(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lockRunFolder(dir); err == nil || !strings.Contains(err.Error(), "another distill process is training into this folder") {
		t.Fatalf("second lock: %v", err)
	}
	unlock()
	again, err := lockRunFolder(dir)
	if err != nil {
		t.Fatalf("after unlock: %v", err)
	}
	again()
}

// keep_checkpoints keeps the newest N checkpoints, on disk and in the
// database; a resume still finds the newest.
func TestKeepCheckpoints(t *testing.T) {
	cfg, db := sftRun(t)
	cfg.Steps, cfg.CheckpointEvery, cfg.KeepCheckpoints = 4, 1, 2
	job := &TrainJob{Cfg: cfg, ID: "keep", Dir: filepath.Join(t.TempDir(), "keep"), DB: db}
	if err := job.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(filepath.Join(job.Dir, "checkpoints"))
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	cps, _ := db.Checkpoints(context.Background(), "keep")
	var steps []int
	for _, c := range cps {
		steps = append(steps, c.Step)
	}
	if !slices.Equal(names, []string{"step-000003", "step-000004"}) || !slices.Equal(steps, []int{3, 4}) {
		t.Errorf("checkpoints on disk %v, in the database %v: want steps 3 and 4", names, steps)
	}
}
