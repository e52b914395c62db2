// Package hubtest runs a Hugging Face Hub for tests: a real HTTP server
// speaking the hub's protocol as huggingface_hub and distill use it — the
// revision API with file hashes, resolve URLs that serve git files and
// redirect LFS files to a second host (the CDN, which refuses a bearer
// token as presigned storage does), byte ranges, and the X-Error-Code
// refusals — with faults to inject.
package hubtest

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Hub is the test hub. Set its fields before a pull; Requests records
// every request as "host-kind METHOD path range".
type Hub struct {
	API, CDN *httptest.Server
	Repo     string
	Commit   string
	Files    map[string][]byte
	LFS      map[string]bool // served by redirect to the CDN
	Token    string          // required of every API call when set

	mu         sync.Mutex
	dropAfter  map[string]int64 // cut the next transfer of a file after n bytes
	stallAfter map[string]int64 // hold the next transfer open, silent, after n bytes
	fail       map[string][]int // the statuses the next transfers of a file get
	corrupt    map[string]bool
	extra      map[string]bool // send bytes past the listed size
	wrongRange map[string]bool // answer a range from the wrong byte
	NoRange    bool            // ignore Range headers, as some proxies do
	Requests   []string
}

// New starts a hub holding repo at commit.
func New(repo, commit string, files map[string][]byte, lfs map[string]bool) *Hub {
	h := &Hub{Repo: repo, Commit: commit, Files: files, LFS: lfs, dropAfter: map[string]int64{}, stallAfter: map[string]int64{},
		fail: map[string][]int{}, corrupt: map[string]bool{}, extra: map[string]bool{}, wrongRange: map[string]bool{}}
	h.API = httptest.NewServer(http.HandlerFunc(h.api))
	h.CDN = httptest.NewServer(http.HandlerFunc(h.cdn))
	return h
}

// Close stops both servers.
func (h *Hub) Close() { h.API.Close(); h.CDN.Close() }

// DropAfter cuts the next transfer of name after n bytes.
func (h *Hub) DropAfter(name string, n int64) { h.mu.Lock(); h.dropAfter[name] = n; h.mu.Unlock() }

// Corrupt flips a byte of name in every transfer.
func (h *Hub) Corrupt(name string) { h.mu.Lock(); h.corrupt[name] = true; h.mu.Unlock() }

// StallAfter holds the next transfer of name open after n bytes, sending
// nothing more until the client gives up.
func (h *Hub) StallAfter(name string, n int64) { h.mu.Lock(); h.stallAfter[name] = n; h.mu.Unlock() }

// Fail answers the next transfers of name (on the host serving its bytes)
// with these statuses, one each.
func (h *Hub) Fail(name string, statuses ...int) { h.mu.Lock(); h.fail[name] = statuses; h.mu.Unlock() }

// Extra sends bytes past name's listed size in every transfer.
func (h *Hub) Extra(name string) { h.mu.Lock(); h.extra[name] = true; h.mu.Unlock() }

// WrongRange answers every range request for name from one byte later.
func (h *Hub) WrongRange(name string) { h.mu.Lock(); h.wrongRange[name] = true; h.mu.Unlock() }

// Log returns the requests so far.
func (h *Hub) Log() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.Requests...)
}

func (h *Hub) record(kind string, r *http.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	auth := ""
	if r.Header.Get("Authorization") != "" {
		auth = " auth"
	}
	h.Requests = append(h.Requests, fmt.Sprintf("%s %s %s%s %s", kind, r.Method, r.URL.RequestURI(), auth, r.Header.Get("Range")))
}

func refuse(w http.ResponseWriter, status int, code, msg string) {
	if code != "" {
		w.Header().Set("X-Error-Code", code)
	}
	w.Header().Set("X-Error-Message", msg)
	http.Error(w, msg, status)
}

func (h *Hub) api(w http.ResponseWriter, r *http.Request) {
	h.record("api", r)
	if h.Token != "" && r.Header.Get("Authorization") != "Bearer "+h.Token {
		refuse(w, http.StatusUnauthorized, "RepoNotFound", "Repository not found")
		return
	}
	if rest, ok := strings.CutPrefix(r.URL.Path, "/api/models/"+h.Repo+"/revision/"); ok {
		if rest != "main" && rest != h.Commit {
			refuse(w, http.StatusNotFound, "RevisionNotFound", "Invalid rev id: "+rest)
			return
		}
		h.info(w)
		return
	}
	if rest, ok := strings.CutPrefix(r.URL.Path, "/"+h.Repo+"/resolve/"+h.Commit+"/"); ok {
		content, ok := h.Files[rest]
		if !ok {
			refuse(w, http.StatusNotFound, "EntryNotFound", "Entry not found")
			return
		}
		w.Header().Set("X-Repo-Commit", h.Commit)
		if h.LFS[rest] {
			sum := sha256.Sum256(content)
			w.Header().Set("X-Linked-Etag", `"`+hex.EncodeToString(sum[:])+`"`)
			w.Header().Set("X-Linked-Size", strconv.Itoa(len(content)))
			http.Redirect(w, r, h.CDN.URL+"/blobs/"+hex.EncodeToString(sum[:])+"?file="+rest, http.StatusFound)
			return
		}
		h.serve(w, r, rest, content)
		return
	}
	refuse(w, http.StatusUnauthorized, "RepoNotFound", "Repository not found")
}

func (h *Hub) info(w http.ResponseWriter) {
	type lfs struct {
		SHA256      string `json:"sha256"`
		Size        int    `json:"size"`
		PointerSize int    `json:"pointerSize"`
	}
	type sibling struct {
		Name   string `json:"rfilename"`
		BlobID string `json:"blobId"`
		Size   int    `json:"size"`
		LFS    *lfs   `json:"lfs,omitempty"`
	}
	names := make([]string, 0, len(h.Files))
	for n := range h.Files {
		names = append(names, n)
	}
	sort.Strings(names)
	var sibs []sibling
	for _, n := range names {
		c := h.Files[n]
		s := sibling{Name: n, Size: len(c)}
		if h.LFS[n] {
			sum := sha256.Sum256(c)
			pointer := fmt.Sprintf("version https://git-lfs.github.com/spec/v1\noid sha256:%x\nsize %d\n", sum, len(c))
			s.BlobID, s.Size = blobID([]byte(pointer)), len(c)
			s.LFS = &lfs{SHA256: hex.EncodeToString(sum[:]), Size: len(c), PointerSize: len(pointer)}
		} else {
			s.BlobID = blobID(c)
		}
		sibs = append(sibs, s)
	}
	json.NewEncoder(w).Encode(map[string]any{"_id": "x", "id": h.Repo, "modelId": h.Repo, "sha": h.Commit, "private": h.Token != "", "siblings": sibs})
}

func blobID(c []byte) string {
	s := sha1.New()
	fmt.Fprintf(s, "blob %d\x00", len(c))
	s.Write(c)
	return hex.EncodeToString(s.Sum(nil))
}

func (h *Hub) cdn(w http.ResponseWriter, r *http.Request) {
	h.record("cdn", r)
	if r.Header.Get("Authorization") != "" {
		// S3 and the hub's CDN refuse a second credential beside the
		// presigned query.
		http.Error(w, "only one auth mechanism allowed", http.StatusBadRequest)
		return
	}
	name := r.URL.Query().Get("file")
	content, ok := h.Files[name]
	if !ok {
		http.NotFound(w, r)
		return
	}
	h.serve(w, r, name, content)
}

// serve writes content, from a "bytes=N-" range when asked and allowed,
// with the injected faults.
func (h *Hub) serve(w http.ResponseWriter, r *http.Request, name string, content []byte) {
	h.mu.Lock()
	drop, dropping := h.dropAfter[name]
	delete(h.dropAfter, name)
	stall, stalling := h.stallAfter[name]
	delete(h.stallAfter, name)
	status := 0
	if fs := h.fail[name]; len(fs) > 0 {
		status, h.fail[name] = fs[0], fs[1:]
	}
	corrupt, extra, wrong := h.corrupt[name], h.extra[name], h.wrongRange[name]
	noRange := h.NoRange
	h.mu.Unlock()
	if status != 0 {
		http.Error(w, http.StatusText(status), status)
		return
	}
	if corrupt {
		content = append([]byte(nil), content...)
		content[len(content)/2] ^= 0x55
	}
	if extra {
		content = append(append([]byte(nil), content...), "more"...)
	}
	start := 0
	if rg := r.Header.Get("Range"); rg != "" && !noRange {
		n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(rg, "bytes="), "-"))
		if err != nil || n < 0 {
			http.Error(w, "bad range", http.StatusBadRequest)
			return
		}
		if n >= len(content) {
			w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", len(content)))
			http.Error(w, "range not satisfiable", http.StatusRequestedRangeNotSatisfiable)
			return
		}
		if wrong {
			n++
		}
		start = n
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", n, len(content)-1, len(content)))
		w.Header().Set("Content-Length", strconv.Itoa(len(content)-n))
		w.WriteHeader(http.StatusPartialContent)
	} else {
		w.Header().Set("Content-Length", strconv.Itoa(len(content)))
		w.WriteHeader(http.StatusOK)
	}
	body := content[start:]
	if stalling && stall < int64(len(body)) {
		w.Write(body[:stall])
		w.(http.Flusher).Flush()
		<-r.Context().Done() // silent until the client hangs up
		return
	}
	if dropping && drop < int64(len(body)) {
		w.Write(body[:drop])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // the connection closes mid-body
	}
	w.Write(body)
}
