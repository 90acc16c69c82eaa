package queen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rbee/rbee/internal/config"
	"github.com/rbee/rbee/internal/httpapi"
	"github.com/rbee/rbee/internal/jobs"
	"github.com/rbee/rbee/internal/sse"
	"github.com/rbee/rbee/internal/wire"
)

// testQueen is a queen on a real HTTP server and a keeper-side client.
type testQueen struct {
	*Server
	srv    *httptest.Server
	client *jobs.Client

	mu    sync.Mutex
	hives []config.Hive
}

func (q *testQueen) setHives(hives ...config.Hive) {
	q.mu.Lock()
	q.hives = hives
	q.mu.Unlock()
}

func newQueen(t *testing.T, hives []config.Hive, mutate func(*Options)) *testQueen {
	t.Helper()
	tq := &testQueen{hives: append([]config.Hive{}, hives...)}
	opt := Options{
		URL: "http://queen.test",
		Hives: func() ([]config.Hive, error) {
			tq.mu.Lock()
			defer tq.mu.Unlock()
			return tq.hives, nil
		},
		HealthTimeout: 500 * time.Millisecond,
		Loopback:      true,
		HiveTokenDir:  t.TempDir(),
	}
	if mutate != nil {
		mutate(&opt)
	}
	tq.Server = New(opt)
	tq.srv = httptest.NewServer(tq.Handler())
	tq.client = &jobs.Client{BaseURL: tq.srv.URL, Token: opt.Token, HTTP: tq.srv.Client()}
	t.Cleanup(func() {
		if err := tq.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		tq.srv.CloseClientConnections()
		tq.srv.Close()
	})
	return tq
}

// run submits op and collects its events; the terminal one is last.
func (q *testQueen) run(t *testing.T, op wire.Operation) ([]wire.Event, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var evs []wire.Event
	_, err := q.client.Run(ctx, op, func(e wire.Event) error {
		evs = append(evs, e)
		return nil
	})
	return evs, err
}

// result runs op and decodes its result data into v.
func (q *testQueen) result(t *testing.T, op wire.Operation, v any) []wire.Event {
	t.Helper()
	evs, err := q.run(t, op)
	if err != nil {
		t.Fatalf("%s: %v (events %v)", op.Operation, err, evs)
	}
	last := evs[len(evs)-1]
	if last.Type != wire.TypeResult {
		t.Fatalf("%s ended with %+v", op.Operation, last)
	}
	if v != nil {
		if err := json.Unmarshal(last.Data, v); err != nil {
			t.Fatalf("%s result %s: %v", op.Operation, last.Data, err)
		}
	}
	return evs
}

func (q *testQueen) post(t *testing.T, path string, body []byte) (int, wire.ErrorBody) {
	t.Helper()
	resp, err := q.srv.Client().Post(q.srv.URL+path, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var eb wire.ErrorBody
	_ = json.NewDecoder(resp.Body).Decode(&eb)
	return resp.StatusCode, eb
}

func (q *testQueen) beat(t *testing.T, hb wire.Heartbeat) {
	t.Helper()
	body, _ := json.Marshal(hb)
	if code, eb := q.post(t, "/v1/workers/heartbeat", body); code != http.StatusOK {
		t.Fatalf("heartbeat %+v: %d %+v", hb, code, eb)
	}
}

// fakeWorker serves the worker's inference API like llm-worker-rbee does.
type fakeWorker struct {
	id  string
	srv *httptest.Server

	tokens    []string
	end       wire.End
	dropAfter atomic.Int32 // > 0: cut the connection after this many tokens
	hold      bool         // after the tokens, keep the stream open until it is closed
	// gate, when set, holds each stream after its tokens until a value
	// comes (or the stream is closed), then ends it.
	gate chan struct{}
	// streamErr, when set, ends each stream with this error event instead.
	streamErr *wire.ErrorEvent
	full      atomic.Bool  // answer 429 queue_full
	refusals  atomic.Int32 // requests turned away while full

	// auths records the Authorization header of every request.
	auths []string

	mu       sync.Mutex
	requests []wire.InferenceRequest
	deletes  chan string   // job ids DELETEd
	closed   chan struct{} // a held stream was closed by the queen
}

func newFakeWorker(t *testing.T, id string, tokens ...string) *fakeWorker {
	t.Helper()
	w := &fakeWorker{
		id: id, tokens: tokens,
		end: wire.End{Type: wire.TypeEnd, StopReason: wire.StopEOS, TokensIn: 3, TokensOut: len(tokens),
			Timings: wire.Timings{TTFTMs: 1.5, PromptMs: 0.5, DecodeMs: 2, TotalMs: 4, DecodeTPS: 1000}},
		deletes: make(chan string, 8),
		closed:  make(chan struct{}, 8),
	}
	mux := http.NewServeMux()
	mux.Handle("POST /v1/inference", httpapi.Handler(func(rw http.ResponseWriter, r *http.Request) error {
		var req wire.InferenceRequest
		if err := httpapi.DecodeJSON(rw, r, httpapi.MaxBody, &req); err != nil {
			return err
		}
		if w.full.Load() {
			w.refusals.Add(1)
			return wire.Errorf(wire.CodeQueueFull, "queue full")
		}
		w.mu.Lock()
		w.requests = append(w.requests, req)
		w.mu.Unlock()
		httpapi.WriteJSON(rw, http.StatusCreated, wire.JobCreated{JobID: "inf-1", SSEURL: "/v1/inference/inf-1/stream"})
		return nil
	}))
	mux.HandleFunc("GET /v1/inference/{id}/stream", func(rw http.ResponseWriter, r *http.Request) {
		sw := sse.NewWriter(rw)
		for i, tok := range w.tokens {
			if d := int(w.dropAfter.Load()); d > 0 && i == d {
				panic(http.ErrAbortHandler) // the connection drops as if the worker died
			}
			_ = sw.Event(wire.NewToken(tok, i))
		}
		if w.hold {
			<-r.Context().Done()
			w.closed <- struct{}{}
			return
		}
		if w.gate != nil {
			select {
			case <-w.gate:
			case <-r.Context().Done():
				return
			}
		}
		if w.streamErr != nil {
			_ = sw.Event(*w.streamErr)
			_ = sw.Done()
			return
		}
		_ = sw.Event(w.end)
		_ = sw.Done()
	})
	mux.HandleFunc("DELETE /v1/inference/{id}", func(rw http.ResponseWriter, r *http.Request) {
		w.deletes <- r.PathValue("id")
		httpapi.WriteJSON(rw, http.StatusOK, map[string]any{"cancelled": true})
	})
	w.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w.mu.Lock()
		w.auths = append(w.auths, r.Header.Get("Authorization"))
		w.mu.Unlock()
		mux.ServeHTTP(rw, r)
	}))
	t.Cleanup(func() {
		w.srv.CloseClientConnections()
		w.srv.Close()
	})
	return w
}

func (w *fakeWorker) authorizations() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.auths...)
}

func (w *fakeWorker) heartbeat(model, state string, active int) wire.Heartbeat {
	return wire.Heartbeat{WorkerID: w.id, HiveID: "localhost", Model: model, URL: w.srv.URL, State: state, Slots: 1, Active: active, PID: 42}
}

func (w *fakeWorker) lastRequest() wire.InferenceRequest {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.requests[len(w.requests)-1]
}

func (w *fakeWorker) requestCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.requests)
}

// fakeHive is a job server with a few hive operations.
type fakeHive struct {
	hive      config.Hive
	reg       *jobs.Registry
	srv       *httptest.Server
	mu        sync.Mutex
	ops       []wire.Operation
	shutdowns int
	auths     []string // the Authorization header of every request
}

func newFakeHive(t *testing.T, alias string, runs map[string]jobs.RunFunc) *fakeHive {
	t.Helper()
	return newTokenHive(t, alias, "", runs)
}

// newTokenHive is a fake hive that, like rbee-hive with RBEE_HIVE_TOKEN,
// requires token on every endpoint but /health (none: it requires nothing).
func newTokenHive(t *testing.T, alias, token string, runs map[string]jobs.RunFunc) *fakeHive {
	t.Helper()
	h := &fakeHive{reg: jobs.NewRegistry(jobs.Options{Actor: "rbee-hive"})}
	mux := http.NewServeMux()
	h.reg.Mount(mux, func(op wire.Operation) (jobs.RunFunc, error) {
		h.mu.Lock()
		h.ops = append(h.ops, op)
		h.mu.Unlock()
		if run, ok := runs[op.Operation]; ok {
			return run, nil
		}
		return nil, wire.BadRequest("fake hive: unknown operation %q", op.Operation)
	})
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		httpapi.WriteJSON(w, http.StatusOK, wire.HiveHealth{Status: "ok", HiveID: alias})
	})
	mux.HandleFunc("GET /v1/capabilities", func(w http.ResponseWriter, r *http.Request) {
		httpapi.WriteJSON(w, http.StatusOK, wire.HiveCapabilities{HiveID: alias, OS: "linux", Arch: "amd64", CPUCores: 4, GPUs: []wire.GPUInfo{}})
	})
	mux.HandleFunc("POST /v1/shutdown", func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		h.shutdowns++
		h.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
		go h.srv.Close() // then stop answering, like the real hive exiting
	})
	gate := &httpapi.Gate{Token: token}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		h.auths = append(h.auths, r.Method+" "+r.URL.Path+" "+r.Header.Get("Authorization"))
		h.mu.Unlock()
		if r.URL.Path != "/health" {
			if err := gate.Check(r); err != nil {
				httpapi.WriteError(w, r, err)
				return
			}
		}
		mux.ServeHTTP(w, r)
	}))
	host, port, _ := net.SplitHostPort(h.srv.Listener.Addr().String())
	p, _ := strconv.Atoi(port)
	h.hive = config.Hive{Alias: alias, HostName: host, Port: 22, HivePort: p}
	t.Cleanup(func() {
		h.reg.Close()
		h.srv.CloseClientConnections()
		h.srv.Close()
	})
	return h
}

// authorizations lists "METHOD PATH AUTHORIZATION" of every request.
func (h *fakeHive) authorizations() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.auths...)
}

func (h *fakeHive) received() []wire.Operation {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]wire.Operation(nil), h.ops...)
}

// deadHive is a hive entry whose port answers no HTTP: a listener kept
// open for the test (so no other program can take the port meanwhile)
// that hangs up on every connection.
func deadHive(t *testing.T, alias string) config.Hive {
	t.Helper()
	return config.Hive{Alias: alias, HostName: "127.0.0.1", Port: 22, HivePort: deadPort(t)}
}

func deadPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	return ln.Addr().(*net.TCPAddr).Port
}

func errorCode(err error) string {
	var re *wire.Error
	if errors.As(err, &re) {
		return re.Code
	}
	return ""
}

func httpStatus(err error) int {
	var re *wire.Error
	if errors.As(err, &re) {
		return re.Status
	}
	return 0
}
