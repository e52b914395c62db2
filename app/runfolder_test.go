package app

import (
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
