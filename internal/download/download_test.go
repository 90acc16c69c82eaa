package download

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rbee/rbee/internal/hf/hubtest"
	"github.com/rbee/rbee/internal/testkit"
)

const repoID = "owner/repo"

// fixture is a hub serving one file and a downloader writing into a fresh
// directory.
type fixture struct {
	hub  *hubtest.Hub
	data []byte
	dir  string
	root *os.Root
	d    *Downloader
}

func newFixture(t *testing.T, size int, opts ...func(*Options)) *fixture {
	t.Helper()
	hub := hubtest.New()
	t.Cleanup(hub.Close)
	data := make([]byte, size)
	rng := rand.New(rand.NewPCG(uint64(size), 7))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	hub.Add(repoID, "m.gguf", data)
	dir := t.TempDir()
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	home, _ := url.Parse(hub.URL)
	opt := Options{
		Policy:        Policy{Home: home},
		Stall:         5 * time.Second,
		Backoff:       time.Millisecond,
		MaxBackoff:    5 * time.Millisecond,
		ProgressEvery: time.Millisecond,
		Logger:        slog.New(slog.DiscardHandler),
	}
	for _, o := range opts {
		o(&opt)
	}
	return &fixture{hub: hub, data: data, dir: dir, root: root, d: New(opt)}
}

func (f *fixture) req() Request {
	return Request{
		URL:    f.hub.URL + "/" + repoID + "/resolve/main/m.gguf",
		Root:   f.root,
		Name:   "models/m.gguf",
		SHA256: f.hub.SHA256(repoID, "m.gguf"),
		Size:   int64(len(f.data)),
	}
}

func (f *fixture) get(t *testing.T, req Request) (Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return f.d.Get(ctx, req, nil)
}

// placed checks the destination holds the file and nothing else is left.
func (f *fixture) placed(t *testing.T) {
	t.Helper()
	got, err := os.ReadFile(filepath.Join(f.dir, "models", "m.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, f.data) {
		t.Fatal("the file in place differs from the served one")
	}
	f.onlyFiles(t, "m.gguf")
}

// onlyFiles checks the destination directory holds exactly names.
func (f *fixture) onlyFiles(t *testing.T, names ...string) {
	t.Helper()
	ents, _ := os.ReadDir(filepath.Join(f.dir, "models"))
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if strings.Join(got, ",") != strings.Join(names, ",") {
		t.Fatalf("files %v, want %v", got, names)
	}
}

func TestDownload(t *testing.T) {
	f := newFixture(t, 3<<20+17)
	var mu sync.Mutex
	var seen []Progress
	res, err := f.d.Get(context.Background(), f.req(), func(p Progress) {
		mu.Lock()
		seen = append(seen, p)
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	f.placed(t)
	size := int64(len(f.data))
	if res.Size != size || res.Transferred != size || res.Attempts != 1 || res.Resumed || res.Cached ||
		res.Path != filepath.Join(f.dir, "models", "m.gguf") {
		t.Fatalf("result %+v", res)
	}
	last := seen[len(seen)-1]
	if len(seen) < 2 || last.Done != size || last.Total != size {
		t.Fatalf("progress %+v", seen)
	}
	for i := 1; i < len(seen); i++ {
		if seen[i].Done < seen[i-1].Done {
			t.Fatalf("progress went back: %+v", seen)
		}
	}

	// In place already: verified, not fetched again.
	res, err = f.get(t, f.req())
	if err != nil || !res.Cached || res.Transferred != 0 || f.hub.Stats(repoID, "m.gguf").Requests != 1 {
		t.Fatalf("second download: %+v, %v, %+v", res, err, f.hub.Stats(repoID, "m.gguf"))
	}
}

func TestUnknownSize(t *testing.T) {
	f := newFixture(t, 100_000)
	req := f.req()
	req.Size = 0
	if _, err := f.get(t, req); err != nil {
		t.Fatal(err)
	}
	f.placed(t)
}

// A connection cut in the middle of the body is resumed with Range, and
// only the rest is sent again.
func TestResumeAfterCut(t *testing.T) {
	f := newFixture(t, 2<<20)
	half := int64(len(f.data) / 2)
	f.hub.SetFault(repoID, "m.gguf", hubtest.Fault{CutAfter: half})
	res, err := f.get(t, f.req())
	if err != nil {
		t.Fatal(err)
	}
	f.placed(t)
	st := f.hub.Stats(repoID, "m.gguf")
	if st.Requests != 2 || st.Ranges != 1 || st.BodyBytes != int64(len(f.data)) || res.Attempts != 2 || res.Transferred != int64(len(f.data)) {
		t.Fatalf("stats %+v, result %+v", st, res)
	}
}

// A download cancelled half way leaves a partial file that the next Get
// resumes, fetching only the rest.
func TestResumeAfterCancel(t *testing.T) {
	f := newFixture(t, 1<<20)
	half := int64(len(f.data) / 2)
	gate := make(chan struct{})
	defer close(gate)
	f.hub.SetFault(repoID, "m.gguf", hubtest.Fault{Gate: gate, GateAfter: half})
	ctx, cancel := context.WithCancel(context.Background())
	failed := make(chan error, 1)
	go func() {
		_, err := f.d.Get(ctx, f.req(), nil)
		failed <- err
	}()
	partial := filepath.Join(f.dir, "models", "m.gguf.partial")
	testkit.WaitFor(t, "the first half to arrive", func() bool {
		st, err := os.Stat(partial)
		return err == nil && st.Size() == half
	})
	cancel()
	if err := <-failed; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled download: %v", err)
	}
	f.waitIdle(t)
	f.onlyFiles(t, "m.gguf.partial", "m.gguf.partial.meta")

	f.hub.SetFault(repoID, "m.gguf", hubtest.Fault{})
	res, err := f.get(t, f.req())
	if err != nil {
		t.Fatal(err)
	}
	f.placed(t)
	if !res.Resumed || res.Transferred != int64(len(f.data))-half || f.hub.Stats(repoID, "m.gguf").Ranges != 1 {
		t.Fatalf("resumed %+v after %d bytes; hub %+v", res, half, f.hub.Stats(repoID, "m.gguf"))
	}
}

// waitIdle waits until no transfer runs (a cancelled one stops in the
// background).
func (f *fixture) waitIdle(t *testing.T) {
	t.Helper()
	testkit.WaitFor(t, "the transfer to stop", func() bool {
		f.d.mu.Lock()
		defer f.d.mu.Unlock()
		return len(f.d.flights) == 0
	})
}

// A partial file of another object (another digest) is not resumed.
func TestPartialOfAnotherFile(t *testing.T) {
	f := newFixture(t, 50_000)
	must(t, os.MkdirAll(filepath.Join(f.dir, "models"), 0o700))
	must(t, os.WriteFile(filepath.Join(f.dir, "models", "m.gguf.partial"), []byte("garbage from elsewhere"), 0o600))
	must(t, os.WriteFile(filepath.Join(f.dir, "models", "m.gguf.partial.meta"),
		[]byte(`{"sha256":"`+strings.Repeat("0", 64)+`","size":50000}`), 0o600))
	res, err := f.get(t, f.req())
	if err != nil {
		t.Fatal(err)
	}
	f.placed(t)
	if res.Resumed || f.hub.Stats(repoID, "m.gguf").Ranges != 0 {
		t.Fatalf("resumed a foreign partial: %+v", res)
	}
}

func TestServerFaults(t *testing.T) {
	for _, tc := range []struct {
		name        string
		fault       hubtest.Fault
		requests    int
		transferred func(size int64) int64
	}{
		// The server answers a range with the whole file: start again.
		{"200 to a range", hubtest.Fault{CutAfter: 300_000, IgnoreRange: true}, 2, func(n int64) int64 { return 300_000 + n }},
		// 416 to a resume: the partial is stale, discard it.
		{"416", hubtest.Fault{CutAfter: 300_000, Range416: 1}, 3, func(n int64) int64 { return 300_000 + n }},
		// A Content-Range that does not continue the partial.
		{"mismatched content-range", hubtest.Fault{CutAfter: 300_000, BadRange: 1}, 3, nil},
		{"run of 5xx", hubtest.Fault{Status: []int{500, 502, 503, 500}}, 5, func(n int64) int64 { return n }},
		{"429 with retry-after", hubtest.Fault{Status: []int{429}, RetryAfter: 1}, 2, func(n int64) int64 { return n }},
		{"stall", hubtest.Fault{StallAfter: 300_000, Stall: time.Minute}, 2, func(n int64) int64 { return n }},
		{"stall before the body", hubtest.Fault{StallAfter: 0, Stall: time.Minute}, 2, func(n int64) int64 { return n }},
		{"cut twice", hubtest.Fault{CutAfter: 100_000, Cuts: 2}, 3, func(n int64) int64 { return n }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, 1<<20, func(o *Options) { o.Stall = 300 * time.Millisecond })
			f.hub.SetFault(repoID, "m.gguf", tc.fault)
			res, err := f.get(t, f.req())
			if err != nil {
				t.Fatal(err)
			}
			f.placed(t)
			st := f.hub.Stats(repoID, "m.gguf")
			if st.Requests != tc.requests || res.Attempts != tc.requests {
				t.Errorf("%d requests (hub says %d), want %d", res.Attempts, st.Requests, tc.requests)
			}
			if tc.transferred != nil && res.Transferred != tc.transferred(int64(len(f.data))) {
				t.Errorf("transferred %d bytes, want %d", res.Transferred, tc.transferred(int64(len(f.data))))
			}
		})
	}
}

func TestFailures(t *testing.T) {
	for _, tc := range []struct {
		name     string
		fault    hubtest.Fault
		requests int
		is       func(error) bool
	}{
		{"404 is not retried", hubtest.Fault{Status: []int{404}}, 1, isStatus(404)},
		{"403 is not retried", hubtest.Fault{Status: []int{403}}, 1, isStatus(403)},
		{"5xx for ever", hubtest.Fault{Status: []int{500, 500, 500, 500, 500, 500, 500, 500, 500}}, 7, isStatus(500)},
		{"wrong bytes", hubtest.Fault{WrongBytes: true}, 1, func(err error) bool { return errors.Is(err, ErrMismatch) }},
		{"redirect to plain http", hubtest.Fault{Redirect: "http://example.com/m.gguf"}, 0, func(err error) bool { return errors.Is(err, ErrRefused) }},
		{"redirect to a private address", hubtest.Fault{Redirect: "https://10.0.0.1/m.gguf"}, 0, func(err error) bool { return errors.Is(err, ErrRefused) }},
		{"redirect to loopback on another port", hubtest.Fault{Redirect: "https://127.0.0.1:1/m.gguf"}, 0, func(err error) bool { return errors.Is(err, ErrRefused) }},
		{"redirect to a name of loopback", hubtest.Fault{Redirect: "https://localhost:1/m.gguf"}, 0, func(err error) bool { return errors.Is(err, ErrRefused) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, 200_000)
			f.hub.SetFault(repoID, "m.gguf", tc.fault)
			_, err := f.get(t, f.req())
			if err == nil || !tc.is(err) {
				t.Fatalf("got %v", err)
			}
			if st := f.hub.Stats(repoID, "m.gguf"); st.Requests != tc.requests {
				t.Errorf("%d requests, want %d", st.Requests, tc.requests)
			}
			f.nothingInPlace(t)
			f.onlyFiles(t) // no partial file either: nothing to resume
		})
	}
}

func isStatus(code int) func(error) bool {
	return func(err error) bool {
		var se *StatusError
		return errors.As(err, &se) && se.Status == code
	}
}

// nothingInPlace checks that the destination does not exist.
func (f *fixture) nothingInPlace(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(f.dir, "models", "m.gguf")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a failed download left something at the destination: %v", err)
	}
}

// Wrong bytes are discarded with their sidecar, not kept for a resume.
func TestMismatchRemovesPartial(t *testing.T) {
	f := newFixture(t, 100_000)
	f.hub.SetFault(repoID, "m.gguf", hubtest.Fault{WrongBytes: true})
	if _, err := f.get(t, f.req()); !errors.Is(err, ErrMismatch) {
		t.Fatal(err)
	}
	f.onlyFiles(t)
}

// A full disk is one clear error: no retry, nothing left behind.
func TestDiskFull(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full")
	}
	f := newFixture(t, 200_000)
	f.d.open = func(*os.Root, string) (*os.File, error) { return os.OpenFile("/dev/full", os.O_WRONLY, 0) }
	_, err := f.get(t, f.req())
	if !errors.Is(err, ErrDiskFull) {
		t.Fatalf("got %v", err)
	}
	if st := f.hub.Stats(repoID, "m.gguf"); st.Requests != 1 {
		t.Fatalf("%d requests: a full disk was retried", st.Requests)
	}
	f.onlyFiles(t)
}

// Two Gets of one destination share one transfer; one of them giving up
// does not stop it for the others.
func TestSharedTransfer(t *testing.T) {
	f := newFixture(t, 1<<20)
	gate := make(chan struct{})
	f.hub.SetFault(repoID, "m.gguf", hubtest.Fault{Gate: gate, GateAfter: 1000})
	type out struct {
		res Result
		err error
	}
	results := make(chan out, 2)
	for i := range 2 {
		go func() {
			res, err := f.d.Get(context.Background(), f.req(), nil)
			results <- out{res, err}
		}()
		f.waitWaiters(t, i+1) // the first one starts the transfer
	}
	quitter, cancel := context.WithCancel(context.Background())
	quit := make(chan error, 1)
	go func() {
		_, err := f.d.Get(quitter, f.req(), nil)
		quit <- err
	}()
	f.waitWaiters(t, 3)
	cancel()
	if err := <-quit; !errors.Is(err, context.Canceled) {
		t.Fatalf("the caller that gave up: %v", err)
	}
	f.waitWaiters(t, 2)
	close(gate)
	shared := 0
	for range 2 {
		o := <-results
		if o.err != nil {
			t.Fatal(o.err)
		}
		if o.res.Shared {
			shared++
		}
	}
	if shared != 1 {
		t.Fatalf("%d of 2 results say shared", shared)
	}
	f.placed(t)
	if st := f.hub.Stats(repoID, "m.gguf"); st.Requests != 1 {
		t.Fatalf("%d requests for one file", st.Requests)
	}
}

// A different file to a destination that is being downloaded is refused.
func TestConflict(t *testing.T) {
	f := newFixture(t, 10_000)
	gate := make(chan struct{})
	defer close(gate)
	f.hub.SetFault(repoID, "m.gguf", hubtest.Fault{Gate: gate, GateAfter: 10})
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go func() { _, _ = f.d.Get(ctx, f.req(), nil) }()
	f.waitWaiters(t, 1)
	other := f.req()
	other.SHA256 = strings.Repeat("a", 64)
	if _, err := f.get(t, other); !errors.Is(err, ErrConflict) {
		t.Fatalf("conflicting download: %v", err)
	}
}

// waitWaiters waits until the one transfer has n callers.
func (f *fixture) waitWaiters(t *testing.T, n int) {
	t.Helper()
	testkit.WaitFor(t, fmt.Sprintf("one transfer with %d waiters", n), func() bool {
		tr := f.d.Transfers()
		return len(tr) == 1 && tr[0].Waiters == n
	})
}

func TestInvalidRequests(t *testing.T) {
	f := newFixture(t, 10)
	for _, name := range []string{"", "../x", "/abs", "a/../../b", `a\b`, "a\x00b", "./x", "a//b", "."} {
		req := f.req()
		req.Name = name
		if _, err := f.get(t, req); err == nil {
			t.Errorf("name %q accepted", name)
		}
	}
	for _, sum := range []string{"", "abc", strings.Repeat("A", 64), strings.Repeat("0", 63) + "g", "../" + strings.Repeat("0", 61)} {
		req := f.req()
		req.SHA256 = sum
		if _, err := f.get(t, req); err == nil {
			t.Errorf("digest %q accepted", sum)
		}
	}
	for _, u := range []string{"ftp://x/y", "file:///etc/passwd", "/relative", "http://"} {
		req := f.req()
		req.URL = u
		if _, err := f.get(t, req); err == nil {
			t.Errorf("URL %q accepted", u)
		}
	}
	if st := f.hub.Stats(repoID, "m.gguf"); st.Requests != 0 {
		t.Fatalf("invalid requests reached the hub: %+v", st)
	}
	if ents, _ := os.ReadDir(f.dir); len(ents) != 0 {
		t.Fatalf("invalid requests wrote %v", ents)
	}
}

// A symlink inside the destination directory that points outside it is
// not followed: nothing is written outside.
func TestSymlinkEscape(t *testing.T) {
	f := newFixture(t, 1000)
	outside := t.TempDir()
	must(t, os.Symlink(outside, filepath.Join(f.dir, "models")))
	if _, err := f.get(t, f.req()); err == nil {
		t.Fatal("downloaded through a symlink out of the root")
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Fatalf("wrote outside the root: %v", ents)
	}
}

func TestParseSHA256(t *testing.T) {
	good := strings.Repeat("ab", 32)
	for _, s := range []string{good, `"` + good + `"`, `W/"` + good + `"`, strings.ToUpper(good)} {
		if got, err := ParseSHA256(s); err != nil || got != good {
			t.Errorf("ParseSHA256(%q) = %q, %v", s, got, err)
		}
	}
	for _, s := range []string{"", `""`, good[:63], good + "0", "sha256:" + good, "../../" + good[6:], good[:63] + "z", `"a1b2c3"`} {
		if _, err := ParseSHA256(s); err == nil {
			t.Errorf("ParseSHA256(%q) accepted", s)
		}
	}
}

func TestParseContentRange(t *testing.T) {
	for _, tc := range []struct {
		s                 string
		start, end, total int64
		ok                bool
	}{
		{"bytes 0-9/10", 0, 9, 10, true},
		{"bytes 5-9/*", 5, 9, 0, true},
		{"bytes */10", -1, -1, 10, true},
		{"bytes 5-10/10", 0, 0, 0, false},
		{"bytes 9-5/10", 0, 0, 0, false},
		{"bytes -1-5/10", 0, 0, 0, false},
		{"items 0-9/10", 0, 0, 0, false},
		{"bytes 0-9", 0, 0, 0, false},
		{"", 0, 0, 0, false},
	} {
		s, e, n, ok := parseContentRange(tc.s)
		if ok != tc.ok || ok && (s != tc.start || e != tc.end || n != tc.total) {
			t.Errorf("%q = %d %d %d %v", tc.s, s, e, n, ok)
		}
	}
}

// The token goes to the configured endpoint's origin only: a redirect to
// any other host drops it.
func TestTokenStaysHome(t *testing.T) {
	home, _ := url.Parse("http://127.0.0.1:8000")
	p := Policy{Home: home, Token: "hf_secret"}
	first, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:8000/o/r/resolve/main/m.gguf", nil)
	p.Authorize(first)
	if first.Header.Get("Authorization") != "Bearer hf_secret" {
		t.Fatal("no token for the endpoint")
	}
	for target, keep := range map[string]bool{
		"http://127.0.0.1:8000/cdn/x":    true,
		"https://cdn.example.com/x":      false,
		"https://127.0.0.1.nip.io:8000/": false,
		"https://sub.127.0.0.1:8000/x":   false,
	} {
		next, _ := http.NewRequest(http.MethodGet, target, nil)
		next.Header.Set("Authorization", "Bearer hf_secret") // what net/http copied over
		err := p.checkRedirect(next, []*http.Request{first})
		if err != nil {
			t.Fatalf("%s: %v", target, err)
		}
		if got := next.Header.Get("Authorization") != ""; got != keep {
			t.Errorf("redirect to %s: token kept = %v", target, got)
		}
	}
	// The same with the real client, against the fake hub redirecting to
	// its own CDN path: the endpoint's own origin keeps the token.
	f := newFixture(t, 10_000, func(o *Options) { o.Policy.Token = "hf_secret" })
	f.hub.LFSRedirect = true
	if _, err := f.get(t, f.req()); err != nil {
		t.Fatal(err)
	}
	if st := f.hub.Stats(repoID, "m.gguf"); len(st.Auth) != 1 || !strings.HasPrefix(st.Auth[0], "/cdn/") {
		t.Fatalf("token seen at %v", st.Auth)
	}
}

func TestPolicyCheck(t *testing.T) {
	home, _ := url.Parse("http://127.0.0.1:8000")
	p := Policy{Home: home}
	for s, ok := range map[string]bool{
		"http://127.0.0.1:8000/x":          true,
		"http://127.0.0.1:8001/x":          false,
		"https://cdn.example.com/x":        true,
		"http://cdn.example.com/x":         false,
		"https://user:pw@cdn.example.com/": false,
		"https://169.254.169.254/latest":   false,
		"https://[::1]/x":                  false,
		"https://[::ffff:127.0.0.1]/x":     false,
		"https://0.0.0.0/x":                false,
		"https://192.168.1.1/x":            false,
		"https://100.64.0.1/x":             false,
		"https://8.8.8.8/x":                true,
		"https://[64:ff9b::808:808]/x":     true,  // NAT64 of 8.8.8.8
		"https://[64:ff9b::a00:1]/x":       false, // NAT64 of 10.0.0.1
		"https://[2606:4700::1111]/x":      true,
	} {
		u, _ := url.Parse(s)
		if err := p.Check(u); (err == nil) != ok {
			t.Errorf("Check(%s) = %v", s, err)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
