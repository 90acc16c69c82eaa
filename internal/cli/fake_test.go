package cli

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/rbee/rbee/internal/httpapi"
	"github.com/rbee/rbee/internal/jobs"
	"github.com/rbee/rbee/internal/testkit"
	"github.com/rbee/rbee/internal/wire"
)

func TestMain(m *testing.M) { os.Exit(testkit.CheckLeaks(m)) }

// fakeQueen is a queen made of the real job registry and scripted
// operations: handlers[op] runs the nth call of op with n counted from 0.
type fakeQueen struct {
	t        *testing.T
	srv      *httptest.Server
	reg      *jobs.Registry
	mu       sync.Mutex
	ops      []wire.Operation
	handlers map[string]func(j *jobs.Job, n int) error
	shutdown chan struct{}
}

func newFakeQueen(t *testing.T, handlers map[string]func(j *jobs.Job, n int) error) *fakeQueen {
	t.Helper()
	q := &fakeQueen{t: t, handlers: handlers, shutdown: make(chan struct{}, 1)}
	q.srv = httptest.NewServer(q.handler())
	t.Cleanup(q.close)
	t.Setenv("RBEE_QUEEN_URL", q.srv.URL)
	return q
}

// newFakeQueenOn serves the fake on a given listener, for auto-start tests.
func newFakeQueenOn(t *testing.T, ln net.Listener, handlers map[string]func(j *jobs.Job, n int) error) *fakeQueen {
	q := &fakeQueen{t: t, handlers: handlers, shutdown: make(chan struct{}, 1)}
	q.srv = &httptest.Server{Listener: ln, Config: &http.Server{Handler: q.handler()}}
	q.srv.Start()
	return q
}

func (q *fakeQueen) handler() http.Handler {
	q.reg = jobs.NewRegistry(jobs.Options{Actor: "queen-rbee"})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		httpapi.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("POST /v1/shutdown", func(w http.ResponseWriter, r *http.Request) {
		httpapi.WriteJSON(w, http.StatusAccepted, map[string]string{"status": "shutting down"})
		q.shutdown <- struct{}{}
	})
	q.reg.Mount(mux, func(op wire.Operation) (jobs.RunFunc, error) {
		h, ok := q.handlers[op.Operation]
		if !ok {
			return nil, wire.BadRequest("unknown operation %q", op.Operation)
		}
		q.mu.Lock()
		n := 0
		for _, o := range q.ops {
			if o.Operation == op.Operation {
				n++
			}
		}
		q.ops = append(q.ops, op)
		q.mu.Unlock()
		return func(j *jobs.Job) error { return h(j, n) }, nil
	})
	return mux
}

func (q *fakeQueen) close() {
	q.srv.Close()
	_ = q.reg.Close()
}

func (q *fakeQueen) opNames() []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	names := make([]string, len(q.ops))
	for i, o := range q.ops {
		names[i] = o.Operation
	}
	return names
}

func (q *fakeQueen) op(name string) wire.Operation {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, o := range q.ops {
		if o.Operation == name {
			return o
		}
	}
	q.t.Fatalf("no %s operation received; got %v", name, q.ops)
	return wire.Operation{}
}

// isolate points HOME and the XDG directories into a temp dir.
func isolate(t *testing.T) string {
	t.Helper()
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, "config"))
	t.Setenv("XDG_DATA_HOME", filepath.Join(home, "data"))
	t.Setenv("RBEE_QUEEN_URL", "")
	return home
}

type result struct {
	code           int
	stdout, stderr string
}

// run runs rbee in-process.
func run(t *testing.T, a *App, ctx context.Context, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	if a == nil {
		a = &App{}
	}
	a.Stdout, a.Stderr = &out, &errb
	if a.Dir == "" {
		a.Dir = t.TempDir()
	}
	if ctx == nil {
		ctx = t.Context()
	}
	code := a.Run(ctx, args)
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

func (r result) lastErrLine() string {
	lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
	return lines[len(lines)-1]
}

// emitText emits s as one token per byte, then an end event.
func emitText(j *jobs.Job, s string) {
	for i := range len(s) {
		j.Emit(wire.NewToken(s[i:i+1], i))
	}
	j.Emit(wire.End{Type: wire.TypeEnd, StopReason: wire.StopEOS, TokensIn: 3, TokensOut: len(s),
		Timings: wire.Timings{TTFTMs: 12, DecodeTPS: 150}})
}
