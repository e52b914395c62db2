package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
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

// Manifest is that record; in a pull's staging folder it also says which
// files have passed their hash check so far.
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
	Name     string `json:"name"`
	Size     int64  `json:"size"`
	SHA256   string `json:"sha256,omitempty"`
	BlobID   string `json:"blob_id,omitempty"`
	Verified bool   `json:"verified"`
}

func (m ManifestFile) same(f File) bool {
	return m.Name == f.Name && m.Size == f.Size && m.SHA256 == f.SHA256 && m.BlobID == f.BlobID
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
	Done, Total       int64 // over the files being fetched now, resumed bytes included
	Resumed           int64 // bytes that were already on disk when this run began
	Skipped           int   // files already checked by an earlier run
}

// ErrUpToDate says Out already holds the repository at that commit.
var ErrUpToDate = errors.New("already pulled at this commit")

// Pull fetches the repository's files at the revision into opt.Out
// through opt.Out+".partial", and renames that into place once every file
// has passed its hash check, holding nothing else. An interrupted pull
// (error, Ctrl-C) keeps the staging folder: the next one keeps each file
// whose check still holds for the listing and resumes each part file
// toward the same hash. It refuses an existing Out unless that holds the
// same commit with the files asked for (ErrUpToDate), a second pull into
// the same folder, and a repository with no safetensors weights.
func (c *Client) Pull(ctx context.Context, opt PullOptions) (*Repo, error) {
	r, err := c.Info(ctx, opt.Repo, opt.Revision)
	if err != nil {
		return nil, err
	}
	files, err := selectFiles(r, opt.Include)
	if err != nil {
		return nil, err
	}
	out := strings.TrimRight(opt.Out, "/")
	if dir := filepath.Dir(out); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
	}
	unlock, err := lock(out + ".lock")
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := upToDate(out, r, files); err != nil {
		if errors.Is(err, ErrUpToDate) {
			return r, err
		}
		return nil, err
	}

	staging := out + ".partial"
	man, err := prepareStaging(staging, r, files)
	if err != nil {
		return nil, err
	}
	man.Revision, man.Endpoint = opt.Revision, c.Endpoint
	if err := writeManifest(staging, man); err != nil {
		return nil, err
	}

	// The unchecked files, smallest first, after a disk-space check.
	var todo []int
	var total, resumed int64
	skipped := 0
	for i, f := range files {
		if man.Files[i].Verified {
			skipped++
			continue
		}
		todo = append(todo, i)
		total += f.Size
		if st, err := os.Stat(partPath(staging, f)); err == nil && st.Size() <= f.Size {
			resumed += st.Size()
		}
	}
	if err := checkSpace(staging, total-resumed); err != nil {
		return nil, err
	}
	report := func(p Progress) {
		if opt.Progress != nil {
			p.Total, p.Resumed, p.Skipped = total, resumed, skipped
			opt.Progress(p)
		}
	}
	if err := c.fetchAll(ctx, r, files, todo, staging, &man, report); err != nil {
		return nil, err
	}

	if err := keepOnly(staging, files, nil); err != nil {
		return nil, err
	}
	man.Pulled = time.Now().UTC()
	if err := writeManifest(staging, man); err != nil {
		return nil, err
	}
	if err := os.Rename(staging, out); err != nil {
		return nil, fmt.Errorf("every file is in %s, but it could not take its name: %v; move it to %s yourself", staging, err, out)
	}
	return r, nil
}

// fetchAll downloads the files todo names (indices into files, smallest
// first), Parallel at a time, marking each verified in the staging
// manifest as it passes its check. The first failure stops the rest and is
// the one returned.
func (c *Client) fetchAll(ctx context.Context, r *Repo, files []File, todo []int, staging string, man *Manifest, report func(Progress)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex // guards man, onDisk, done, failed and report's calls
		onDisk   = map[int]int64{}
		done     int64
		failed   error
		wg       sync.WaitGroup
		jobs     = make(chan int)
		parallel = max(1, min(c.Parallel, len(todo)))
	)
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				f := files[i]
				err := c.download(ctx, r, f, staging, func(n int64) {
					mu.Lock()
					defer mu.Unlock()
					done += n - onDisk[i]
					onDisk[i] = n
					report(Progress{File: f.Name, FileDone: n, FileLen: f.Size, Done: done})
				})
				mu.Lock()
				if err == nil {
					man.Files[i].Verified = true
					err = writeManifest(staging, *man)
				}
				if err != nil && failed == nil {
					failed = err
					cancel()
				}
				mu.Unlock()
			}
		}()
	}
feed:
	for _, i := range todo {
		select {
		case jobs <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	return failed
}

// Plan lists what Pull would fetch (the files selected at the revision's
// commit, smallest first) without writing anything.
func (c *Client) Plan(ctx context.Context, opt PullOptions) (*Repo, []File, error) {
	r, err := c.Info(ctx, opt.Repo, opt.Revision)
	if err != nil {
		return nil, nil, err
	}
	files, err := selectFiles(r, opt.Include)
	return r, files, err
}

// upToDate is nil when out does not exist, ErrUpToDate when it holds r's
// commit with every selected file, and otherwise says why out is in the
// way.
func upToDate(out string, r *Repo, files []File) error {
	old, err := ReadManifest(out)
	if err != nil {
		if _, serr := os.Stat(out); serr == nil {
			return fmt.Errorf("%s exists and was not pulled here: remove it or choose another --out", out)
		}
		return nil
	}
	if !strings.EqualFold(old.Repo, r.ID) || old.Commit != r.Commit {
		return fmt.Errorf("%s holds %s at commit %.12s; the revision is now %.12s: remove it or choose another --out", out, old.Repo, old.Commit, r.Commit)
	}
	have := map[string]bool{}
	for _, f := range old.Files {
		have[f.Name] = true
	}
	var missing []string
	for _, f := range files {
		if !have[f.Name] {
			missing = append(missing, f.Name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s holds %s at this commit without %s: pull into another --out (or remove it) to add them", out, r.ID, strings.Join(missing, ", "))
	}
	return ErrUpToDate
}

// prepareStaging makes the staging folder hold only what this listing can
// use: files an earlier run checked against the same hash (kept, marked
// verified) and part files of files still to fetch. A folder whose record
// cannot be read starts over.
func prepareStaging(staging string, r *Repo, files []File) (Manifest, error) {
	man := Manifest{Repo: r.ID, Commit: r.Commit}
	old, err := ReadManifest(staging)
	switch {
	case err == nil:
	case errors.Is(err, fs.ErrNotExist):
		old = &Manifest{}
	default:
		if err := os.RemoveAll(staging); err != nil {
			return man, err
		}
		old = &Manifest{}
	}
	checked := map[string]ManifestFile{}
	for _, f := range old.Files {
		if f.Verified {
			checked[f.Name] = f
		}
	}
	for _, f := range files {
		mf := ManifestFile{Name: f.Name, Size: f.Size, SHA256: f.SHA256, BlobID: f.BlobID}
		if c, ok := checked[f.Name]; ok && c.same(f) {
			st, err := os.Lstat(filepath.Join(staging, filepath.FromSlash(f.Name)))
			mf.Verified = err == nil && st.Mode().IsRegular() && st.Size() == f.Size
		}
		man.Files = append(man.Files, mf)
	}
	if err := os.MkdirAll(staging, 0o755); err != nil {
		return man, err
	}
	// Part files toward hashes this listing no longer has are dead.
	var keep, fetch []File
	for i, f := range files {
		if man.Files[i].Verified {
			keep = append(keep, f)
		} else {
			fetch = append(fetch, f)
		}
	}
	return man, keepOnly(staging, keep, fetch)
}

// keepOnly removes from staging every path but files, the manifest and
// the part files of parts (none: the part files' folder goes too).
func keepOnly(staging string, files, parts []File) error {
	want := map[string]bool{ManifestName: true}
	for _, f := range files {
		want[filepath.FromSlash(f.Name)] = true
		for d := filepath.Dir(filepath.FromSlash(f.Name)); d != "."; d = filepath.Dir(d) {
			want[d] = true
		}
	}
	for _, f := range parts {
		rel, _ := filepath.Rel(staging, partPath(staging, f))
		want[partsDir], want[rel] = true, true
	}
	var drop []string
	err := filepath.WalkDir(staging, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(staging, p)
		if rel == "." {
			return nil
		}
		if !want[rel] {
			drop = append(drop, p)
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, p := range drop {
		if err := os.RemoveAll(p); err != nil {
			return err
		}
	}
	return nil
}

// lock takes path as a lock file for the pull, so two pulls into one
// folder (two terminals, the CLI and the workstation) cannot interleave.
func lock(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("another pull into %s is running; wait for it, or stop it", strings.TrimSuffix(path, ".lock"))
	}
	return func() {
		os.Remove(path)
		f.Close()
	}, nil
}

// selectFiles picks the top-level files the defaults or include name, and
// refuses a repository distill could not load.
func selectFiles(r *Repo, include []string) ([]File, error) {
	var out []File
	weights, bins := false, false
	asked := map[string]bool{} // named by --include
	for _, f := range r.Files {
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
				keep, asked[f.Name] = true, true
			}
		}
		if !keep {
			bins = bins || top && strings.HasSuffix(f.Name, ".bin")
			continue
		}
		if err := checkName(f.Name); err != nil {
			return nil, err
		}
		weights = weights || top && strings.HasSuffix(f.Name, ".safetensors")
		out = append(out, f)
	}
	hasConfig, hfWeights := false, false
	for _, f := range out {
		hasConfig = hasConfig || f.Name == "config.json"
		hfWeights = hfWeights || f.Name == "model.safetensors" || f.Name == "model.safetensors.index.json"
	}
	if hfWeights { // Mistral's repositories hold the weights twice: their own consolidated layout is not read
		out = slices.DeleteFunc(out, func(f File) bool {
			ok, _ := path.Match("consolidated*.safetensors", f.Name)
			return ok && !asked[f.Name]
		})
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

// checkName refuses a listed name that would land outside the folder or
// on the pull's own files.
func checkName(name string) error {
	bad := name == "" || strings.HasPrefix(name, "/") || strings.Contains(name, "\\") ||
		name == ManifestName || name == ManifestName+".tmp" || name == partsDir || strings.HasPrefix(name, partsDir+"/")
	for _, s := range strings.Split(name, "/") {
		bad = bad || s == "" || s == "." || s == ".."
	}
	if bad {
		return fmt.Errorf("the hub lists a file named %q, which cannot be saved safely", name)
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
