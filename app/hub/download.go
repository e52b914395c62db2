package hub

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

var (
	errCorrupt = errors.New("corrupt")
	errStalled = errors.New("stalled")
)

// localError is a failure of this machine (disk full, no permission):
// retrying the transfer cannot mend it.
type localError struct{ err error }

func (e *localError) Error() string { return e.err.Error() }
func (e *localError) Unwrap() error { return e.err }

func local(err error) error {
	if err == nil {
		return nil
	}
	return &localError{err}
}

// retryable says whether another attempt may succeed: network failures,
// short or stalled transfers and the hub's temporary refusals, not a
// corrupt file, a refusal that will stand, or a local failure.
func retryable(err error) bool {
	var he *Error
	var le *localError
	switch {
	case errors.Is(err, errCorrupt), errors.As(err, &le):
		return false
	case errors.As(err, &he):
		return he.temporary()
	}
	return true
}

// download fetches f into staging: its bytes go to a part file named by
// its hash (partPath), resumed from where an earlier attempt or run
// stopped, and take f's name only once the whole file matches the hash the
// hub lists. progress is told the file's bytes on disk as they grow.
func (c *Client) download(ctx context.Context, r *Repo, f File, staging string, progress func(done int64)) error {
	part := partPath(staging, f)
	if err := os.MkdirAll(filepath.Dir(part), 0o755); err != nil {
		return local(err)
	}
	wait := c.RetryWait
	for attempt := 0; ; attempt++ {
		err := c.fetch(ctx, r, f, part, progress)
		if err == nil {
			break
		}
		if ctx.Err() != nil || !retryable(err) || attempt >= c.Retries {
			return err
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return ctx.Err()
		}
		wait *= 2
	}
	if err := checkHash(part, f); err != nil {
		os.Remove(part)
		return err
	}
	final := filepath.Join(staging, filepath.FromSlash(f.Name))
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return local(err)
	}
	return local(os.Rename(part, final))
}

// partsDir holds the part files, out of the repository's own names.
const partsDir = ".distill-parts"

// partPath names f's part file by the hash it must match, so a part is
// resumed only toward the same bytes (across commits too).
func partPath(staging string, f File) string {
	key := "sha256-" + f.SHA256
	if f.SHA256 == "" {
		key = "git-" + f.BlobID
	}
	return filepath.Join(staging, partsDir, key)
}

// fetch appends to part what it lacks of f; a nil error means part has all
// of f's bytes. An attempt that receives nothing for StallTimeout is
// abandoned (and retried).
func (c *Client) fetch(ctx context.Context, r *Repo, f File, part string, progress func(int64)) error {
	actx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	watchdog := time.AfterFunc(c.StallTimeout, func() { cancel(errStalled) })
	defer watchdog.Stop()
	err := c.fetchAttempt(actx, r, f, part, progress, func() { watchdog.Reset(c.StallTimeout) })
	if err != nil && errors.Is(context.Cause(actx), errStalled) && ctx.Err() == nil {
		return fmt.Errorf("%s: no data for %s: %w", f.Name, c.StallTimeout, errStalled)
	}
	return err
}

func (c *Client) fetchAttempt(ctx context.Context, r *Repo, f File, part string, progress func(int64), alive func()) error {
	out, err := os.OpenFile(part, os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return local(err)
	}
	defer out.Close()
	st, err := out.Stat()
	if err != nil {
		return local(err)
	}
	have := st.Size()
	if have > f.Size {
		have = 0
	}
	if have == f.Size {
		return nil
	}
	u := c.fileURL(r.ID, r.Commit, f.Name)
	hdr := http.Header{}
	if have > 0 {
		hdr.Set("Range", fmt.Sprintf("bytes=%d-", have))
	}
	resp, err := c.get(ctx, u, hdr)
	var he *Error
	if errors.As(err, &he) && he.Status == http.StatusRequestedRangeNotSatisfiable {
		have, hdr = 0, nil
		resp, err = c.get(ctx, u, nil)
	}
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	alive()
	switch {
	case resp.StatusCode == http.StatusPartialContent && have > 0:
		if start, ok := rangeStart(resp.Header.Get("Content-Range")); !ok || start != have {
			// Start over rather than trust the server's arithmetic.
			out.Truncate(0)
			return fmt.Errorf("%s: asked for bytes from %d, the server sent %q; starting the file over", f.Name, have, resp.Header.Get("Content-Range"))
		}
	case resp.StatusCode == http.StatusOK:
		have = 0 // the server ignored the range: start over
	default:
		return fmt.Errorf("%s: unexpected HTTP %d from %s", f.Name, resp.StatusCode, resp.Request.URL.Host)
	}
	if err := out.Truncate(have); err != nil {
		return local(err)
	}
	if _, err := out.Seek(have, io.SeekStart); err != nil {
		return local(err)
	}
	progress(have)
	w := &progressWriter{ctx: ctx, w: out, done: have, report: progress, alive: alive}
	n, err := io.Copy(w, io.LimitReader(resp.Body, f.Size-have+1))
	switch {
	case w.werr != nil:
		return local(fmt.Errorf("%s: %w", part, w.werr))
	case err != nil:
		return fmt.Errorf("%s: %w", f.Name, err)
	case have+n > f.Size:
		out.Truncate(0)
		return fmt.Errorf("%s: the server sent more than the %d bytes the hub lists: %w", f.Name, f.Size, errCorrupt)
	case have+n < f.Size:
		return fmt.Errorf("%s: the transfer stopped at %d of %d bytes", f.Name, have+n, f.Size)
	}
	return local(out.Sync())
}

func rangeStart(cr string) (int64, bool) {
	rest, ok := strings.CutPrefix(cr, "bytes ")
	if !ok {
		return 0, false
	}
	start, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(start, 10, 64)
	return n, err == nil
}

// progressWriter reports the bytes written, keeps the stall watchdog fed,
// and stops the copy as soon as ctx is cancelled (bytes already buffered
// would otherwise still flow).
type progressWriter struct {
	ctx    context.Context
	w      io.Writer
	done   int64
	report func(int64)
	alive  func()
	werr   error // the disk's error, as opposed to the network's
}

func (p *progressWriter) Write(b []byte) (int, error) {
	if err := p.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := p.w.Write(b)
	if err != nil {
		p.werr = err
	}
	p.done += int64(n)
	p.alive()
	p.report(p.done)
	return n, err
}

// checkHash compares path's content with the hash the hub lists: an LFS
// file's sha256, or git's blob id (sha1 of "blob <size>\0" and the bytes).
func checkHash(path string, f File) error {
	in, err := os.Open(path)
	if err != nil {
		return local(err)
	}
	defer in.Close()
	var h hash.Hash
	want, kind := f.SHA256, "sha256"
	if want != "" {
		h = sha256.New()
	} else {
		h = sha1.New()
		fmt.Fprintf(h, "blob %d\x00", f.Size)
		want, kind = f.BlobID, "git blob id"
	}
	if _, err := io.Copy(h, in); err != nil {
		return local(err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return fmt.Errorf("%s: %s %s, but the hub lists %s: the download is corrupt and was deleted; pull again (if it recurs, the hub serves a damaged copy): %w", f.Name, kind, got, want, errCorrupt)
	}
	return nil
}
