package hub_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"distill/app/hub"
	"distill/app/hub/hubtest"
)

const commit = "0123456789abcdef0123456789abcdef01234567"

func randomBytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, 1))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// newHub serves a repository shaped like a real one: weights and tokenizer
// in LFS, small files in git, and files a pull must leave behind.
func newHub(t *testing.T) *hubtest.Hub {
	files := map[string][]byte{
		"config.json":                      []byte(`{"architectures": ["Qwen2ForCausalLM"]}`),
		"generation_config.json":           []byte(`{"eos_token_id": 2}`),
		"tokenizer.json":                   randomBytes(300_000, 2),
		"model-00001-of-00002.safetensors": randomBytes(3<<20, 3),
		"model-00002-of-00002.safetensors": randomBytes(1<<20+17, 4),
		"model.safetensors.index.json":     []byte(`{"weight_map": {}}`),
		"README.md":                        []byte("# card\n"),
		"LICENSE":                          []byte("Apache-2.0\n"),
		"pytorch_model.bin":                randomBytes(1000, 5),
		"model.gguf":                       randomBytes(1000, 6),
		"original/consolidated.00.pth":     randomBytes(1000, 7),
		".gitattributes":                   []byte("*.safetensors filter=lfs\n"),
	}
	lfs := map[string]bool{"tokenizer.json": true, "model-00001-of-00002.safetensors": true, "model-00002-of-00002.safetensors": true, "pytorch_model.bin": true, "model.gguf": true, "original/consolidated.00.pth": true}
	h := hubtest.New("acme/tiny-chat", commit, files, lfs)
	t.Cleanup(h.Close)
	return h
}

func client(h *hubtest.Hub, token string) *hub.Client {
	c := hub.NewClient(h.API.URL, token)
	c.RetryWait = time.Millisecond
	return c
}

var pulled = []string{"config.json", "generation_config.json", "tokenizer.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "model.safetensors.index.json", "README.md", "LICENSE"}

func checkFolder(t *testing.T, h *hubtest.Hub, out string) {
	t.Helper()
	var names []string
	filepath.WalkDir(out, func(p string, d os.DirEntry, err error) error {
		if rel, _ := filepath.Rel(out, p); err == nil && rel != "." {
			if d.IsDir() {
				rel += "/" // a folder (none belongs in the defaults' pull)
			}
			names = append(names, filepath.ToSlash(rel))
		}
		return nil
	})
	want := append([]string{hub.ManifestName}, pulled...)
	slices.Sort(names)
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Errorf("folder holds %v, want %v", names, want)
	}
	for _, n := range pulled {
		got, _ := os.ReadFile(filepath.Join(out, n))
		if !bytes.Equal(got, h.Files[n]) {
			t.Errorf("%s: %d bytes differ from the hub's %d", n, len(got), len(h.Files[n]))
		}
	}
	m, err := hub.ReadManifest(out)
	if err != nil {
		t.Fatal(err)
	}
	if m.Repo != "acme/tiny-chat" || m.Commit != h.Commit || len(m.Files) != len(pulled) || m.Pulled.IsZero() {
		t.Errorf("manifest %+v", m)
	}
	for _, leftover := range []string{out + ".partial", out + ".lock"} {
		if _, err := os.Stat(leftover); err == nil {
			t.Errorf("%s is left behind", leftover)
		}
	}
}

// partFile is where a pull keeps the unfinished bytes of an LFS file.
func partFile(out string, content []byte) string {
	return filepath.Join(out+".partial", ".distill-parts", fmt.Sprintf("sha256-%x", sha256.Sum256(content)))
}

// fetched lists the byte ranges asked of name since request n of the log,
// where its bytes are served (the CDN for an LFS file).
func fetched(h *hubtest.Hub, n int, name string) []string {
	var out []string
	for _, r := range h.Log()[n:] {
		if h.LFS[name] && strings.Contains(r, "file="+name) || !h.LFS[name] && strings.HasSuffix(strings.Fields(r)[2], "/"+name) {
			f := strings.Fields(r)
			out = append(out, f[len(f)-1])
		}
	}
	return out
}

func TestPull(t *testing.T) {
	h := newHub(t)
	h.Token = "hf_secret"
	out := filepath.Join(t.TempDir(), "models", "tiny-chat")
	var last hub.Progress
	_, err := client(h, "hf_secret").Pull(context.Background(), hub.PullOptions{Repo: "acme/tiny-chat", Revision: "main", Out: out,
		Progress: func(p hub.Progress) { last = p }})
	if err != nil {
		t.Fatal(err)
	}
	checkFolder(t, h, out)
	if last.Done != last.Total || last.Total < 4<<20 {
		t.Errorf("last progress %+v", last)
	}
	// The token goes to the hub, never to the CDN the weights come from
	// (which would refuse the request).
	cdn := 0
	for _, r := range h.Log() {
		if strings.HasPrefix(r, "cdn") {
			cdn++
			if strings.Contains(r, "auth") {
				t.Errorf("the CDN saw the token: %s", r)
			}
		} else if !strings.Contains(r, "auth") {
			t.Errorf("the hub got no token: %s", r)
		}
		for _, skip := range []string{".bin", ".gguf", "original/", ".gitattributes"} {
			if strings.Contains(r, skip) {
				t.Errorf("fetched %s", r)
			}
		}
	}
	if cdn != 3 {
		t.Errorf("%d CDN requests, want 3 (the LFS files pulled)", cdn)
	}
	// Again: nothing to do.
	if _, err := client(h, "hf_secret").Pull(context.Background(), hub.PullOptions{Repo: "acme/tiny-chat", Revision: commit, Out: out}); !errors.Is(err, hub.ErrUpToDate) {
		t.Errorf("second pull: %v", err)
	}
	// --include takes a subfolder's file too.
	out2 := filepath.Join(t.TempDir(), "with-original")
	if _, err := client(h, "hf_secret").Pull(context.Background(), hub.PullOptions{Repo: "acme/tiny-chat", Revision: "main", Out: out2, Include: []string{"original/*"}}); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(out2, "original", "consolidated.00.pth")); !bytes.Equal(got, h.Files["original/consolidated.00.pth"]) {
		t.Errorf("--include original/*: %d bytes", len(got))
	}
}

// A transfer cut mid-file resumes from the byte it reached: within a run
// (retries) and across runs (the .partial folder).
func TestPullResumes(t *testing.T) {
	h := newHub(t)
	big := "model-00001-of-00002.safetensors"
	h.DropAfter(big, 1<<20)
	out := filepath.Join(t.TempDir(), "m")
	if _, err := client(h, "").Pull(context.Background(), hub.PullOptions{Repo: "acme/tiny-chat", Revision: "main", Out: out}); err != nil {
		t.Fatal(err)
	}
	checkFolder(t, h, out)
	if !slices.ContainsFunc(h.Log(), func(r string) bool { return strings.Contains(r, big) && strings.HasSuffix(r, "bytes=1048576-") }) {
		t.Errorf("no request resumed at byte 1048576: %q", h.Log())
	}

	// Without retries the first run fails, keeps what it had, and the
	// second run asks only for the rest.
	h2 := newHub(t)
	h2.DropAfter(big, 2<<20)
	out = filepath.Join(t.TempDir(), "m")
	c := client(h2, "")
	c.Retries = 0
	c.Parallel = 1 // the cut finds every smaller file checked
	if _, err := c.Pull(context.Background(), hub.PullOptions{Repo: "acme/tiny-chat", Revision: "main", Out: out}); err == nil || !strings.Contains(err.Error(), big) {
		t.Fatalf("cut transfer without retries: %v", err)
	}
	if _, err := os.Stat(out); err == nil {
		t.Fatal("a failed pull created the model folder")
	}
	if st, err := os.Stat(partFile(out, h2.Files[big])); err != nil || st.Size() != 2<<20 {
		t.Fatalf("partial file: %v, %v", st, err)
	}
	before := len(h2.Log())
	if _, err := c.Pull(context.Background(), hub.PullOptions{Repo: "acme/tiny-chat", Revision: "main", Out: out}); err != nil {
		t.Fatal(err)
	}
	checkFolder(t, h2, out)
	if got := fetched(h2, before, big); !slices.Equal(got, []string{"bytes=2097152-"}) {
		t.Errorf("the second run asked for %q of %s, want the rest from byte 2097152", got, big)
	}
	for _, r := range h2.Log()[before:] {
		if strings.HasPrefix(r, "cdn") && !strings.Contains(r, big) {
			t.Errorf("the second run fetched a finished file again: %s", r)
		}
	}

	// A server that ignores ranges: the file starts over and still lands.
	h3 := newHub(t)
	h3.NoRange = true
	h3.DropAfter(big, 1<<20)
	out = filepath.Join(t.TempDir(), "m")
	if _, err := client(h3, "").Pull(context.Background(), hub.PullOptions{Repo: "acme/tiny-chat", Revision: "main", Out: out}); err != nil {
		t.Fatal(err)
	}
	checkFolder(t, h3, out)
}

func TestPullRejectsCorruptFile(t *testing.T) {
	h := newHub(t)
	h.Corrupt("model-00002-of-00002.safetensors")
	out := filepath.Join(t.TempDir(), "m")
	_, err := client(h, "").Pull(context.Background(), hub.PullOptions{Repo: "acme/tiny-chat", Revision: "main", Out: out})
	if err == nil || !strings.Contains(err.Error(), "model-00002-of-00002.safetensors: sha256") || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("corrupt LFS file: %v", err)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a corrupt pull created the model folder")
	}
	if _, err := os.Stat(filepath.Join(out+".partial", "model-00002-of-00002.safetensors.part")); err == nil {
		t.Error("the corrupt bytes were kept")
	}
	// A git file is checked by its blob id.
	h2 := newHub(t)
	h2.Corrupt("config.json")
	_, err = client(h2, "").Pull(context.Background(), hub.PullOptions{Repo: "acme/tiny-chat", Revision: "main", Out: filepath.Join(t.TempDir(), "m")})
	if err == nil || !strings.Contains(err.Error(), "config.json: git blob id") {
		t.Fatalf("corrupt git file: %v", err)
	}
}

func TestPullRefuses(t *testing.T) {
	h := newHub(t)
	h.Token = "hf_secret"
	pull := func(c *hub.Client, repo, rev, out string) error {
		_, err := c.Pull(context.Background(), hub.PullOptions{Repo: repo, Revision: rev, Out: out})
		return err
	}
	dir := t.TempDir()
	for _, tc := range []struct {
		name, token, repo, rev string
		want                   string
	}{
		{"no token", "", "acme/tiny-chat", "main", "HF_TOKEN"},
		{"wrong repo", "hf_secret", "acme/nope", "main", "no such repository"},
		{"wrong revision", "hf_secret", "acme/tiny-chat", "v9", "no such branch, tag or commit"},
		{"bad repo id", "hf_secret", "../etc", "main", "expected owner/name"},
	} {
		err := pull(client(h, tc.token), tc.repo, tc.rev, filepath.Join(dir, tc.name))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want it to say %q", tc.name, err, tc.want)
		}
	}
	// A folder that is there already and not this pull's.
	os.MkdirAll(filepath.Join(dir, "taken"), 0o755)
	if err := pull(client(h, "hf_secret"), "acme/tiny-chat", "main", filepath.Join(dir, "taken")); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("existing folder: %v", err)
	}
	// A repository with PyTorch weights only.
	h2 := newHub(t)
	for n := range h2.Files {
		if strings.HasSuffix(n, ".safetensors") {
			delete(h2.Files, n)
		}
	}
	if err := pull(client(h2, ""), "acme/tiny-chat", "main", filepath.Join(dir, "bin")); err == nil || !strings.Contains(err.Error(), ".bin weights only") {
		t.Errorf("bin-only repository: %v", err)
	}
	// A listed file named like the pull's own record.
	h4 := newHub(t)
	h4.Files[hub.ManifestName] = []byte("{}")
	if err := pull(client(h4, ""), "acme/tiny-chat", "main", filepath.Join(dir, "man")); err == nil || !strings.Contains(err.Error(), "cannot be saved safely") {
		t.Errorf("a listed %s: %v", hub.ManifestName, err)
	}
	// A listed name that would escape the folder.
	h3 := newHub(t)
	h3.Files["../escape.json"] = []byte("{}")
	_, err := client(h3, "").Pull(context.Background(), hub.PullOptions{Repo: "acme/tiny-chat", Revision: "main", Out: filepath.Join(dir, "esc"), Include: []string{"../*"}})
	if err == nil || !strings.Contains(err.Error(), "cannot be saved safely") {
		t.Errorf("escaping name: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "escape.json")); err == nil {
		t.Error("a file escaped the folder")
	}
}

// Ctrl-C stops the pull and keeps what arrived for the next run.
func TestPullCancelKeepsPartial(t *testing.T) {
	h := newHub(t)
	out := filepath.Join(t.TempDir(), "m")
	ctx, cancel := context.WithCancel(context.Background())
	_, err := client(h, "").Pull(ctx, hub.PullOptions{Repo: "acme/tiny-chat", Revision: "main", Out: out,
		Progress: func(p hub.Progress) {
			if p.File == "model-00001-of-00002.safetensors" && p.FileDone > 1<<20 {
				cancel()
			}
		}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled pull: %v", err)
	}
	st, err := os.Stat(partFile(out, h.Files["model-00001-of-00002.safetensors"]))
	if err != nil || st.Size() < 1<<20 {
		t.Fatalf("partial file after cancel: %v, %v", st, err)
	}
	before := len(h.Log())
	if _, err := client(h, "").Pull(context.Background(), hub.PullOptions{Repo: "acme/tiny-chat", Revision: "main", Out: out}); err != nil {
		t.Fatal(err)
	}
	checkFolder(t, h, out)
	if got := fetched(h, before, "model-00001-of-00002.safetensors"); !slices.Equal(got, []string{fmt.Sprintf("bytes=%d-", st.Size())}) {
		t.Errorf("after Ctrl-C the next run asked for %q", got)
	}
}

// TestPullSkipsMistralConsolidated: Mistral's repositories hold the
// weights twice at the top level — the transformers shards with their
// index, and consolidated.safetensors in Mistral's own layout, which
// distill never reads. The pull leaves the second copy (14.5 GB on
// Mistral-7B-Instruct-v0.3) unless --include names it.
func TestPullSkipsMistralConsolidated(t *testing.T) {
	files := map[string][]byte{
		"config.json":                      []byte(`{"architectures": ["MistralForCausalLM"]}`),
		"params.json":                      []byte(`{"dim": 4096}`),
		"model-00001-of-00002.safetensors": randomBytes(3<<10, 3),
		"model-00002-of-00002.safetensors": randomBytes(1<<10, 4),
		"model.safetensors.index.json":     []byte(`{"weight_map": {}}`),
		"consolidated.safetensors":         randomBytes(4<<10, 5),
	}
	h := hubtest.New("mistralai/Mistral-7B-Instruct-v0.3", commit, files, map[string]bool{"consolidated.safetensors": true})
	defer h.Close()
	c := hub.NewClient(h.API.URL, "")
	for _, include := range [][]string{nil, {"consolidated.safetensors"}} {
		_, fs, err := c.Plan(context.Background(), hub.PullOptions{Repo: "mistralai/Mistral-7B-Instruct-v0.3", Revision: "main", Out: t.TempDir() + "/m", Include: include})
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, f := range fs {
			names = append(names, f.Name)
		}
		if got := slices.Contains(names, "consolidated.safetensors"); got != (include != nil) || !slices.Contains(names, "model-00001-of-00002.safetensors") {
			t.Errorf("--include %v: the pull takes %v", include, names)
		}
	}
}
