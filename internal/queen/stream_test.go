package queen

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rbee/rbee/internal/config"
	"github.com/rbee/rbee/internal/testkit"
	"github.com/rbee/rbee/internal/testkit/fakeworker"
	"github.com/rbee/rbee/internal/wire"
)

// stoppedWorker is a worker that stops answering as a SIGSTOPped process
// does: its kernel still takes connections and requests, but no answer
// comes (beforeSubmit), or its stream sends its headers and then nothing,
// before any token.
func stoppedWorker(t *testing.T, id, model string, beforeSubmit bool) (wire.Heartbeat, <-chan struct{}) {
	t.Helper()
	reached := make(chan struct{}, 1)
	gone := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case reached <- struct{}{}:
		default:
		}
		if r.Method == http.MethodPost && !beforeSubmit {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusCreated)
			_, _ = w.Write([]byte(`{"job_id":"inf-1","sse_url":"/v1/inference/inf-1/stream"}`))
			return
		}
		if r.Method == http.MethodGet {
			w.Header().Set("Content-Type", "text/event-stream")
			w.WriteHeader(http.StatusOK)
			_ = http.NewResponseController(w).Flush()
		}
		select {
		case <-gone:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(gone); srv.CloseClientConnections(); srv.Close() })
	return wire.Heartbeat{WorkerID: id, HiveID: "localhost", Model: model, URL: srv.URL, State: wire.StateReady, Slots: 1}, reached
}

// A worker that stops answering before the first token (a SIGSTOPped
// process: connections open, no answer) is given up once its heartbeats
// stop, and the request goes to another worker instead of hanging, whether
// it stopped before taking the request or before its first token.
func TestInferStoppedWorkerFailsOver(t *testing.T) {
	for _, beforeSubmit := range []bool{true, false} {
		q := newQueen(t, nil, func(o *Options) { o.WorkerTimeout = 300 * time.Millisecond })
		hb, reached := stoppedWorker(t, "stopped", "m", beforeSubmit)
		if err := q.Workers().Heartbeat(hb); err != nil {
			t.Fatal(err)
		}
		done := q.start(t, inferOp("m", "p"))
		testkit.Receive(t, "the request to reach the stopped worker", reached)

		// Another worker, alive (heartbeating), is there to take over.
		good := fakeworker.NewT(t, fakeworker.Config{ID: "good", Tokens: []string{"o", "k"}})
		stop := make(chan struct{})
		beating := make(chan struct{})
		go func() {
			defer close(beating)
			for {
				_ = q.Workers().Heartbeat(good.Heartbeat("m", wire.StateReady, 0))
				select {
				case <-stop:
					return
				case <-time.After(50 * time.Millisecond):
				}
			}
		}()
		err := testkit.Receive(t, "the request to end", done)
		close(stop)
		<-beating
		if err != nil {
			t.Fatalf("before submit %v: %v", beforeSubmit, err)
		}
		if good.RequestCount() != 1 {
			t.Fatalf("before submit %v: the live worker got %d requests", beforeSubmit, good.RequestCount())
		}
		if w, _ := q.Workers().Get("stopped"); w.State != wire.StateGone {
			t.Fatalf("the stopped worker is %s", w.State)
		}
	}
}

// A request waiting for a loading worker that vanishes (its heartbeats
// stop: the registry times it out by the clock, with no change anyone is
// told of) starts another worker itself, rather than waiting for a later
// request to.
func TestAPIVanishedLoadingWorkerStartsAnother(t *testing.T) {
	var q *testQueen
	h := newSpawnHive(t, &q, 1<<20)
	close(h.release)
	q = newQueen(t, []config.Hive{h.hive}, func(o *Options) { o.WorkerTimeout = 300 * time.Millisecond })
	loading := fakeworker.NewT(t, fakeworker.Config{ID: "loading"})
	if err := q.Workers().Heartbeat(loading.Heartbeat("alpha", wire.StateLoading, 0)); err != nil {
		t.Fatal(err)
	}

	type answer struct {
		code int
		body []byte
	}
	answers := make(chan answer, 1)
	go func() {
		code, body := q.postAPI(t, "/v1/chat/completions", chatJSON("alpha", false))
		answers <- answer{code, body}
	}()
	a := testkit.Receive(t, "the answer", answers)
	if a.code != http.StatusOK || content(t, a.body) != "xyz" {
		t.Fatalf("%d %s", a.code, a.body)
	}
	if h.spawns.Load() != 1 {
		t.Fatalf("%d workers started", h.spawns.Load())
	}
	if w, _ := q.Workers().Get("loading"); !strings.Contains(w.GoneReason, "heartbeat") {
		t.Fatalf("the loading worker: %+v", w)
	}
}
