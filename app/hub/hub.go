// Package hub pulls model repositories from a Hugging Face Hub endpoint —
// huggingface.co, or a mirror inside the building — into a plain HF model
// folder: the files distill reads, each checked against the hash the hub
// lists for it, resumed where a transfer stopped, and moved into place
// only when the whole set is there.
package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DefaultEndpoint is the public hub; HF_ENDPOINT names a mirror.
const DefaultEndpoint = "https://huggingface.co"

// Client talks to one hub endpoint.
type Client struct {
	Endpoint  string // scheme://host[/prefix], no trailing slash
	Token     string // sent as a bearer token to the endpoint (never to a redirect's other host)
	HTTP      *http.Client
	UserAgent string
	// Retries is how many times a failed transfer is resumed (network
	// errors, 5xx, 429) and RetryWait the first pause, doubled each time.
	Retries   int
	RetryWait time.Duration
	// StallTimeout abandons (and retries) an attempt that receives nothing
	// for this long: a connection gone silent would otherwise hang.
	StallTimeout time.Duration
	// Parallel is how many files are fetched at once.
	Parallel int
}

// NewClient is a client with the defaults: five resumes, a second's
// pause, a minute's silence taken for a stall, four files at once.
func NewClient(endpoint, token string) *Client {
	return &Client{
		Endpoint:     strings.TrimRight(endpoint, "/"),
		Token:        token,
		HTTP:         &http.Client{CheckRedirect: keepTokenHome},
		UserAgent:    "distill",
		Retries:      5,
		RetryWait:    time.Second,
		StallTimeout: time.Minute,
		Parallel:     4,
	}
}

// File is one file of a repository at a commit.
type File struct {
	Name   string
	Size   int64
	BlobID string // git's blob id: sha1 of the content (of the LFS pointer, for LFS files)
	SHA256 string // an LFS file's content hash; "" for files stored in git
}

// Repo is a repository's file list at one commit.
type Repo struct {
	ID     string
	Commit string
	Files  []File
}

// Error is a hub's refusal, with its own error code when it gave one
// (X-Error-Code: RepoNotFound, GatedRepo, RevisionNotFound, …).
type Error struct {
	URL     string
	Status  int
	Code    string
	Message string
	// OffHome: the answer came from another host than the endpoint (the
	// storage an LFS file is redirected to), whose refusals say nothing
	// about the token or the repository.
	OffHome bool
}

func (e *Error) Error() string {
	hint := ""
	switch {
	case e.OffHome:
		hint = ": the storage the hub redirected to refused the download (an expired or blocked link); pull again"
	case e.Code == "GatedRepo":
		hint = ": the repository is gated; accept its terms on the hub's page and set HF_TOKEN (or --token) to a token of that account"
	case e.Code == "RevisionNotFound":
		hint = ": no such branch, tag or commit"
	case e.Code == "EntryNotFound":
		hint = ": no such file at this commit"
	case e.Code == "RepoNotFound" || e.Status == http.StatusUnauthorized:
		hint = ": no such repository, or it is private or gated; check the name, or set HF_TOKEN (or --token)"
	case e.Status == http.StatusForbidden:
		hint = ": the token may not read this repository"
	}
	msg := ""
	if e.Message != "" {
		msg = " (" + e.Message + ")"
	}
	return fmt.Sprintf("%s: HTTP %d%s%s", e.URL, e.Status, msg, hint)
}

// temporary says whether a retry may succeed: the hub's overload, or a
// storage link's refusal (each retry resolves a fresh link).
func (e *Error) temporary() bool {
	return e.Status == http.StatusTooManyRequests || e.Status >= 500 || e.OffHome
}

// keepTokenHome drops the bearer token when a redirect leaves the
// endpoint's scheme, host and port: the hub sends LFS files to a CDN whose
// presigned URLs carry their own credential (and refuse a second). net/http
// alone would keep it for another port of the same host or a subdomain.
func keepTokenHome(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return fmt.Errorf("%s: more than 10 redirects", via[0].URL)
	}
	if u, home := req.URL, via[0].URL; u.Scheme != home.Scheme || u.Host != home.Host {
		req.Header.Del("Authorization")
	}
	return nil
}

func (c *Client) get(ctx context.Context, u string, header http.Header) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("User-Agent", c.UserAgent)
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 400 {
		defer resp.Body.Close()
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		final := resp.Request.URL
		e := &Error{URL: u, Status: resp.StatusCode, Code: resp.Header.Get("X-Error-Code"), Message: resp.Header.Get("X-Error-Message")}
		if home := req.URL; final.Scheme != home.Scheme || final.Host != home.Host {
			// Without the query: a presigned link carries its credential there.
			e.URL, e.OffHome, e.Code = final.Scheme+"://"+final.Host+final.Path, true, ""
		}
		return nil, e
	}
	return resp, nil
}

// Info lists repo's files at rev (a branch, tag or commit) with their sizes
// and hashes, and resolves rev to its commit.
func (c *Client) Info(ctx context.Context, repo, rev string) (*Repo, error) {
	if err := checkRepoID(repo); err != nil {
		return nil, err
	}
	if err := c.checkTokenTransport(); err != nil {
		return nil, err
	}
	u := fmt.Sprintf("%s/api/models/%s/revision/%s?blobs=true", c.Endpoint, repo, url.PathEscape(rev))
	resp, err := c.get(ctx, u, nil)
	var he *Error
	if err != nil && !errors.As(err, &he) && ctx.Err() == nil {
		return nil, fmt.Errorf("cannot reach the hub at %s: %w (check --endpoint or HF_ENDPOINT, and the network or proxy)", c.Endpoint, err)
	}
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var info struct {
		ID       string `json:"id"`
		SHA      string `json:"sha"`
		Siblings []struct {
			Name   string `json:"rfilename"`
			Size   *int64 `json:"size"`
			BlobID string `json:"blobId"`
			LFS    *struct {
				SHA256 string `json:"sha256"`
				Size   int64  `json:"size"`
			} `json:"lfs"`
		} `json:"siblings"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&info); err != nil {
		return nil, fmt.Errorf("%s: %v (is this a Hugging Face Hub endpoint?)", u, err)
	}
	if info.SHA == "" {
		return nil, fmt.Errorf("%s: the answer names no commit (is this a Hugging Face Hub endpoint?)", u)
	}
	if !isHex(info.SHA, 40) {
		return nil, fmt.Errorf("%s: the hub's listing names commit %q, not a 40-digit hex id: is this a Hugging Face Hub endpoint?", u, info.SHA)
	}
	r := &Repo{ID: repo, Commit: strings.ToLower(info.SHA)}
	if info.ID != "" && checkRepoID(info.ID) == nil {
		r.ID = info.ID // the hub's spelling
	}
	for _, s := range info.Siblings {
		f := File{Name: s.Name, BlobID: strings.ToLower(s.BlobID)}
		bad := func(why string) error {
			return fmt.Errorf("%s: the hub's listing is malformed: %s %s", u, s.Name, why)
		}
		switch {
		case s.LFS != nil:
			if !isHex(s.LFS.SHA256, 64) {
				return nil, bad("has an LFS entry without a sha256")
			}
			f.Size, f.SHA256 = s.LFS.Size, strings.ToLower(s.LFS.SHA256)
		case s.Size != nil:
			if !isHex(f.BlobID, 40) {
				return nil, bad("has no git blob id to check it against")
			}
			f.Size = *s.Size
		default:
			return nil, bad("has no size (the hub must list files with ?blobs=true)")
		}
		if f.Size < 0 || f.Size > maxFileSize {
			return nil, bad(fmt.Sprintf("has size %d", f.Size))
		}
		r.Files = append(r.Files, f)
	}
	return r, nil
}

// maxFileSize bounds a listed file (1 TB): beyond it the listing is wrong.
const maxFileSize = 1 << 40

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for _, c := range strings.ToLower(s) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// checkTokenTransport refuses to send a token in clear text: over http
// only to this machine.
func (c *Client) checkTokenTransport() error {
	if c.Token == "" {
		return nil
	}
	u, err := url.Parse(c.Endpoint)
	if err != nil {
		return fmt.Errorf("endpoint %q: %v", c.Endpoint, err)
	}
	if u.Scheme == "http" {
		if ip := net.ParseIP(u.Hostname()); u.Hostname() != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return fmt.Errorf("endpoint %s is plain http: refusing to send the access token in clear text; use https, or pull without a token", c.Endpoint)
		}
	}
	return nil
}

// checkRepoID accepts "owner/name" (and a bare "name", the hub's legacy
// models), refusing anything that could climb out of the URL path.
func checkRepoID(repo string) error {
	parts := strings.Split(repo, "/")
	if len(parts) > 2 {
		return fmt.Errorf("repository %q: expected owner/name", repo)
	}
	for _, p := range parts {
		if p == "" || p == "." || p == ".." || strings.ContainsAny(p, "?#%\\ ") {
			return fmt.Errorf("repository %q: expected owner/name", repo)
		}
	}
	return nil
}

// fileURL is where a file of the repository at a commit is served.
func (c *Client) fileURL(repo, commit, name string) string {
	segs := strings.Split(name, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return fmt.Sprintf("%s/%s/resolve/%s/%s", c.Endpoint, repo, commit, strings.Join(segs, "/"))
}
