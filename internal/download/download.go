// Package download fetches one large file over HTTP into place, reliably:
// the bytes go to <name>.partial beside the destination; an interrupted
// transfer resumes with Range from where it stopped; stalls, 5xx answers
// and broken connections are retried with backoff, 4xx answers and a full
// disk are not; and the file's SHA-256 is checked before it is renamed into
// place, so a failed download never leaves anything at the destination.
// Two requests for the same destination share one transfer.
package download

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Errors of a download, for errors.Is.
var (
	ErrDiskFull  = errors.New("the disk is full")
	ErrMismatch  = errors.New("the downloaded bytes do not match the expected SHA-256")
	ErrConflict  = errors.New("another download of a different file to the same destination is running")
	ErrBadServer = errors.New("the server's answer does not fit the request")
)

// StatusError is an HTTP answer that ended a download.
type StatusError struct {
	URL    string // without its query
	Status int
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%s answered %d %s", e.URL, e.Status, http.StatusText(e.Status))
}

// Options configures a Downloader. Zero fields take the documented defaults.
type Options struct {
	Policy Policy       // where requests may go, and the token
	Client *http.Client // nil: Policy.Client()
	// Stall ends an attempt that receives no byte for this long (before
	// the answer's headers or within the body); 30 s.
	Stall time.Duration
	// Retries is how many attempts in a row may fail without receiving a
	// byte before the download fails; 6. An attempt that made progress
	// resets the count, so a long download over a flaky link goes on.
	Retries int
	// Backoff is the wait after the first failed attempt, doubling up to
	// MaxBackoff; 1 s and 30 s.
	Backoff, MaxBackoff time.Duration
	// ProgressEvery throttles Progress callbacks; 250 ms.
	ProgressEvery time.Duration
	Logger        *slog.Logger
}

func (o *Options) setDefaults() {
	if o.Client == nil {
		o.Client = o.Policy.Client()
	}
	if o.Stall <= 0 {
		o.Stall = 30 * time.Second
	}
	if o.Retries <= 0 {
		o.Retries = 6
	}
	if o.Backoff <= 0 {
		o.Backoff = time.Second
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 30 * time.Second
	}
	if o.ProgressEvery <= 0 {
		o.ProgressEvery = 250 * time.Millisecond
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Request is one file to fetch.
type Request struct {
	URL string
	// Root is the directory the file goes into, and Name its slash
	// separated path inside Root (directories are created). Every file
	// operation goes through Root, so nothing is written outside it.
	Root *os.Root
	Name string
	// SHA256 is the expected digest, 64 lowercase hex digits (see
	// ParseSHA256): required, because an unverifiable file is never put
	// in place.
	SHA256 string
	// Size is the expected size in bytes; 0 when unknown.
	Size int64
}

// Progress is a snapshot of a transfer.
type Progress struct {
	Done  int64   // bytes in the partial file, resumed ones included
	Total int64   // the file's size; 0 when unknown
	Rate  float64 // bytes per second lately
}

// Result says how a download went.
type Result struct {
	Path        string // absolute path of the file in place
	Size        int64
	SHA256      string
	Transferred int64 // bytes received over the network by this download
	Resumed     bool  // it continued an earlier partial file
	Attempts    int   // HTTP requests made for the body
	Cached      bool  // the file was in place already: nothing was fetched
	Shared      bool  // this caller joined a transfer another caller started
}

var sha256RE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// ParseSHA256 accepts an ETag-like value holding a SHA-256: optionally weak
// (W/) and quoted, 64 hex digits of either case. It returns the lowercase
// digest. Anything else is an error, so a hostile digest is refused where
// it is read, long before it could name a file.
func ParseSHA256(s string) (string, error) {
	v := strings.TrimPrefix(strings.TrimSpace(s), "W/")
	v = strings.TrimPrefix(strings.TrimSuffix(v, `"`), `"`)
	v = strings.ToLower(v)
	if !sha256RE.MatchString(v) {
		return "", fmt.Errorf("%.80q is not a SHA-256 (64 hex digits)", s)
	}
	return v, nil
}

func (r Request) validate() error {
	u, err := url.Parse(r.URL)
	switch {
	case err != nil:
		return fmt.Errorf("download URL: %w", err)
	case u.Scheme != "http" && u.Scheme != "https" || u.Host == "":
		return fmt.Errorf("download URL %q is not http(s)", redact(u))
	case r.Root == nil:
		return errors.New("download: no destination directory")
	case !sha256RE.MatchString(r.SHA256):
		return fmt.Errorf("download of %s: expected SHA-256 %.80q is not 64 lowercase hex digits", redact(u), r.SHA256)
	case r.Size < 0:
		return fmt.Errorf("download of %s: negative size %d", redact(u), r.Size)
	}
	return checkName(r.Name)
}

// checkName accepts a relative slash-separated path without "." or ".."
// elements; the file names derived from it (.partial, .partial.meta) stay
// beside it.
func checkName(name string) error {
	if name == "" || name == "." || strings.ContainsAny(name, "\\\x00") || !fs.ValidPath(name) || !filepath.IsLocal(filepath.FromSlash(name)) {
		return fmt.Errorf("download: destination %.80q is not a relative path", name)
	}
	return nil
}

// Downloader fetches files. Its methods are safe for concurrent use.
type Downloader struct {
	opt Options

	open openFunc // nil: openRW

	mu      sync.Mutex
	flights map[string]*flight // by destination
}

// New returns a Downloader.
func New(opt Options) *Downloader {
	opt.setDefaults()
	return &Downloader{opt: opt, flights: make(map[string]*flight)}
}

// Get downloads req, calling progress (when not nil) as bytes arrive. A Get
// for a destination that another Get is fetching joins that transfer
// instead of starting a second one. When ctx ends, Get returns at once;
// the transfer goes on while another caller still waits for it, and stops
// otherwise, leaving its partial file for a later Get to resume.
func (d *Downloader) Get(ctx context.Context, req Request, progress func(Progress)) (Result, error) {
	if err := req.validate(); err != nil {
		return Result{}, err
	}
	f, shared, err := d.join(req)
	if err != nil {
		return Result{}, err
	}
	id := f.listen(progress)
	select {
	case <-f.done:
		res := f.res
		res.Shared = shared
		return res, f.err
	case <-ctx.Done():
		d.leave(f, id)
		return Result{}, context.Cause(ctx)
	}
}

// Transfer describes a running transfer.
type Transfer struct {
	Name    string // the destination, relative to its root
	Waiters int    // callers waiting for it
	Done    int64  // bytes in the partial file
	Total   int64  // 0 when unknown
}

// Transfers lists the transfers running now.
func (d *Downloader) Transfers() []Transfer {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]Transfer, 0, len(d.flights))
	for _, f := range d.flights {
		f.mu.Lock()
		if !f.abandoned {
			out = append(out, Transfer{Name: f.req.Name, Waiters: f.waiters, Done: f.last.Done, Total: f.last.Total})
		}
		f.mu.Unlock()
	}
	return out
}

// flight is one transfer and the callers waiting for it.
type flight struct {
	req    Request
	cancel context.CancelFunc
	done   chan struct{}
	res    Result
	err    error

	mu        sync.Mutex
	waiters   int
	next      int
	listeners map[int]func(Progress)
	abandoned bool     // every waiter left: the transfer is being stopped
	last      Progress // the latest report
}

func key(req Request) string { return req.Root.Name() + "\x00" + req.Name }

func (d *Downloader) join(req Request) (*flight, bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	k := key(req)
	prev := d.flights[k]
	if prev != nil {
		prev.mu.Lock()
		abandoned := prev.abandoned
		if !abandoned {
			if prev.req.SHA256 != req.SHA256 {
				prev.mu.Unlock()
				return nil, false, fmt.Errorf("%w (%s)", ErrConflict, req.Name)
			}
			prev.waiters++
			prev.mu.Unlock()
			return prev, true, nil
		}
		prev.mu.Unlock()
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &flight{req: req, cancel: cancel, done: make(chan struct{}), listeners: map[int]func(Progress){}, waiters: 1}
	d.flights[k] = f
	go func() {
		if prev != nil {
			// A stopped transfer may still be writing the partial file.
			<-prev.done
		}
		f.res, f.err = d.fetch(ctx, req, f.broadcast)
		cancel()
		d.mu.Lock()
		if d.flights[k] == f {
			delete(d.flights, k)
		}
		d.mu.Unlock()
		close(f.done)
	}()
	return f, false, nil
}

// leave drops a waiter; the last one stops the transfer.
func (d *Downloader) leave(f *flight, id int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.listeners, id)
	f.waiters--
	if f.waiters == 0 {
		f.abandoned = true
		f.cancel()
	}
}

func (f *flight) listen(fn func(Progress)) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.next++
	if fn != nil {
		f.listeners[f.next] = fn
	}
	return f.next
}

func (f *flight) broadcast(p Progress) {
	f.mu.Lock()
	f.last = p
	fns := make([]func(Progress), 0, len(f.listeners))
	for _, fn := range f.listeners {
		fns = append(fns, fn)
	}
	f.mu.Unlock()
	for _, fn := range fns {
		fn(p)
	}
}
