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

// download fetches f to path through path+".part", resuming a part file
// an earlier run left, retrying transient failures from where they
// stopped, and checking the whole file's hash before it takes its name.
// progress is told the file's bytes on disk as they grow.
func (c *Client) download(ctx context.Context, r *Repo, f File, path string, progress func(done int64)) error {
	part := path + ".part"
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	wait := c.RetryWait
	for attempt := 0; ; attempt++ {
		err := c.fetch(ctx, r, f, part, progress)
		if err == nil {
			break
		}
		var he *Error
		retry := ctx.Err() == nil && !errors.Is(err, errCorrupt) && (!errors.As(err, &he) || he.temporary())
		if !retry || attempt >= c.Retries {
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
	return os.Rename(part, path)
}

var errCorrupt = errors.New("corrupt")

// fetch appends to part what it lacks of f; a nil error means part has all
// of f's bytes.
func (c *Client) fetch(ctx context.Context, r *Repo, f File, part string, progress func(int64)) error {
	out, err := os.OpenFile(part, os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()
	st, err := out.Stat()
	if err != nil {
		return err
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
	switch {
	case resp.StatusCode == http.StatusPartialContent && have > 0:
		if start, ok := rangeStart(resp.Header.Get("Content-Range")); !ok || start != have {
			return fmt.Errorf("%s: asked for bytes from %d, the server sent %q", u, have, resp.Header.Get("Content-Range"))
		}
	case resp.StatusCode == http.StatusOK:
		have = 0 // the server ignored the range: start over
	default:
		return fmt.Errorf("%s: unexpected HTTP %d", u, resp.StatusCode)
	}
	if err := out.Truncate(have); err != nil {
		return err
	}
	if _, err := out.Seek(have, io.SeekStart); err != nil {
		return err
	}
	progress(have)
	w := &progressWriter{ctx: ctx, w: out, done: have, report: progress}
	n, err := io.Copy(w, io.LimitReader(resp.Body, f.Size-have+1))
	switch {
	case err != nil:
		return fmt.Errorf("%s: %w", f.Name, err)
	case have+n > f.Size:
		out.Truncate(0)
		return fmt.Errorf("%s: the server sent more than the %d bytes the hub lists: %w", f.Name, f.Size, errCorrupt)
	case have+n < f.Size:
		return fmt.Errorf("%s: the transfer stopped at %d of %d bytes", f.Name, have+n, f.Size)
	}
	return out.Sync()
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

// progressWriter reports the bytes written and stops the copy as soon as
// ctx is cancelled (bytes already buffered would otherwise still flow).
type progressWriter struct {
	ctx    context.Context
	w      io.Writer
	done   int64
	report func(int64)
}

func (p *progressWriter) Write(b []byte) (int, error) {
	if err := p.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := p.w.Write(b)
	p.done += int64(n)
	p.report(p.done)
	return n, err
}

// checkHash compares path's content with the hash the hub lists: an LFS
// file's sha256, or git's blob id (sha1 of "blob <size>\0" and the bytes).
func checkHash(path string, f File) error {
	in, err := os.Open(path)
	if err != nil {
		return err
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
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != strings.ToLower(want) {
		return fmt.Errorf("%s: %s %s, but the hub lists %s: the download is corrupt and was deleted; pull again (if it recurs, the mirror serves a damaged copy): %w", f.Name, kind, got, want, errCorrupt)
	}
	return nil
}
