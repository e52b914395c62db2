package hub_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"distill/app/hub"
	"distill/app/hub/hubtest"
)

const big = "model-00001-of-00002.safetensors"

// pullUntil starts a pull in the background: reached closes at the first
// progress report when accepts, cancel stops the pull, done gives its
// result.
func pullUntil(c *hub.Client, out string, when func(hub.Progress) bool) (reached <-chan struct{}, cancel func(), done <-chan error) {
	ctx, cancel := context.WithCancel(context.Background())
	r, d := make(chan struct{}), make(chan error, 1)
	var once sync.Once
	go func() {
		_, err := c.Pull(ctx, hub.PullOptions{Repo: "acme/tiny-chat", Revision: "main", Out: out, Progress: func(p hub.Progress) {
			if when(p) {
				once.Do(func() { close(r) })
			}
		}})
		d <- err
	}()
	return r, cancel, d
}

func pullTo(c *hub.Client, out string, include ...string) error {
	_, err := c.Pull(context.Background(), hub.PullOptions{Repo: "acme/tiny-chat", Revision: "main", Out: out, Include: include})
	return err
}

// The hub moves to a new commit between two runs: a file whose hash is
// unchanged keeps its checked copy or its part file, one whose bytes
// changed (same size) is fetched anew.
func TestPullAcrossCommits(t *testing.T) {
	h := newHub(t)
	h.DropAfter(big, 1<<20)
	c := client(h, "")
	c.Retries = 0
	c.Parallel = 1 // smallest first, one at a time: the cut finds every other file checked
	out := filepath.Join(t.TempDir(), "m")
	if err := pullTo(c, out); err == nil {
		t.Fatal("the cut transfer did not fail without retries")
	}
	h.Commit = "fedcba9876543210fedcba9876543210fedcba98"
	cfg := []byte(`{"architectures": ["Qwen3ForCausalLM"]}`)[:len(h.Files["config.json"])]
	copy(cfg, `{"architectures": ["Llama`)
	h.Files["config.json"] = cfg
	before := len(h.Log())
	if err := pullTo(c, out); err != nil {
		t.Fatal(err)
	}
	checkFolder(t, h, out)
	if got := fetched(h, before, big); !slices.Equal(got, []string{"bytes=1048576-"}) {
		t.Errorf("the unchanged shard was asked for %q, want its rest", got)
	}
	if got := fetched(h, before, "tokenizer.json"); len(got) != 0 {
		t.Errorf("the unchanged, checked tokenizer was fetched again: %q", got)
	}
	if got := fetched(h, before, "config.json"); len(got) != 1 {
		t.Errorf("the changed config was fetched %d times", len(got))
	}
}

// A repository may list LICENSE and LICENSE.part; the pull's own part
// files live apart from its names.
func TestPullNameCollision(t *testing.T) {
	h := newHub(t)
	h.Files["LICENSE.part"] = []byte("part two of the licence\n")
	out := filepath.Join(t.TempDir(), "m")
	if err := pullTo(client(h, ""), out); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"LICENSE", "LICENSE.part"} {
		if got, _ := os.ReadFile(filepath.Join(out, n)); string(got) != string(h.Files[n]) {
			t.Errorf("%s: %q", n, got)
		}
	}
}

// A connection that goes silent is abandoned and resumed.
func TestPullStall(t *testing.T) {
	h := newHub(t)
	h.StallAfter(big, 1<<20)
	c := client(h, "")
	c.StallTimeout = 200 * time.Millisecond
	out := filepath.Join(t.TempDir(), "m")
	start := time.Now()
	if err := pullTo(c, out); err != nil {
		t.Fatal(err)
	}
	checkFolder(t, h, out)
	if got := fetched(h, 0, big); len(got) != 2 || got[1] != "bytes=1048576-" {
		t.Errorf("after the stall %s was asked for %q", big, got)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the stall held the pull for %s", d)
	}
}

// The hub's temporary refusals (503, 429) and a storage link's (403) are
// retried; a corrupt file, bytes past the listed size and a refusal that
// stands are not.
func TestPullRetries(t *testing.T) {
	h := newHub(t)
	h.Fail(big, 503, 429, 403)
	out := filepath.Join(t.TempDir(), "m")
	if err := pullTo(client(h, ""), out); err != nil {
		t.Fatal(err)
	}
	checkFolder(t, h, out)
	if n := len(fetched(h, 0, big)); n != 4 {
		t.Errorf("%d requests for %s, want 3 refused and 1 served", n, big)
	}

	for _, tc := range []struct {
		fault func(h *hubTest)
		name  string
		want  string
	}{
		{func(h *hubTest) { h.Corrupt(big) }, big, "corrupt"},
		{func(h *hubTest) { h.Extra(big) }, big, "more than"},
		{func(h *hubTest) { h.Fail("config.json", 404, 404, 404) }, "config.json", "HTTP 404"},
	} {
		h := newHub(t)
		tc.fault(h)
		err := pullTo(client(h, ""), filepath.Join(t.TempDir(), "m"))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.want, err, tc.want)
		}
		if n := len(fetched(h, 0, tc.name)); n != 1 {
			t.Errorf("%s: %d requests, want 1 (no retry)", tc.want, n)
		}
	}
}

type hubTest = hubtest.Hub

// A 416 to a resumed range, and a range answered from the wrong byte,
// start the file over (on a git file: the hub itself answers).
func TestPullRangeAnswers(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault func(h *hubTest)
	}{
		{"416", func(h *hubTest) { h.Fail("tokenizer.json", 0, 416) }},
		{"wrong start", func(h *hubTest) { h.WrongRange("tokenizer.json") }},
	} {
		h := newHub(t)
		h.LFS["tokenizer.json"] = false
		h.DropAfter("tokenizer.json", 1000)
		tc.fault(h)
		out := filepath.Join(t.TempDir(), "m")
		if err := pullTo(client(h, ""), out); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		checkFolder(t, h, out)
		if got := fetched(h, 0, "tokenizer.json"); len(got) < 3 || got[1] != "bytes=1000-" {
			t.Errorf("%s: tokenizer.json was asked for %q", tc.name, got)
		}
	}
}

// A part file toward bytes the hub no longer lists is deleted, not kept
// for ever.
func TestPullPrunesDeadParts(t *testing.T) {
	h := newHub(t)
	h.DropAfter(big, 1<<20)
	c := client(h, "")
	c.Retries = 0
	out := filepath.Join(t.TempDir(), "m")
	pullTo(c, out)
	old := partFile(out, h.Files[big])
	if _, err := os.Stat(old); err != nil {
		t.Fatal(err)
	}
	h.Commit = "fedcba9876543210fedcba9876543210fedcba98"
	h.Files[big] = randomBytes(len(h.Files[big]), 99)
	h.DropAfter(big, 1<<20)
	pullTo(c, out)
	if _, err := os.Stat(old); err == nil {
		t.Error("the part file of the old bytes is still there")
	}
	if _, err := os.Stat(partFile(out, h.Files[big])); err != nil {
		t.Errorf("the new bytes' part file: %v", err)
	}
}

// Whatever an earlier run left (another --include's part files and
// files) does not land in the model folder.
func TestPullLeavesNoLeftovers(t *testing.T) {
	h := newHub(t)
	h.Files["original/consolidated.00.pth"] = randomBytes(3000, 8)
	h.DropAfter("original/consolidated.00.pth", 500)
	c := client(h, "")
	c.Retries = 0
	out := filepath.Join(t.TempDir(), "m")
	if err := pullTo(c, out, "original/*"); err == nil {
		t.Fatal("the cut transfer did not fail")
	}
	if err := pullTo(c, out); err != nil {
		t.Fatal(err)
	}
	checkFolder(t, h, out) // walks every subfolder
}

// Files are fetched side by side: a larger file lands while a smaller
// one's connection hangs.
func TestPullParallel(t *testing.T) {
	h := newHub(t)
	small := "model-00002-of-00002.safetensors"
	h.StallAfter(small, 1000)
	out := filepath.Join(t.TempDir(), "m")
	landed, cancel, done := pullUntil(client(h, ""), out, func(p hub.Progress) bool { return p.File == big && p.FileDone == p.FileLen })
	select {
	case <-landed:
	case <-time.After(10 * time.Second):
		t.Error("the larger file did not arrive while the smaller one hung: files are fetched one at a time")
	}
	cancel()
	<-done
}

// A second pull into the same folder is refused while the first runs.
func TestPullLock(t *testing.T) {
	h := newHub(t)
	h.StallAfter(big, 1000)
	out := filepath.Join(t.TempDir(), "m")
	started, cancel, done := pullUntil(client(h, ""), out, func(p hub.Progress) bool { return p.File == big })
	<-started
	err := pullTo(client(h, ""), out)
	if err == nil || !strings.Contains(err.Error(), "another pull into") {
		t.Errorf("second pull: %v", err)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("first pull: %v", err)
	}
	if err := pullTo(client(h, ""), out); err != nil {
		t.Fatalf("after the first stopped: %v", err)
	}
	checkFolder(t, h, out)
}

// A folder already at the commit but without what --include asks for says
// so rather than "up to date".
func TestPullUpToDateNeedsTheFiles(t *testing.T) {
	h := newHub(t)
	out := filepath.Join(t.TempDir(), "m")
	if err := pullTo(client(h, ""), out); err != nil {
		t.Fatal(err)
	}
	err := pullTo(client(h, ""), out, "original/*")
	if err == nil || !strings.Contains(err.Error(), "without original/consolidated.00.pth") {
		t.Errorf("--include on a pulled folder: %v", err)
	}
}

// A token never travels in clear text off this machine, and a listing
// that is not the hub's shape is refused by name.
func TestPullRefusesUnsafeOrMalformed(t *testing.T) {
	_, err := hub.NewClient("http://models.example.com", "hf_secret").Info(context.Background(), "acme/x", "main")
	if err == nil || !strings.Contains(err.Error(), "clear text") {
		t.Errorf("token over http: %v", err)
	}
	for _, tc := range []struct{ listing, want string }{
		{`{"sha": "abc", "siblings": []}`, "40-digit"},
		{`{"sha": "0123456789abcdef0123456789abcdef01234567", "siblings": [{"rfilename": "a", "size": -5, "blobId": "0123456789abcdef0123456789abcdef01234567"}]}`, "size -5"},
		{`{"sha": "0123456789abcdef0123456789abcdef01234567", "siblings": [{"rfilename": "a", "size": 5, "lfs": {"size": 5}}]}`, "without a sha256"},
		{`{"sha": "0123456789abcdef0123456789abcdef01234567", "siblings": [{"rfilename": "a", "size": 5}]}`, "no git blob id"},
		{`not json`, "Hugging Face Hub endpoint"},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte(tc.listing)) }))
		_, err := hub.NewClient(srv.URL, "").Info(context.Background(), "acme/x", "main")
		srv.Close()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("listing %s: %v, want %q", tc.listing, err, tc.want)
		}
	}
}
