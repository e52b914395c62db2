package app

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// --type takes llama-quantize's file types by their names, in either case,
// and says which types exist when given another.
func TestGGUFTypeFlag(t *testing.T) {
	dir := tinyModel(t)
	out := t.TempDir()
	for _, typ := range []string{"q4_k_m", "Q6_K"} {
		path := filepath.Join(out, typ+".gguf")
		code, stdout, stderr := run("gguf", "--model", dir, "--out", path, "--type", typ)
		if code != 0 {
			t.Fatalf("--type %s: %s", typ, stderr)
		}
		if want := "(" + strings.ToLower(typ) + ")"; !strings.Contains(stdout, want) {
			t.Errorf("--type %s: %q does not say %s", typ, stdout, want)
		}
		if _, err := os.Stat(path); err != nil {
			t.Error(err)
		}
	}
	path := filepath.Join(out, "q4_0.gguf")
	code, _, stderr := run("gguf", "--model", dir, "--out", path, "--type", "q4_0")
	if code == 0 || !strings.Contains(stderr, "--type") || !strings.Contains(stderr, `"q4_0"`) || !strings.Contains(stderr, "q4_k_m") || !strings.Contains(stderr, "auto") {
		t.Errorf("--type q4_0: exit %d, %q", code, stderr)
	}
	if _, err := os.Stat(path); err == nil {
		t.Error("a refused --type wrote a file")
	}
	// The adapter alone is written at f32: another --type is refused.
	code, _, stderr = run("gguf", "--model", dir, "--adapter", dir, "--adapter-only", "--out", path, "--type", "q4_k_m")
	if code == 0 || !strings.Contains(stderr, "--adapter-only writes the adapter at f32") {
		t.Errorf("--adapter-only --type q4_k_m: exit %d, %q", code, stderr)
	}
}
