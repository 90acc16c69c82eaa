// Package fakeworker is the one fake worker of rbee's tests and
// benchmarks: an in-process server of the worker API with scripted
// streams. It is apart from testkit because it uses the jobs, httpapi, sse
// and wire packages, whose own tests use testkit.
package fakeworker

import (
	"cmp"
	"context"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rbee/rbee/internal/httpapi"
	"github.com/rbee/rbee/internal/jobs"
	"github.com/rbee/rbee/internal/sse"
	"github.com/rbee/rbee/internal/wire"
)

// Config says who a Worker is. Everything it does is
// scripted afterwards with its Set methods.
type Config struct {
	ID     string // worker id in heartbeats and /v1/ready; "fake-worker"
	HiveID string // hive id in heartbeats; "localhost"
	Model  string // model in heartbeats and /v1/ready; "fake"
	Slots  int    // generations at once, as reported; 1
	PID    int    // pid in heartbeats; 0: none
	Token  string // bearer token every endpoint but /health requires; "": HiveToken's credential
	// HiveToken is the token of the worker's hive. When set, the worker's
	// credential is httpapi.WorkerToken(HiveToken, ID), as a hive hands
	// it: required on its API (unless Token is set) and sent with
	// StartHeartbeats' heartbeats, as the queen requires.
	HiveToken string
	Tokens    []string // the text pieces every stream sends
	Addr      string   // "host:port" to listen on; "127.0.0.1:0"
	// Loading starts the worker loading its model, as llm-worker-rbee
	// starts: see SetProgress, SetState and FailLoad.
	Loading bool
}

// Worker serves a worker's HTTP API (contracts.md, "Worker API") from
// this process, in the shapes and with the status codes llm-worker-rbee
// uses: GET /health, GET /v1/ready, GET /v1/loading/progress (progress
// events, then a result or an error event, then "data: [DONE]"), POST
// /v1/inference (201 {job_id, sse_url}), GET /v1/inference/{id}/stream
// (token events, then an end or an error event, then "data: [DONE]") and
// DELETE /v1/inference/{id}. What its streams say and when is scripted,
// and what it was asked is recorded. It is safe for concurrent use; it
// needs no *testing.T, so that benchmarks can run it too.
type Worker struct {
	ID, HiveID string
	URL        string // e.g. "http://127.0.0.1:40123"
	Slots      int
	PID        int
	// Credential is what its heartbeats carry: Token, else the one
	// derived from Config.HiveToken; "": none.
	Credential string

	srv     *http.Server
	served  chan struct{} // closed when Serve returned
	done    chan struct{} // closed by Close: held streams end
	closing sync.Once
	inside  sync.WaitGroup // handlers and heartbeat loops
	active  atomic.Int32
	kick    chan struct{} // the load changed: heartbeat now
	deletes chan string
	closed  chan string

	mu       sync.Mutex
	model    string
	state    string
	load     load
	script   script
	full     bool
	next     int
	jobs     map[string]*job
	requests []wire.InferenceRequest
}

// script is what a stream does; each stream takes a copy when it starts.
type script struct {
	tokens    []string
	end       *wire.End        // nil: an "eos" end counting the tokens
	streamErr *wire.ErrorEvent // non-nil: the stream ends with it
	gate      <-chan struct{}
	gateAt    int // tokens sent before waiting at gate
	hold      bool
	dropAfter int
}

type job struct {
	cancel chan struct{}
	once   sync.Once
	ended  atomic.Bool
}

// maxRecords bounds the records of a worker that runs for a long
// benchmark: channels of job ids nobody reads drop the surplus.
const maxRecords = 1024

// New starts a fake worker on cfg.Addr, by default a loopback port.
func New(cfg Config) (*Worker, error) {
	ln, err := net.Listen("tcp", cmp.Or(cfg.Addr, "127.0.0.1:0"))
	if err != nil {
		return nil, err
	}
	w := &Worker{
		ID:      cmp.Or(cfg.ID, "fake-worker"),
		HiveID:  cmp.Or(cfg.HiveID, "localhost"),
		URL:     "http://" + ln.Addr().String(),
		Slots:   max(cfg.Slots, 1),
		PID:     cfg.PID,
		served:  make(chan struct{}),
		done:    make(chan struct{}),
		kick:    make(chan struct{}, 1),
		deletes: make(chan string, maxRecords),
		closed:  make(chan string, maxRecords),
		model:   cmp.Or(cfg.Model, "fake"),
		state:   wire.StateReady,
		load:    load{total: defaultLoadTotal, changed: make(chan struct{})},
		script:  script{tokens: append([]string(nil), cfg.Tokens...)},
		jobs:    map[string]*job{},
	}
	if cfg.Loading {
		w.state = wire.StateLoading
	}
	w.Credential = cmp.Or(cfg.Token, httpapi.WorkerToken(cfg.HiveToken, w.ID))
	w.srv = httpapi.NewServer(w.handler(w.Credential))
	go func() {
		defer close(w.served)
		_ = w.srv.Serve(ln)
	}()
	return w, nil
}

// NewT is New for a test, closed by its cleanup.
func NewT(t testing.TB, cfg Config) *Worker {
	t.Helper()
	w, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	return w
}

// Close stops serving: held streams end, connections close, heartbeats
// stop. It returns once every goroutine of the worker has.
func (w *Worker) Close() {
	w.closing.Do(func() {
		close(w.done)
		_ = w.srv.Close()
		<-w.served
	})
	w.inside.Wait()
}

func (w *Worker) handler(token string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(rw http.ResponseWriter, r *http.Request) {
		httpapi.WriteJSON(rw, http.StatusOK, map[string]string{"status": "ok"})
	})
	gate := &httpapi.Gate{Token: token}
	mux.Handle("GET /v1/ready", gate.Wrap(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		httpapi.WriteJSON(rw, http.StatusOK, w.Ready())
	})))
	mux.Handle("GET /v1/loading/progress", gate.Wrap(httpapi.Handler(w.progress)))
	mux.Handle("POST /v1/inference", gate.Wrap(httpapi.Handler(w.submit)))
	mux.Handle("GET /v1/inference/{id}/stream", gate.Wrap(httpapi.Handler(w.stream)))
	mux.Handle("DELETE /v1/inference/{id}", gate.Wrap(httpapi.Handler(w.cancel)))
	mux.Handle("/", httpapi.Handler(func(rw http.ResponseWriter, r *http.Request) error {
		return wire.NotFound("no such endpoint: %s %s", r.Method, r.URL.Path)
	}))
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w.inside.Add(1)
		defer w.inside.Done()
		mux.ServeHTTP(rw, r)
	})
}

func (w *Worker) submit(rw http.ResponseWriter, r *http.Request) error {
	var req wire.InferenceRequest
	if err := httpapi.DecodeJSON(rw, r, httpapi.MaxBody, &req); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.state != wire.StateReady:
		return &wire.Error{Code: wire.CodeNotReady, Message: "the model is not loaded (state " + w.state + ")", RetryAfter: 1}
	case w.full:
		return &wire.Error{Code: wire.CodeQueueFull, Message: "the worker's queue is full; retry later", RetryAfter: 1}
	}
	w.requests = append(w.requests, req)
	w.next++
	id := "inf-" + strconv.Itoa(w.next)
	w.jobs[id] = &job{cancel: make(chan struct{})}
	httpapi.WriteJSON(rw, http.StatusCreated, wire.JobCreated{JobID: id, SSEURL: "/v1/inference/" + id + "/stream"})
	return nil
}

func (w *Worker) stream(rw http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	w.mu.Lock()
	j, sc := w.jobs[id], w.script
	w.mu.Unlock()
	if j == nil {
		return wire.NotFound("no inference job %q", id)
	}
	w.setActive(1)
	defer w.setActive(-1)
	sw := sse.NewWriter(rw)
	gone := func() { report(w.closed, id) }
	finish := func(ev sse.Typed) error {
		j.ended.Store(true)
		_ = sw.Event(ev)
		_ = sw.Done()
		return nil
	}
	cancelled := wire.NewEnd(wire.StopCancelled, 0, 0, wire.Timings{})
	// A held stream pings while it is quiet, as the real worker's do, so
	// that readers' idle timeouts see a live worker.
	ping := time.NewTicker(jobs.HeartbeatInterval)
	defer ping.Stop()
	for i := 0; i <= len(sc.tokens); i++ {
	gated:
		for sc.gate != nil && i == min(sc.gateAt, len(sc.tokens)) {
			select {
			case <-sc.gate:
				break gated
			case <-ping.C:
				if sw.Ping() != nil {
					gone()
					return nil
				}
			case <-j.cancel:
				return finish(cancelled)
			case <-r.Context().Done():
				gone()
				return nil
			case <-w.done:
				return nil
			}
		}
		if i == len(sc.tokens) {
			break
		}
		if sc.dropAfter > 0 && i == sc.dropAfter {
			panic(http.ErrAbortHandler) // the connection drops as if the worker died
		}
		select {
		case <-j.cancel:
			return finish(cancelled)
		default:
		}
		if sw.Event(wire.NewToken(sc.tokens[i], i)) != nil {
			gone()
			return nil
		}
	}
	for sc.hold {
		select {
		case <-ping.C:
			if sw.Ping() != nil {
				gone()
				return nil
			}
		case <-r.Context().Done():
			gone()
			return nil
		case <-w.done:
			return nil
		}
	}
	if sc.streamErr != nil {
		return finish(*sc.streamErr)
	}
	return finish(sc.endEvent())
}

func (w *Worker) cancel(rw http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	w.mu.Lock()
	j := w.jobs[id]
	w.mu.Unlock()
	if j == nil {
		return wire.NotFound("no inference job %q", id)
	}
	report(w.deletes, id)
	j.once.Do(func() { close(j.cancel) })
	httpapi.WriteJSON(rw, http.StatusOK, map[string]any{"job_id": id, "cancelled": !j.ended.Load()})
	return nil
}

// report records a job id for a test that may never read it.
func report(ch chan string, id string) {
	select {
	case ch <- id:
	default:
	}
}

func (sc script) endEvent() wire.End {
	if sc.end != nil {
		return *sc.end
	}
	return wire.NewEnd(wire.StopEOS, 3, len(sc.tokens),
		wire.Timings{TTFTMs: 1.5, PromptMs: 0.5, DecodeMs: 2, TotalMs: 4, DecodeTPS: 1000})
}

func (w *Worker) setActive(delta int32) {
	w.active.Add(delta)
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// SetTokens sets the text pieces of the streams that start from now on.
func (w *Worker) SetTokens(tokens ...string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.script.tokens = append([]string(nil), tokens...)
}

// SetEnd sets the end event of the streams that start from now on. By
// default it is an "eos" end counting their tokens.
func (w *Worker) SetEnd(end wire.End) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.script.end = &end
}

// End is the end event a stream that starts now sends.
func (w *Worker) End() wire.End {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.script.endEvent()
}

// SetStreamError makes the streams that start from now on end with ev
// after their tokens instead of an end event; nil undoes it.
func (w *Worker) SetStreamError(ev *wire.ErrorEvent) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.script.streamErr = ev
}

// SetGate holds each stream that starts from now on after its first
// `after` tokens (all of them when after < 0 or past the last) until a
// value comes on gate or gate is closed: send one value per stream to
// release them one by one, or close it to release all. A DELETE of a held
// job ends its stream with a "cancelled" end, as the real worker's does. A
// nil gate holds nothing.
func (w *Worker) SetGate(gate <-chan struct{}, after int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if after < 0 {
		after = int(^uint(0) >> 1)
	}
	w.script.gate, w.script.gateAt = gate, after
}

// SetHold keeps the streams that start from now on open after their tokens
// until their reader goes away, whatever a DELETE says: a worker whose
// machine stopped answering. Closed then reports them.
func (w *Worker) SetHold(hold bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.script.hold = hold
}

// SetDropAfter cuts the connection of the streams that start from now on
// after n tokens, as a worker that dies does; 0 never.
func (w *Worker) SetDropAfter(n int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.script.dropAfter = n
}

// SetFull makes POST /v1/inference answer 429 queue_full, or not.
func (w *Worker) SetFull(full bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.full = full
}

// SetState sets the state /v1/ready and the heartbeats report; any but
// "ready" turns requests away with 503 not_ready, as a loading worker does.
// Leaving "loading" for any state but "error" finishes the load: the
// progress streams end with their result.
func (w *Worker) SetState(state string) {
	w.setLoad(func() { w.state = state })
}

// Requests are the inference requests the worker accepted, in order.
func (w *Worker) Requests() []wire.InferenceRequest {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]wire.InferenceRequest(nil), w.requests...)
}

// RequestCount is how many inference requests the worker accepted.
func (w *Worker) RequestCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.requests)
}

// LastRequest is the last inference request the worker accepted; the zero
// request when none came.
func (w *Worker) LastRequest() wire.InferenceRequest {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.requests) == 0 {
		return wire.InferenceRequest{}
	}
	return w.requests[len(w.requests)-1]
}

// Deletes yields the ids of the jobs DELETEd, in order.
func (w *Worker) Deletes() <-chan string { return w.deletes }

// Closed yields the ids of the jobs whose stream lost its reader before
// its end.
func (w *Worker) Closed() <-chan string { return w.closed }

// Active is the number of streams in flight.
func (w *Worker) Active() int { return int(w.active.Load()) }

// Ready is what GET /v1/ready answers now: like the real worker's, the
// state is "busy" while every slot is taken.
func (w *Worker) Ready() wire.Ready {
	w.mu.Lock()
	model, state, loadErr := w.model, w.state, w.load.err
	w.mu.Unlock()
	r := wire.Ready{Ready: state == wire.StateReady, State: state, WorkerID: w.ID, Model: model,
		Slots: w.Slots, Active: w.Active(), Device: "cpu"}
	if state == wire.StateError {
		r.Error = loadErr
	}
	if r.Ready && r.Active >= r.Slots {
		r.State = wire.StateBusy
	}
	return r
}

// Heartbeat is the heartbeat of this worker serving model in state with
// active generations, for a test that posts it itself.
func (w *Worker) Heartbeat(model, state string, active int) wire.Heartbeat {
	return wire.Heartbeat{WorkerID: w.ID, HiveID: w.HiveID, Model: model, URL: w.URL, State: state,
		Slots: w.Slots, Active: active, Device: "cpu", PID: w.PID}
}

// LiveHeartbeat is the heartbeat of the worker as it is now.
func (w *Worker) LiveHeartbeat() wire.Heartbeat {
	r := w.Ready()
	return w.Heartbeat(r.Model, r.State, r.Active)
}

// StartHeartbeats posts LiveHeartbeat to queen every interval and at once
// when the load changes, as the real worker does, until stop is called (it
// waits for the last one) or the worker closes. Failed heartbeats are
// retried at the next interval. They carry the worker's Credential, when
// it has one, in place of queen's token.
func (w *Worker) StartHeartbeats(queen *jobs.Client, every time.Duration) (stop func()) {
	if w.Credential != "" {
		c := *queen
		c.Token = w.Credential
		queen = &c
	}
	ctx, cancel := context.WithCancel(context.Background())
	var loop sync.WaitGroup
	loop.Add(1)
	w.inside.Add(1)
	go func() {
		defer w.inside.Done()
		defer loop.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			bctx, bcancel := context.WithTimeout(ctx, 5*time.Second)
			_ = queen.Heartbeat(bctx, w.LiveHeartbeat()) // a failed one is retried at the next
			bcancel()
			select {
			case <-ctx.Done():
				return
			case <-w.done:
				return
			case <-t.C:
			case <-w.kick:
			}
		}
	}()
	return func() {
		cancel()
		loop.Wait()
	}
}
