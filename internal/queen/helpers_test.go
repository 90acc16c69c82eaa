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
	"testing"
	"time"

	"github.com/rbee/rbee/internal/config"
	"github.com/rbee/rbee/internal/httpapi"
	"github.com/rbee/rbee/internal/jobs"
	"github.com/rbee/rbee/internal/testkit"
	"github.com/rbee/rbee/internal/wire"
)

// testQueen is a queen on a real HTTP server and a keeper-side client.
type testQueen struct {
	*Server
	srv    *httptest.Server
	client *jobs.Client
	tokens config.HiveTokens // the hives' tokens this queen reads

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
		// A hive that answers is never taken for offline because the
		// machine is slow; the dead ones hang up at once.
		HealthTimeout: 10 * time.Second,
		Loopback:      true,
		HiveTokenDir:  t.TempDir(),
	}
	if mutate != nil {
		mutate(&opt)
	}
	tq.Server = New(opt)
	tq.tokens = config.HiveTokens{Dir: opt.HiveTokenDir}
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
	return q.postAs(t, path, "", body)
}

// postAs posts body with bearer as its credential ("": none).
func (q *testQueen) postAs(t *testing.T, path, bearer string, body []byte) (int, wire.ErrorBody) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, q.srv.URL+path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	httpapi.SetBearer(req, bearer)
	resp, err := q.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var eb wire.ErrorBody
	_ = json.NewDecoder(resp.Body).Decode(&eb)
	return resp.StatusCode, eb
}

// beat posts hb as its worker would: with the credential its hive hands
// it, derived from the hive's token (made here if the hive has none yet).
func (q *testQueen) beat(t *testing.T, hb wire.Heartbeat) {
	t.Helper()
	if code, eb := q.beatAs(t, hb, q.credential(t, hb.HiveID, hb.WorkerID)); code != http.StatusOK {
		t.Fatalf("heartbeat %+v: %d %+v", hb, code, eb)
	}
}

// beatAs posts hb with bearer as its credential ("": none).
func (q *testQueen) beatAs(t *testing.T, hb wire.Heartbeat, bearer string) (int, wire.ErrorBody) {
	t.Helper()
	body, _ := json.Marshal(hb)
	return q.postAs(t, "/v1/workers/heartbeat", bearer, body)
}

// credential is worker workerID's credential as hive hiveID hands it, the
// hive's token made if it has none.
func (q *testQueen) credential(t *testing.T, hiveID, workerID string) string {
	t.Helper()
	tok, _, err := q.tokens.Ensure(hiveID)
	if err != nil {
		t.Fatal(err)
	}
	return httpapi.WorkerToken(tok, workerID)
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

// deadWorker is the heartbeat of a worker whose port refuses connections:
// the port is held for the test where nothing listens, so that no other
// server can take it meanwhile.
func deadWorker(t *testing.T, id, model string, slots int) wire.Heartbeat {
	t.Helper()
	url := "http://127.0.0.1:" + testkit.ReservePortT(t).String()
	return wire.Heartbeat{WorkerID: id, HiveID: "localhost", Model: model, URL: url, State: wire.StateReady, Slots: slots}
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
