package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

// Write replaces a file's contents whole, leaves no temporary file behind,
// and fails without touching the target when the folder is missing.
func TestWrite(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "config.yaml")
	for _, s := range []string{"first: 1\n", "second: 22\n"} {
		if err := Write(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(p); err != nil || string(b) != s {
			t.Fatalf("read back %q, %v; want %q", b, err, s)
		}
	}
	if st, err := os.Stat(p); err != nil || st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, %v", st.Mode(), err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("the folder holds %d entries, want the file alone", len(entries))
	}
	if err := Write(filepath.Join(dir, "missing", "x"), []byte("x"), 0o644); err == nil {
		t.Error("a write into a missing folder: no error")
	}
}
