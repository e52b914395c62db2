package lora

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"distill/core/atomicfile"
)

// tempDirFor makes a hidden, uniquely named folder beside dir (same file
// system, so renaming it to dir is atomic), creating dir's parent if needed.
func tempDirFor(dir string) (string, error) {
	parent, base := filepath.Split(filepath.Clean(dir))
	if parent == "" {
		parent = "."
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(parent, "."+base+".tmp-")
	if err != nil {
		return "", err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		os.RemoveAll(tmp)
		return "", err
	}
	return tmp, nil
}

// writeFileSync writes b to path and flushes it to disk.
func writeFileSync(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// checkEmptyOrAbsent refuses an existing dir that holds anything.
func checkEmptyOrAbsent(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(entries) > 0 {
		return fmt.Errorf("output folder %s is not empty (holds %s): remove it or choose another", dir, entries[0].Name())
	}
	return nil
}

// replaceDir makes the complete folder tmp appear at dir. If dir does not
// exist this is one rename. Otherwise, with carry, dir's plain files that tmp
// lacks are linked (or copied) into tmp first; without carry dir must be
// empty. Then dir is renamed aside, tmp renamed to dir, and the old folder
// removed.
func replaceDir(tmp, dir string, carry bool) error {
	dir = filepath.Clean(dir)
	parent := filepath.Dir(dir)
	st, err := os.Lstat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := atomicfile.SyncDir(tmp); err != nil { // tmp's entries on disk before it takes dir's name
			return err
		}
		if err := os.Rename(tmp, dir); err != nil {
			return err
		}
		return atomicfile.SyncDir(parent)
	case err != nil:
		return err
	case !st.IsDir():
		return fmt.Errorf("%s exists and is not a folder", dir)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		dst := filepath.Join(tmp, e.Name())
		if _, err := os.Lstat(dst); err == nil {
			continue // replaced by the new contents
		}
		if !carry {
			return fmt.Errorf("output folder %s is not empty (holds %s): remove it or choose another", dir, e.Name())
		}
		if !e.Type().IsRegular() {
			return fmt.Errorf("%s holds %s, which is not a plain file: save to a folder of its own", dir, e.Name())
		}
		if err := linkOrCopy(filepath.Join(dir, e.Name()), dst); err != nil {
			return err
		}
	}
	if err := atomicfile.SyncDir(tmp); err != nil { // tmp's entries (the carried ones too) on disk first
		return err
	}
	// A fresh unused name (os.Rename will not replace even an empty folder).
	old, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".old-")
	if err != nil {
		return err
	}
	if err := os.Remove(old); err != nil {
		return err
	}
	if err := os.Rename(dir, old); err != nil {
		return err
	}
	if err := os.Rename(tmp, dir); err != nil {
		if back := os.Rename(old, dir); back != nil {
			return fmt.Errorf("%w (and restoring the previous folder from %s failed: %v)", err, old, back)
		}
		return err
	}
	if err := atomicfile.SyncDir(parent); err != nil {
		return err
	}
	return os.RemoveAll(old)
}

func linkOrCopy(src, dst string) error {
	if os.Link(src, dst) == nil {
		return nil
	}
	return copyFile(src, dst)
}

// copyFile copies src to dst and flushes dst to disk.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
