package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// DefaultFiles are the top-level files a pull takes: what distill reads
// (config, weights as safetensors, tokenizer, chat template) and the
// licence and card that say what the model may be used for. PyTorch .bin
// weights, GGUF and ONNX copies and subfolders (Llama's original/) stay.
var DefaultFiles = []string{"*.json", "*.safetensors", "*.jinja", "README.md", "LICENSE*", "NOTICE*", "USE_POLICY*"}

// ManifestName is the record a pull leaves in the folder: where it came
// from, at which commit, and each file's hash.
const ManifestName = ".distill-pull.json"

// Manifest is that record.
type Manifest struct {
	Repo     string         `json:"repo"`
	Revision string         `json:"revision"`
	Commit   string         `json:"commit"`
	Endpoint string         `json:"endpoint"`
	Pulled   time.Time      `json:"pulled"`
	Files    []ManifestFile `json:"files"`
}

// ManifestFile is one pulled file and the hash it was checked against.
type ManifestFile struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256,omitempty"`
	BlobID string `json:"blob_id,omitempty"`
}

// PullOptions says what to pull where.
type PullOptions struct {
	Repo, Revision string
	Out            string   // the model folder to create
	Include        []string // more globs (path.Match, matched against the whole name) on top of DefaultFiles
	// Progress, when set, is told of every file's progress (it is called
	// often: throttle any drawing).
	Progress func(Progress)
}

// Progress is where a pull stands.
type Progress struct {
	File              string
	FileDone, FileLen int64
	Done, Total       int64 // over the files being fetched now
	Skipped           int   // files already complete from an earlier run
}

// ErrUpToDate says Out already holds the repository at that commit.
var ErrUpToDate = errors.New("already pulled at this commit")

// Pull fetches the repository's files at the revision into opt.Out,
// through opt.Out+".partial" (kept on failure or Ctrl-C so the same
// command resumes), and renames it into place when every file is there
// and checked. It refuses an existing Out unless that holds the same
// commit (ErrUpToDate), and a repository with no safetensors weights.
func (c *Client) Pull(ctx context.Context, opt PullOptions) (*Repo, error) {
	r, err := c.Info(ctx, opt.Repo, opt.Revision)
	if err != nil {
		return nil, err
	}
	if old, err := ReadManifest(opt.Out); err == nil {
		if old.Repo == r.ID && old.Commit == r.Commit {
			return r, ErrUpToDate
		}
		return nil, fmt.Errorf("%s holds %s at commit %.12s; the revision is now %.12s: remove it or choose another --out", opt.Out, old.Repo, old.Commit, r.Commit)
	} else if _, serr := os.Stat(opt.Out); serr == nil {
		return nil, fmt.Errorf("%s exists and was not pulled here: remove it or choose another --out", opt.Out)
	}
	files, err := selectFiles(r, opt.Include)
	if err != nil {
		return nil, err
	}

	staging := strings.TrimRight(opt.Out, "/") + ".partial"
	// A partial pull of another commit may hold same-sized files with other
	// bytes: start over.
	if old, err := ReadManifest(staging); err == nil && (old.Repo != r.ID || old.Commit != r.Commit) {
		if err := os.RemoveAll(staging); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(staging, 0o755); err != nil {
		return nil, err
	}
	man := Manifest{Repo: r.ID, Revision: opt.Revision, Commit: r.Commit, Endpoint: c.Endpoint}
	for _, f := range files {
		man.Files = append(man.Files, ManifestFile{Name: f.Name, Size: f.Size, SHA256: f.SHA256, BlobID: f.BlobID})
	}
	if err := writeManifest(staging, man); err != nil {
		return nil, err
	}

	// A file already in staging passed its hash check before it took its
	// name; the rest are fetched, smallest first, after a disk-space check.
	var todo []File
	skipped := 0
	var total int64
	for _, f := range files {
		if st, err := os.Stat(filepath.Join(staging, f.Name)); err == nil && st.Size() == f.Size {
			skipped++
			continue
		}
		todo = append(todo, f)
		total += f.Size
	}
	if err := checkSpace(staging, total); err != nil {
		return nil, err
	}
	var done int64
	for _, f := range todo {
		report := func(n int64) {
			if opt.Progress != nil {
				opt.Progress(Progress{File: f.Name, FileDone: n, FileLen: f.Size, Done: done + n, Total: total, Skipped: skipped})
			}
		}
		if err := c.download(ctx, r, f, filepath.Join(staging, f.Name), report); err != nil {
			return nil, err
		}
		done += f.Size
	}

	man.Pulled = time.Now().UTC()
	if err := writeManifest(staging, man); err != nil {
		return nil, err
	}
	if dir := filepath.Dir(opt.Out); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
	}
	return r, os.Rename(staging, opt.Out)
}

// selectFiles picks the top-level files the defaults or include name, and
// refuses a repository distill could not load.
func selectFiles(r *Repo, include []string) ([]File, error) {
	var out []File
	weights, bins := false, false
	for _, f := range r.Files {
		if err := checkName(f.Name); err != nil {
			return nil, err
		}
		top := !strings.Contains(f.Name, "/")
		keep := false
		for _, g := range DefaultFiles {
			if ok, _ := path.Match(g, f.Name); ok && top {
				keep = true
			}
		}
		for _, g := range include {
			if ok, err := path.Match(g, f.Name); err != nil {
				return nil, fmt.Errorf("--include %q: %v", g, err)
			} else if ok {
				keep = true
			}
		}
		if !keep {
			bins = bins || top && strings.HasSuffix(f.Name, ".bin")
			continue
		}
		weights = weights || top && strings.HasSuffix(f.Name, ".safetensors")
		out = append(out, f)
	}
	hasConfig := false
	for _, f := range out {
		hasConfig = hasConfig || f.Name == "config.json"
	}
	switch {
	case !hasConfig:
		return nil, fmt.Errorf("%s at %.12s has no config.json: not a transformers model repository", r.ID, r.Commit)
	case !weights && bins:
		return nil, fmt.Errorf("%s at %.12s has PyTorch .bin weights only; distill reads safetensors (look for a safetensors revision or convert them)", r.ID, r.Commit)
	case !weights:
		return nil, fmt.Errorf("%s at %.12s has no .safetensors weights", r.ID, r.Commit)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Size < out[j].Size })
	return out, nil
}

// checkName refuses a listed name that would land outside the folder.
func checkName(name string) error {
	if name == "" || strings.HasPrefix(name, "/") || strings.Contains(name, "\\") || name == ManifestName {
		return fmt.Errorf("the hub lists a file named %q, which cannot be saved safely", name)
	}
	for _, s := range strings.Split(name, "/") {
		if s == "" || s == "." || s == ".." {
			return fmt.Errorf("the hub lists a file named %q, which cannot be saved safely", name)
		}
	}
	return nil
}

// checkSpace refuses to start what the disk cannot hold.
func checkSpace(dir string, need int64) error {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return nil // unknown: let the writes say
	}
	if free := int64(st.Bavail) * int64(st.Bsize); free < need {
		return fmt.Errorf("%s: the pull needs %.2f GB more and the disk has %.2f GB free", dir, float64(need)/1e9, float64(free)/1e9)
	}
	return nil
}

// ReadManifest reads the record a pull left in dir.
func ReadManifest(dir string) (*Manifest, error) {
	b, err := os.ReadFile(filepath.Join(dir, ManifestName))
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %v", filepath.Join(dir, ManifestName), err)
	}
	return &m, nil
}

func writeManifest(dir string, m Manifest) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, ManifestName+".tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, ManifestName))
}
