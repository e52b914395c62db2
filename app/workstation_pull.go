package app

import (
	"context"
	"errors"
	"io"
	"path"
	"path/filepath"
	"strings"
	"time"

	"distill/app/hub"
)

// PullProgress is a model pull seen from the workstation: where it stands
// while it runs, then one last message with Finished set and the folder
// (Dir) or the error.
type PullProgress struct {
	Repo        string
	File        string
	Done, Total int64
	Finished    bool
	Dir         string
	Commit      string
	Err         error
}

// LooksLikeRepo says whether s names a hub repository (owner/name, with an
// optional @revision) rather than a folder here.
func LooksLikeRepo(s string) bool {
	repo, _, _ := strings.Cut(s, "@")
	owner, name, ok := strings.Cut(repo, "/")
	return ok && owner != "" && name != "" && !strings.ContainsAny(name, "/\\") &&
		!strings.HasPrefix(owner, ".") && owner != "models" && !strings.HasPrefix(s, "/")
}

// PullModel fetches spec (owner/name[@revision]) into root/<name> as
// `distill pull` does, from $HF_ENDPOINT (else huggingface.co) with
// $HF_TOKEN or the saved login token. Progress comes about ten times a
// second; the channel closes after the Finished message. Cancelling ctx
// stops the pull and keeps what arrived for the next one.
func (w *Workstation) PullModel(ctx context.Context, spec, root string) <-chan PullProgress {
	ch := make(chan PullProgress, 1)
	repo, _, _ := strings.Cut(spec, "@")
	c, opt := newPull(spec, filepath.Join(root, path.Base(repo)), "", "", nil)
	go func() {
		defer close(ch)
		var last time.Time
		opt.Progress = func(p hub.Progress) {
			if time.Since(last) < 100*time.Millisecond {
				return
			}
			last = time.Now()
			select { // a slow screen skips frames, never the pull
			case ch <- PullProgress{Repo: repo, File: p.File, Done: p.Done, Total: p.Total}:
			default:
			}
		}
		r, err := c.Pull(ctx, opt)
		end := PullProgress{Repo: repo, Finished: true, Dir: opt.Out}
		switch {
		case errors.Is(err, hub.ErrUpToDate):
			end.Commit = r.Commit
		case err != nil:
			end.Err = err
		default:
			end.Commit = r.Commit
			end.Err = describeModel(io.Discard, opt.Out)
		}
		ch <- end
	}()
	return ch
}
