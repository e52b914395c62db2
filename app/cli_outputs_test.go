package app

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOutputsNeverReplaceUserFiles: commands that write a folder or file
// refuse one that exists rather than replace it — demo-model would put
// random weights over a trained model — unless told to (--force).
func TestOutputsNeverReplaceUserFiles(t *testing.T) {
	m := tinyModel(t)
	before, err := os.ReadFile(filepath.Join(m, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	tok := filepath.Join(npmModels, "tokenizer-qwen3", "models")
	code, _, stderr := run("demo-model", "--out", m, "--tokenizer", tok)
	if code == 0 || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "--force") {
		t.Fatalf("demo-model over a model: exit %d, %q", code, stderr)
	}
	if after, _ := os.ReadFile(filepath.Join(m, "model.safetensors")); string(after) != string(before) {
		t.Fatal("demo-model replaced the model it refused")
	}
	if code, _, stderr := run("demo-model", "--out", m, "--tokenizer", tok, "--force"); code != 0 {
		t.Fatalf("demo-model --force: %s", stderr)
	}
}
