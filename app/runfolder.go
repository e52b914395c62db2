package app

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"distill/store"
)

// runFiles are the entries a run writes in its folder: all that `runs rm`
// deletes there, and all a folder may hold to be trained into.
var runFiles = []string{"config.yaml", "checkpoints", "adapter", "model", "log.jsonl", heldOutFile, "eval"}

// checkRunFolderFree refuses an --out that is not the run's to write: a
// file, a folder holding anything a run does not write (the user's own
// files, the training data), and one holding what a run leaves to lose —
// checkpoints, a trained adapter or model. A folder left by a run that
// failed before its first checkpoint (a config.yaml and a log) may be
// trained into again.
func checkRunFolderFree(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) && strings.Contains(pe.Err.Error(), "not a directory") {
			return fmt.Errorf("--out %s is a file: give a folder for the run", dir)
		}
		return err
	}
	var foreign []string
	for _, e := range entries {
		if !isRunFile(e.Name()) {
			foreign = append(foreign, e.Name())
		}
	}
	if len(foreign) > 0 {
		return fmt.Errorf("--out %s holds files a run does not write (%s): a run's folder is its own; choose a new or empty --out", dir, strings.Join(first(foreign, 3), ", "))
	}
	for _, name := range []string{"checkpoints", "adapter", "model"} {
		p := filepath.Join(dir, name)
		st, err := os.Stat(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if st.IsDir() {
			if entries, err := os.ReadDir(p); err == nil && len(entries) == 0 {
				continue // an empty checkpoints folder: a run that never checkpointed
			}
		}
		return fmt.Errorf("%s holds a run already (%s): choose another --out, or continue it with `distill train --resume %s`", dir, name, dir)
	}
	return nil
}

// isRunFile says a run wrote the folder entry name: one of runFiles, or
// what an atomic save of one leaves when a crash cuts it short
// (".adapter.tmp-123", ".adapter.old-123", "val.jsonl.tmp").
func isRunFile(name string) bool {
	for _, f := range runFiles {
		if name == f || name == f+".tmp" || strings.HasPrefix(name, "."+f+".tmp-") || strings.HasPrefix(name, "."+f+".old-") {
			return true
		}
	}
	return false
}

// removeRunFolder deletes what a run wrote in dir, then dir itself if
// nothing else is left: never files the run did not write.
func removeRunFolder(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		if isRunFile(e.Name()) {
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		if entries, rerr := os.ReadDir(dir); rerr == nil && len(entries) > 0 {
			return nil // other files: they stay, and so does the folder
		}
		return err
	}
	return nil
}

func first(s []string, n int) []string {
	if len(s) > n {
		return append(slices.Clone(s[:n]), "…")
	}
	return s
}

// checkDataOutside refuses data files inside the run's folder: the run
// writes its own files there (its held-out rows as val.jsonl), and
// `runs rm` deletes them.
func (c *RunConfig) checkDataOutside(dir string) error {
	for _, p := range c.dataFiles() {
		if within(dir, p) {
			return fmt.Errorf("data file %s is inside --out %s: the run writes its own files there; keep data elsewhere", p, dir)
		}
	}
	return nil
}

// within says path p is dir or inside it (both made absolute).
func within(dir, p string) bool {
	rel, err := filepath.Rel(absPath(dir), absPath(p))
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// absPaths makes the config's file paths absolute, as the database keeps
// them: config.yaml then names the same files from any working directory
// (a resume started elsewhere).
func (c *RunConfig) absPaths() {
	for _, p := range []*string{&c.Model, &c.Data, &c.Val, &c.Schema, &c.KD.Teacher, &c.KD.Traces} {
		if *p != "" {
			*p = absPath(*p)
		}
	}
}

// absPath is p made absolute for the run database, which other processes
// read from other directories (p itself when that fails).
func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// withSavedCheckpoints adds to the recorded checkpoints those saved under
// dir/checkpoints that the database did not record (it was busy): a
// resume finds every checkpoint on disk. Sorted by step.
func withSavedCheckpoints(cps []store.Checkpoint, runID, dir string) []store.Checkpoint {
	have := map[int]bool{}
	for _, c := range cps {
		have[c.Step] = true
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "checkpoints"))
	for _, e := range entries {
		var step int
		if _, err := fmt.Sscanf(e.Name(), "step-%d", &step); err != nil || !e.IsDir() || have[step] || strings.Contains(e.Name(), ".") {
			continue
		}
		cps = append(cps, store.Checkpoint{RunID: runID, Step: step, Path: filepath.Join(dir, "checkpoints", e.Name())})
	}
	slices.SortFunc(cps, func(a, b store.Checkpoint) int { return a.Step - b.Step })
	return cps
}
