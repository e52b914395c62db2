package app

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"distill/app/hub/hubtest"
)

// distill pull against a hub serving a real (tiny) model folder: the
// folder arrives byte for byte, loads, and answers as the original does.
func TestPullCLI(t *testing.T) {
	src := tinyModel(t)
	files := map[string][]byte{}
	lfs := map[string]bool{}
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = b
		lfs[e.Name()] = len(b) > 100_000
	}
	h := hubtest.New("acme/tiny-chat", "89abcdef0123456789abcdef0123456789abcdef", files, lfs)
	defer h.Close()
	h.Token = "hf_test"
	t.Setenv("HF_TOKEN", "hf_test")
	t.Setenv("HF_ENDPOINT", h.API.URL)

	t.Chdir(t.TempDir())
	// --dry-run lists the files and fetches nothing.
	code, out, stderr := run("pull", "acme/tiny-chat", "--dry-run")
	if code != 0 || !strings.Contains(out, "model.safetensors") || !strings.Contains(out, fmt.Sprintf("%d files", len(files))) {
		t.Errorf("--dry-run: %d %q %q", code, out, stderr)
	}
	if _, err := os.Stat("models"); err == nil {
		t.Error("--dry-run wrote models/")
	}
	code, out, stderr = run("pull", "acme/tiny-chat")
	if code != 0 {
		t.Fatalf("pull: %s", stderr)
	}
	// Off a terminal, one line per fetched file.
	for name, b := range files {
		if want := fmt.Sprintf("  %s  %.1f MB\n", name, float64(len(b))/1e6); strings.Count(stderr, want) != 1 {
			t.Errorf("stderr lacks one %q:\n%s", want, stderr)
		}
	}
	dir := filepath.Join("models", "tiny-chat")
	for name, want := range files {
		if got, err := os.ReadFile(filepath.Join(dir, name)); err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: %d bytes, %v", name, len(got), err)
		}
	}
	for _, w := range []string{"pulled acme/tiny-chat at 89abcdef0123 into models/tiny-chat", "Qwen3ForCausalLM", "chat template: yes"} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	ids := "9707,11,1879,315"
	_, a, _ := run("score", "--model", src, "--ids", ids, "--json")
	_, b, _ := run("score", "--model", dir, "--ids", ids, "--json")
	if a == "" || a != b {
		t.Errorf("the pulled model scores %q, the original %q", b, a)
	}

	// Again: up to date, nothing fetched.
	before := len(h.Log())
	if code, out, stderr := run("pull", "acme/tiny-chat@89abcdef0123456789abcdef0123456789abcdef", "--out", dir); code != 0 || !strings.Contains(out, "already") {
		t.Errorf("second pull: %d %q %q", code, out, stderr)
	}
	if n := len(h.Log()) - before; n != 1 {
		t.Errorf("second pull made %d requests, want the one listing", n)
	}
	// No token: a clear refusal, exit 1, nothing created.
	t.Setenv("HF_TOKEN", "")
	t.Setenv("HF_HOME", t.TempDir())
	code, _, stderr = run("pull", "--out", "other", "acme/tiny-chat")
	if code != 1 || !strings.Contains(stderr, "HF_TOKEN") {
		t.Errorf("without a token: %d %q", code, stderr)
	}
	if _, err := os.Stat("other"); err == nil {
		t.Error("a refused pull created its folder")
	}
	// The token huggingface-cli login saved is huggingface.co's: read, but
	// not sent to a mirror unless asked.
	os.WriteFile(filepath.Join(os.Getenv("HF_HOME"), "token"), []byte("hf_test\n"), 0o600)
	if got := savedToken(); got != "hf_test" {
		t.Errorf("saved token %q", got)
	}
	if code, _, stderr := run("pull", "acme/tiny-chat", "--out", "other"); code != 1 || !strings.Contains(stderr, "HF_TOKEN") {
		t.Errorf("the saved token went to a mirror: %d %q", code, stderr)
	}
	// Flags before and after the repository; --token sends one.
	if code, _, stderr := run("pull", "--out", "other", "acme/tiny-chat", "--token", "hf_test"); code != 0 {
		t.Errorf("flags around the repository: %s", stderr)
	}
	// No repository, or two: usage, exit 2.
	if code, _, stderr := run("pull", "--out", "x"); code != 2 || !strings.Contains(stderr, "name the repository") {
		t.Errorf("no repository: %d %q", code, stderr)
	}
	if code, _, _ := run("pull", "acme/a", "acme/b"); code != 2 {
		t.Errorf("two repositories: exit %d", code)
	}
	// A hub that is not there: where to look.
	if code, _, stderr := run("pull", "acme/x", "--endpoint", "http://127.0.0.1:1"); code != 1 || !strings.Contains(stderr, "cannot reach the hub") {
		t.Errorf("no hub: %d %q", code, stderr)
	}
}

// The Launch form offers pulled models, not a pull in progress or a
// folder that holds no model.
func TestModelFoldersSkipsPartialPulls(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"qwen", "qwen-next.partial", "notes", ".hidden"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
		if d != "notes" {
			os.WriteFile(filepath.Join(root, d, "config.json"), []byte("{}"), 0o644)
		}
	}
	got := (&Workstation{}).ModelFolders(root)
	if len(got) != 1 || got[0] != filepath.Join(root, "qwen") {
		t.Errorf("ModelFolders = %v", got)
	}
}

// The workstation's pull (the Launch form's ctrl+p) against a hub: progress
// then the loaded folder; and a refusal carried to the end message.
func TestWorkstationPullModel(t *testing.T) {
	files := map[string][]byte{}
	src := tinyModel(t)
	entries, _ := os.ReadDir(src)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = b
	}
	h := hubtest.New("acme/tiny-chat", "89abcdef0123456789abcdef0123456789abcdef", files, map[string]bool{"model.safetensors": true})
	defer h.Close()
	t.Setenv("HF_ENDPOINT", h.API.URL)
	t.Setenv("HF_TOKEN", "")
	t.Setenv("HF_HOME", t.TempDir())
	root := t.TempDir()
	var last PullProgress
	n := 0
	for p := range (&Workstation{}).PullModel(context.Background(), "acme/tiny-chat", root) {
		last = p
		n++
	}
	if !last.Finished || last.Err != nil || last.Dir != filepath.Join(root, "tiny-chat") || last.Commit != h.Commit {
		t.Fatalf("last message %+v after %d", last, n)
	}
	if got := (&Workstation{}).ModelFolders(root); len(got) != 1 || got[0] != last.Dir {
		t.Errorf("ModelFolders after the pull: %v", got)
	}
	h.Token = "hf_needed"
	for p := range (&Workstation{}).PullModel(context.Background(), "acme/tiny-chat@main", t.TempDir()) {
		last = p
	}
	if !last.Finished || last.Err == nil || !strings.Contains(last.Err.Error(), "HF_TOKEN") {
		t.Errorf("refused pull ended with %+v", last)
	}
}

func TestLooksLikeRepo(t *testing.T) {
	for s, want := range map[string]bool{"Qwen/Qwen2.5-0.5B-Instruct": true, "acme/x@v1.0": true, "models/demo": false,
		"/abs/path": false, "./x/y": false, "a/b/c": false, "demo": false, "../x": false} {
		if got := LooksLikeRepo(s); got != want {
			t.Errorf("LooksLikeRepo(%q) = %v", s, got)
		}
	}
}
