package app

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
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
