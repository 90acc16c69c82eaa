// Package hubtest is a fake Hugging Face hub over HTTP for tests and
// benchmarks: it serves files from memory or disk under the hub's URL
// layout with the headers of LFS files (X-Linked-Etag with the SHA-256,
// X-Linked-Size), lists repositories at /api/models/{owner}/{repo}, and
// injects the faults a real network has: cut bodies, stalls, 5xx runs, 416,
// ignored or mismatched ranges, wrong bytes and redirects.
package hubtest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Commit is the revision hash the hub reports for every repository.
const Commit = "0123456789abcdef0123456789abcdef01234567"

// Fault changes how one file is served. Counted faults apply to that many
// requests for the file's body and are used up in order: Status first,
// then the others.
type Fault struct {
	Status      []int // answer these statuses, one request each
	RetryAfter  int   // seconds, sent with Status answers
	CutAfter    int64 // close the connection after this many body bytes...
	Cuts        int   // ...on this many requests (1 when CutAfter > 0 and Cuts is 0)
	StallAfter  int64 // stop sending after this many body bytes...
	Stalls      int   // ...on this many requests (1 when zero and Stall > 0)
	Stall       time.Duration
	IgnoreRange bool  // answer range requests with 200 and the whole file
	BadRange    int   // answer this many range requests with a Content-Range that starts elsewhere
	Range416    int   // answer this many range requests with 416
	WrongBytes  bool  // flip a byte in the middle of the body; the headers keep the real digest
	Throttle    int64 // bytes per second, roughly
	Redirect    string
	// Gate, when set, holds every body after its first GateAfter bytes
	// until it is closed: a test decides when a transfer may go on.
	Gate      <-chan struct{}
	GateAfter int64
	NoDigest  bool   // send no X-Linked-Etag, and an ETag that is not a SHA-256
	GitBlob   string // send no X-Linked-Etag and this ETag, as the hub does for a file kept in git
	Digest    string // send this X-Linked-Etag value instead of the real one
}

// Stats counts what the hub served for one file.
type Stats struct {
	Requests  int   // GETs of the body
	Ranges    int   // of them with a Range header
	BodyBytes int64 // body bytes written
	Auth      []string
}

type file struct {
	name   string
	data   []byte // or path
	path   string
	size   int64
	sha256 string
	fault  Fault
	stats  Stats
}

type repo struct {
	files   map[string]*file
	listing []string // nil: the files' names
}

// Hub is a running fake hub. Its methods are safe for concurrent use.
type Hub struct {
	URL string
	// LFSRedirect makes resolve answer 302 to /cdn/<sha256> on the same
	// hub, as the real hub sends LFS files to its CDN.
	LFSRedirect bool
	// Token, when set, is required as a bearer token by the listing and
	// resolve endpoints (a gated repository).
	Token string

	srv   *httptest.Server
	mu    sync.Mutex
	repos map[string]*repo
}

// New starts a hub; Close stops it.
func New() *Hub {
	h := &Hub{repos: map[string]*repo{}}
	h.srv = httptest.NewServer(http.HandlerFunc(h.route))
	h.URL = h.srv.URL
	return h
}

// Close stops the hub.
func (h *Hub) Close() {
	h.srv.CloseClientConnections()
	h.srv.Close()
}

// Add serves data as file name of repository "owner/repo".
func (h *Hub) Add(repoID, name string, data []byte) {
	sum := sha256.Sum256(data)
	h.add(repoID, &file{name: name, data: data, size: int64(len(data)), sha256: hex.EncodeToString(sum[:])})
}

// AddFile serves the file at path as name; it is hashed once now.
func (h *Hub) AddFile(repoID, name, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	hash := sha256.New()
	n, err := io.Copy(hash, f)
	if err != nil {
		return err
	}
	h.add(repoID, &file{name: name, path: path, size: n, sha256: hex.EncodeToString(hash.Sum(nil))})
	return nil
}

// AddDir serves every regular file of dir (not recursively) under its name.
func (h *Hub) AddDir(repoID, dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if e.Type().IsRegular() {
			if err := h.AddFile(repoID, e.Name(), filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

func (h *Hub) add(repoID string, f *file) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.repos[repoID]
	if r == nil {
		r = &repo{files: map[string]*file{}}
		h.repos[repoID] = r
	}
	r.files[f.name] = f
}

// SHA256 is the digest of a served file.
func (h *Hub) SHA256(repoID, name string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if f := h.file(repoID, name); f != nil {
		return f.sha256
	}
	return ""
}

// SetListing makes the repository's file list say names, whatever it holds.
func (h *Hub) SetListing(repoID string, names []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.repos[repoID]
	if r == nil {
		r = &repo{files: map[string]*file{}}
		h.repos[repoID] = r
	}
	r.listing = slices.Clone(names)
	if r.listing == nil {
		r.listing = []string{}
	}
}

// SetFault sets how a file is served from now on, and resets its stats.
func (h *Hub) SetFault(repoID, name string, f Fault) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if fl := h.file(repoID, name); fl != nil {
		if f.CutAfter > 0 && f.Cuts == 0 {
			f.Cuts = 1
		}
		if f.Stall > 0 && f.Stalls == 0 {
			f.Stalls = 1
		}
		fl.fault, fl.stats = f, Stats{}
	}
}

// Stats returns what the hub served of a file since it was added or its
// fault was set.
func (h *Hub) Stats(repoID, name string) Stats {
	h.mu.Lock()
	defer h.mu.Unlock()
	if f := h.file(repoID, name); f != nil {
		s := f.stats
		s.Auth = slices.Clone(s.Auth)
		return s
	}
	return Stats{}
}

func (h *Hub) file(repoID, name string) *file {
	if r := h.repos[repoID]; r != nil {
		return r.files[name]
	}
	return nil
}

// route splits paths by hand: the hub's layouts overlap in ways
// http.ServeMux patterns refuse ("/api/models/resolve/...").
func (h *Hub) route(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	p := strings.Split(strings.TrimPrefix(r.URL.Path, "/"), "/")
	switch {
	case len(p) == 4 && p[0] == "api" && p[1] == "models":
		h.list(w, r, p[2]+"/"+p[3])
	case len(p) == 6 && p[0] == "api" && p[1] == "models" && p[4] == "revision":
		h.list(w, r, p[2]+"/"+p[3])
	case len(p) == 2 && p[0] == "cdn":
		h.cdn(w, r, p[1])
	case len(p) >= 5 && p[2] == "resolve":
		h.resolve(w, r, p[0]+"/"+p[1], strings.Join(p[4:], "/"))
	default:
		http.NotFound(w, r)
	}
}

func (h *Hub) authorized(w http.ResponseWriter, r *http.Request) bool {
	if h.Token != "" && r.Header.Get("Authorization") != "Bearer "+h.Token {
		http.Error(w, `{"error":"Access to this repository is restricted."}`, http.StatusUnauthorized)
		return false
	}
	return true
}

func (h *Hub) list(w http.ResponseWriter, r *http.Request, id string) {
	if !h.authorized(w, r) {
		return
	}
	h.mu.Lock()
	rp := h.repos[id]
	var names []string
	if rp != nil {
		names = rp.listing
		if names == nil {
			for n := range rp.files {
				names = append(names, n)
			}
			slices.Sort(names)
		}
	}
	h.mu.Unlock()
	if rp == nil {
		http.Error(w, `{"error":"Repository not found"}`, http.StatusNotFound)
		return
	}
	type sibling struct {
		RFilename string `json:"rfilename"`
	}
	out := struct {
		ID       string    `json:"id"`
		SHA      string    `json:"sha"`
		Siblings []sibling `json:"siblings"`
	}{ID: id, SHA: Commit, Siblings: []sibling{}}
	for _, n := range names {
		out.Siblings = append(out.Siblings, sibling{n})
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

func (h *Hub) resolve(w http.ResponseWriter, r *http.Request, id, name string) {
	if !h.authorized(w, r) {
		return
	}
	h.mu.Lock()
	f := h.file(id, name)
	h.mu.Unlock()
	if f == nil {
		w.Header().Set("X-Error-Code", "EntryNotFound")
		http.Error(w, "Entry not found", http.StatusNotFound)
		return
	}
	h.setHeaders(w, f)
	h.mu.Lock()
	redirect := f.fault.Redirect
	h.mu.Unlock()
	switch {
	case redirect != "":
		http.Redirect(w, r, redirect, http.StatusFound)
	case h.LFSRedirect:
		http.Redirect(w, r, "/cdn/"+f.sha256, http.StatusFound)
	default:
		h.serve(w, r, f)
	}
}

func (h *Hub) cdn(w http.ResponseWriter, r *http.Request, sha string) {
	h.mu.Lock()
	var found *file
	for _, rp := range h.repos {
		for _, f := range rp.files {
			if f.sha256 == sha {
				found = f
			}
		}
	}
	h.mu.Unlock()
	if found == nil {
		http.NotFound(w, r)
		return
	}
	h.serve(w, r, found)
}

// setHeaders sets what the real hub sends for an LFS file.
func (h *Hub) setHeaders(w http.ResponseWriter, f *file) {
	h.mu.Lock()
	fault := f.fault
	h.mu.Unlock()
	hd := w.Header()
	hd.Set("X-Repo-Commit", Commit)
	switch {
	case fault.NoDigest:
		hd.Set("ETag", `"a1b2c3"`)
	case fault.GitBlob != "":
		hd.Set("ETag", `"`+fault.GitBlob+`"`)
		hd.Set("Content-Length", strconv.FormatInt(f.size, 10))
		return
	case fault.Digest != "":
		hd.Set("X-Linked-Etag", fault.Digest)
		hd.Set("ETag", fault.Digest)
	default:
		hd.Set("X-Linked-Etag", `"`+f.sha256+`"`)
		hd.Set("ETag", `"`+f.sha256+`"`)
	}
	hd.Set("X-Linked-Size", strconv.FormatInt(f.size, 10))
}

// serve sends the file's body (or headers, for HEAD) with its faults.
func (h *Hub) serve(w http.ResponseWriter, r *http.Request, f *file) {
	if r.Method == http.MethodHead {
		w.Header().Set("Content-Length", strconv.FormatInt(f.size, 10))
		w.Header().Set("Accept-Ranges", "bytes")
		return
	}
	h.mu.Lock()
	fault := &f.fault
	f.stats.Requests++
	rangeHdr := r.Header.Get("Range")
	if rangeHdr != "" {
		f.stats.Ranges++
	}
	if a := r.Header.Get("Authorization"); a != "" {
		f.stats.Auth = append(f.stats.Auth, r.URL.Path)
	}
	var status int
	if len(fault.Status) > 0 {
		status, fault.Status = fault.Status[0], fault.Status[1:]
	}
	ignoreRange, wrong, throttle := fault.IgnoreRange, fault.WrongBytes, fault.Throttle
	badRange, r416 := false, false
	if rangeHdr != "" && fault.BadRange > 0 {
		fault.BadRange--
		badRange = true
	}
	if rangeHdr != "" && fault.Range416 > 0 {
		fault.Range416--
		r416 = true
	}
	cut, stallAt, stall := int64(-1), int64(-1), time.Duration(0)
	if status == 0 && !r416 && fault.Cuts > 0 {
		fault.Cuts--
		cut = fault.CutAfter
	}
	if status == 0 && !r416 && fault.Stalls > 0 {
		fault.Stalls--
		stallAt, stall = fault.StallAfter, fault.Stall
	}
	retry, gate, gateAt := fault.RetryAfter, fault.Gate, fault.GateAfter
	h.mu.Unlock()
	if gate == nil {
		gateAt = -1
	}

	if status != 0 {
		if retry > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(retry))
		}
		http.Error(w, http.StatusText(status), status)
		return
	}
	if r416 {
		w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", f.size))
		w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
		return
	}
	cw := &countingWriter{ResponseWriter: w, h: h, stats: &f.stats}
	if cut < 0 && stallAt < 0 && gateAt < 0 && !wrong && throttle == 0 && !badRange && !ignoreRange && f.path != "" {
		// The plain case goes through net/http's own range handling (and
		// sendfile), so benchmarks measure the client, not this hub.
		fd, err := os.Open(f.path)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer fd.Close()
		w.Header().Del("ETag") // no If-Range games: the digest is the identity
		http.ServeContent(cw, r, "", time.Time{}, fd)
		return
	}

	start := int64(0)
	if rangeHdr != "" && !ignoreRange {
		s, ok := parseRange(rangeHdr)
		if !ok || s >= f.size {
			w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", f.size))
			w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
			return
		}
		start = s
	}
	body, err := f.open()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	defer body.Close()
	if wrong {
		body = &flipReader{r: body, at: f.size / 2}
	}
	if _, err := io.CopyN(io.Discard, body, start); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Length", strconv.FormatInt(f.size-start, 10))
	if rangeHdr != "" && !ignoreRange {
		first := start
		if badRange {
			first = start / 2
		}
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", first, f.size-1, f.size))
		w.WriteHeader(http.StatusPartialContent)
	} else {
		w.WriteHeader(http.StatusOK)
	}
	sent := int64(0)
	buf := make([]byte, 32<<10)
	began := time.Now()
	for {
		chunk := buf
		if cut >= 0 && sent+int64(len(chunk)) > cut {
			chunk = chunk[:cut-sent]
		}
		if stallAt >= 0 && sent+int64(len(chunk)) > stallAt {
			chunk = chunk[:stallAt-sent]
		}
		if gateAt >= 0 && sent+int64(len(chunk)) > gateAt {
			chunk = chunk[:gateAt-sent]
		}
		if len(chunk) > 0 {
			n, rerr := body.Read(chunk)
			if n > 0 {
				if _, err := cw.Write(chunk[:n]); err != nil {
					return
				}
				sent += int64(n)
			}
			if rerr == io.EOF {
				return
			}
			if rerr != nil {
				panic(http.ErrAbortHandler)
			}
		}
		if throttle > 0 {
			if ahead := time.Duration(float64(sent)/float64(throttle)*float64(time.Second)) - time.Since(began); ahead > 0 {
				select {
				case <-time.After(ahead):
				case <-r.Context().Done():
					return
				}
			}
		}
		if gateAt >= 0 && sent >= gateAt {
			http.NewResponseController(w).Flush()
			select {
			case <-gate:
			case <-r.Context().Done():
				return
			}
			gateAt = -1
		}
		if cut >= 0 && sent >= cut {
			http.NewResponseController(w).Flush()
			panic(http.ErrAbortHandler) // the client sees the connection drop
		}
		if stallAt >= 0 && sent >= stallAt {
			http.NewResponseController(w).Flush()
			select {
			case <-time.After(stall):
			case <-r.Context().Done():
			}
			panic(http.ErrAbortHandler)
		}
	}
}

func (f *file) open() (io.ReadCloser, error) {
	if f.path != "" {
		return os.Open(f.path)
	}
	return io.NopCloser(bytes.NewReader(f.data)), nil
}

// parseRange accepts "bytes=N-", the only form a resuming client sends.
func parseRange(s string) (int64, bool) {
	rest, ok := strings.CutPrefix(s, "bytes=")
	if !ok {
		return 0, false
	}
	a, b, ok := strings.Cut(rest, "-")
	if !ok || b != "" {
		return 0, false
	}
	n, err := strconv.ParseInt(a, 10, 64)
	return n, err == nil && n >= 0
}

type countingWriter struct {
	http.ResponseWriter
	h     *Hub
	stats *Stats
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.count(int64(n))
	return n, err
}

// ReadFrom keeps net/http's sendfile path for ServeContent.
func (c *countingWriter) ReadFrom(r io.Reader) (int64, error) {
	n, err := io.Copy(c.ResponseWriter, r)
	c.count(n)
	return n, err
}

func (c *countingWriter) count(n int64) {
	c.h.mu.Lock()
	c.stats.BodyBytes += n
	c.h.mu.Unlock()
}

func (c *countingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

type flipReader struct {
	r   io.ReadCloser
	pos int64
	at  int64
}

func (f *flipReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if f.at >= f.pos && f.at < f.pos+int64(n) {
		p[f.at-f.pos] ^= 0xff
	}
	f.pos += int64(n)
	return n, err
}

func (f *flipReader) Close() error { return f.r.Close() }
