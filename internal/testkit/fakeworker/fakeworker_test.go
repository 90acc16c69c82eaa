package fakeworker_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rbee/rbee/internal/httpapi"
	"github.com/rbee/rbee/internal/jobs"
	"github.com/rbee/rbee/internal/testkit"
	"github.com/rbee/rbee/internal/testkit/fakeworker"
	"github.com/rbee/rbee/internal/wire"
	"github.com/rbee/rbee/internal/workerclient"
)

func TestMain(m *testing.M) { os.Exit(testkit.CheckLeaks(m)) }

// Every test speaks to the fake through the real worker client: what it
// accepts, the fake says as llm-worker-rbee does.
func client(w *fakeworker.Worker, token string) *workerclient.Client {
	return &workerclient.Client{BaseURL: w.URL, Token: token}
}

func collect(t *testing.T, c *workerclient.Client, req wire.InferenceRequest) ([]string, wire.Event, error) {
	t.Helper()
	var toks []string
	end, err := c.Generate(t.Context(), req, func(e wire.Event) error {
		if e.Type == wire.TypeToken {
			toks = append(toks, e.T)
		}
		return nil
	})
	return toks, end, err
}

func TestGenerate(t *testing.T) {
	w := fakeworker.NewT(t, fakeworker.Config{ID: "w1", Model: "m", Slots: 2, Token: "s3cret", Tokens: []string{"a", "b", "c"}})
	c := client(w, "s3cret")
	if err := c.WaitReady(t.Context()); err != nil {
		t.Fatal(err)
	}
	r, err := c.Ready(t.Context())
	want := wire.Ready{Ready: true, State: wire.StateReady, WorkerID: "w1", Model: "m", Slots: 2, Device: "cpu"}
	if err != nil || r != want {
		t.Fatalf("ready: %+v, %v; want %+v", r, err, want)
	}
	toks, end, err := collect(t, c, wire.InferenceRequest{Prompt: "hello"})
	if err != nil || !reflect.DeepEqual(toks, []string{"a", "b", "c"}) {
		t.Fatalf("tokens %q, %v", toks, err)
	}
	got, _ := json.Marshal(end)
	var ev wire.Event
	_ = json.Unmarshal(got, &ev)
	wantEnd, _ := json.Marshal(w.End())
	var wantEv wire.Event
	_ = json.Unmarshal(wantEnd, &wantEv)
	if !reflect.DeepEqual(ev, wantEv) || ev.StopReason != wire.StopEOS || ev.TokensOut != 3 {
		t.Fatalf("end %s, want %s", got, wantEnd)
	}
	w.SetTokens("x")
	w.SetEnd(wire.NewEnd(wire.StopMaxTokens, 2, 1, wire.Timings{}))
	toks, end, err = collect(t, c, wire.InferenceRequest{Prompt: "again"})
	if err != nil || len(toks) != 1 || end.StopReason != wire.StopMaxTokens {
		t.Fatalf("rescripted: %q %+v %v", toks, end, err)
	}
	if w.RequestCount() != 2 || w.LastRequest().Prompt != "again" || w.Requests()[0].Prompt != "hello" {
		t.Fatalf("requests: %+v", w.Requests())
	}
}

func TestAuth(t *testing.T) {
	w := fakeworker.NewT(t, fakeworker.Config{Token: "s3cret"})
	for _, token := range []string{"", "wrong"} {
		_, err := client(w, token).Ready(t.Context())
		if e, ok := wire.AsError(err); !ok || e.Code != wire.CodeUnauthorized || e.Status != http.StatusUnauthorized {
			t.Fatalf("token %q: %v", token, err)
		}
	}
	resp, err := http.Get(w.URL + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/health without a token: %s", resp.Status)
	}
}

func TestRefusals(t *testing.T) {
	w := fakeworker.NewT(t, fakeworker.Config{Tokens: []string{"a"}})
	c := client(w, "")
	w.SetFull(true)
	_, err := c.Submit(t.Context(), wire.InferenceRequest{Prompt: "p"})
	if e, ok := wire.AsError(err); !ok || e.Code != wire.CodeQueueFull || e.Status != http.StatusTooManyRequests {
		t.Fatalf("full: %v", err)
	}
	// workerclient does not read Retry-After; the worker sends it.
	resp, err := http.Post(w.URL+"/v1/inference", "application/json", strings.NewReader(`{"prompt":"p"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("full: Retry-After %q", resp.Header.Get("Retry-After"))
	}
	w.SetFull(false)
	w.SetState(wire.StateLoading)
	_, err = c.Submit(t.Context(), wire.InferenceRequest{Prompt: "p"})
	if e, ok := wire.AsError(err); !ok || e.Code != wire.CodeNotReady || e.Status != http.StatusServiceUnavailable {
		t.Fatalf("loading: %v", err)
	}
	if r, _ := c.Ready(t.Context()); r.Ready || r.State != wire.StateLoading {
		t.Fatalf("loading ready: %+v", r)
	}
	if err := c.Cancel(t.Context(), "inf-404"); !wire.IsCode(err, wire.CodeNotFound) {
		t.Fatalf("cancel of an unknown job: %v", err)
	}
	if w.RequestCount() != 0 {
		t.Fatalf("refused requests were recorded: %+v", w.Requests())
	}
}

func TestStreamError(t *testing.T) {
	w := fakeworker.NewT(t, fakeworker.Config{Tokens: []string{"a"}})
	ev := wire.NewError(wire.CodeInternal, "the model broke")
	w.SetStreamError(&ev)
	toks, _, err := collect(t, client(w, ""), wire.InferenceRequest{Prompt: "p"})
	if e, ok := wire.AsError(err); !ok || e.Code != wire.CodeInternal || e.Message != "the model broke" || len(toks) != 1 {
		t.Fatalf("tokens %q, %v", toks, err)
	}
}

func TestDropAfter(t *testing.T) {
	w := fakeworker.NewT(t, fakeworker.Config{Tokens: []string{"a", "b", "c"}})
	w.SetDropAfter(2)
	toks, _, err := collect(t, client(w, ""), wire.InferenceRequest{Prompt: "p"})
	if !errors.Is(err, io.ErrUnexpectedEOF) || len(toks) != 2 {
		t.Fatalf("tokens %q, %v", toks, err)
	}
}

// A gate holds streams in flight; one value releases one stream, and a
// DELETE ends a held one as cancelled.
func TestGate(t *testing.T) {
	w := fakeworker.NewT(t, fakeworker.Config{Tokens: []string{"a", "b"}})
	gate := make(chan struct{})
	w.SetGate(gate, 1)
	c := client(w, "")
	ends := make(chan wire.Event, 2)
	firsts := make(chan string, 2)
	start := func() wire.JobCreated {
		jc, err := c.Submit(t.Context(), wire.InferenceRequest{Prompt: "p"})
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			end, err := c.Stream(context.Background(), jc, func(e wire.Event) error {
				if e.Type == wire.TypeToken {
					firsts <- e.T
				}
				return nil
			})
			if err != nil {
				t.Error(err)
			}
			ends <- end
		}()
		return jc
	}
	first := start()
	if tok := testkit.Receive(t, "the first token", firsts); tok != "a" {
		t.Fatalf("first token %q", tok)
	}
	second := start()
	testkit.Receive(t, "the second stream's first token", firsts)
	testkit.WaitFor(t, "two streams in flight", func() bool { return w.Active() == 2 })
	if r := w.Ready(); r.State != wire.StateBusy || r.Active != 2 {
		t.Fatalf("ready with its slot taken: %+v", r)
	}
	gate <- struct{}{}
	end := testkit.Receive(t, "a released stream's end", ends)
	if end.StopReason != wire.StopEOS || end.TokensOut != 2 {
		t.Fatalf("released: %+v", end)
	}
	// Whichever stream is still held, cancelling both ends only it.
	for _, jc := range []wire.JobCreated{first, second} {
		if err := c.Cancel(t.Context(), jc.JobID); err != nil {
			t.Fatal(err)
		}
	}
	end = testkit.Receive(t, "the cancelled stream's end", ends)
	if end.StopReason != wire.StopCancelled {
		t.Fatalf("cancelled: %+v", end)
	}
	got := map[string]bool{testkit.Receive(t, "a DELETE", w.Deletes()): true, testkit.Receive(t, "a DELETE", w.Deletes()): true}
	if !got[first.JobID] || !got[second.JobID] {
		t.Fatalf("deletes %v", got)
	}
	testkit.WaitFor(t, "no stream in flight", func() bool { return w.Active() == 0 })
}

// A held stream stays open until its reader leaves, which Closed reports.
func TestHold(t *testing.T) {
	w := fakeworker.NewT(t, fakeworker.Config{Tokens: []string{"a"}})
	w.SetHold(true)
	c := client(w, "")
	jc, err := c.Submit(t.Context(), wire.InferenceRequest{Prompt: "p"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := c.Stream(ctx, jc, func(e wire.Event) error {
			cancel() // the reader goes away at its first token
			return nil
		})
		done <- err
	}()
	if id := testkit.Receive(t, "the closed stream", w.Closed()); id != jc.JobID {
		t.Fatalf("closed %q, want %q", id, jc.JobID)
	}
	if err := testkit.Receive(t, "the reader's end", done); !errors.Is(err, context.Canceled) {
		t.Fatalf("reader: %v", err)
	}
}

// Close ends held streams and returns once the worker's goroutines have.
func TestCloseEndsHeldStreams(t *testing.T) {
	w, err := fakeworker.New(fakeworker.Config{Tokens: []string{"a"}})
	if err != nil {
		t.Fatal(err)
	}
	w.SetHold(true)
	c := client(w, "")
	first := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() {
		_, err := c.Generate(t.Context(), wire.InferenceRequest{Prompt: "p"}, func(wire.Event) error {
			first <- struct{}{}
			return nil
		})
		done <- err
	}()
	testkit.Receive(t, "the first token", first)
	w.Close()
	if err := testkit.Receive(t, "the stream's end", done); err == nil {
		t.Fatal("a stream cut by Close ended well")
	}
	if _, err := c.Ready(t.Context()); err == nil {
		t.Fatal("a closed worker answered")
	}
}

// The heartbeats go out at once, then whenever the load changes.
func TestHeartbeats(t *testing.T) {
	beats := make(chan wire.Heartbeat, 64)
	queen := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/workers/heartbeat" || r.Header.Get("Authorization") != "Bearer q-token" {
			http.Error(rw, "unexpected "+r.URL.Path, http.StatusBadRequest)
			return
		}
		var hb wire.Heartbeat
		_ = json.NewDecoder(r.Body).Decode(&hb)
		beats <- hb
	}))
	defer queen.Close()
	w := fakeworker.NewT(t, fakeworker.Config{ID: "w7", HiveID: "h", Model: "m", PID: 42, Tokens: []string{"a"}})
	gate := make(chan struct{})
	w.SetGate(gate, -1)
	stop := w.StartHeartbeats(&jobs.Client{BaseURL: queen.URL, Token: "q-token"}, time.Hour)
	hb := testkit.Receive(t, "the first heartbeat", beats)
	want := wire.Heartbeat{WorkerID: "w7", HiveID: "h", Model: "m", URL: w.URL, State: wire.StateReady, Slots: 1, Device: "cpu", PID: 42}
	if hb != want {
		t.Fatalf("heartbeat %+v, want %+v", hb, want)
	}
	if got := w.Heartbeat("other", wire.StateLoading, 3); got.Model != "other" || got.State != wire.StateLoading || got.Active != 3 || got.URL != w.URL {
		t.Fatalf("scripted heartbeat %+v", got)
	}
	done := make(chan error, 1)
	go func() {
		_, err := client(w, "").Generate(t.Context(), wire.InferenceRequest{Prompt: "p"}, nil)
		done <- err
	}()
	for hb = testkit.Receive(t, "a busy heartbeat", beats); hb.Active != 1; {
		hb = testkit.Receive(t, "a busy heartbeat", beats)
	}
	if hb.State != wire.StateBusy {
		t.Fatalf("busy heartbeat %+v", hb)
	}
	close(gate)
	if err := testkit.Receive(t, "the stream's end", done); err != nil {
		t.Fatal(err)
	}
	for hb = testkit.Receive(t, "an idle heartbeat", beats); hb.Active != 0; {
		hb = testkit.Receive(t, "an idle heartbeat", beats)
	}
	stop()
}

// follow reads a worker's /v1/loading/progress as the hive does, sending
// each event on the channel it returns and the stream's end on the other.
func follow(w *fakeworker.Worker) (<-chan wire.Event, <-chan error) {
	evs, end := make(chan wire.Event, 64), make(chan error, 1)
	go func() {
		c := jobs.Client{BaseURL: w.URL}
		last, err := c.StreamPath(context.Background(), "/v1/loading/progress", func(e wire.Event) error {
			evs <- e
			return nil
		})
		if err == nil && last.Type != wire.TypeResult {
			err = errors.New("the stream ended with a " + last.Type + " event")
		}
		end <- err
	}()
	return evs, end
}

// A loading worker refuses work, streams its progress, and ends the
// stream with its /v1/ready answer once loaded.
func TestLoading(t *testing.T) {
	w := fakeworker.NewT(t, fakeworker.Config{ID: "w1", Model: "m", Loading: true, Tokens: []string{"a"}})
	c := client(w, "")
	if r, err := c.Ready(t.Context()); err != nil || r.Ready || r.State != wire.StateLoading {
		t.Fatalf("ready while loading: %+v, %v", r, err)
	}
	if _, err := c.Submit(t.Context(), wire.InferenceRequest{Prompt: "p"}); !wire.IsCode(err, wire.CodeNotReady) {
		t.Fatalf("submit while loading: %v", err)
	}
	waited := make(chan error, 1)
	go func() { waited <- c.WaitReady(t.Context()) }()
	evs, end := follow(w)
	if e := testkit.Receive(t, "the first progress", evs); e.Type != wire.TypeProgress || e.Done != 0 || e.Total != 100 {
		t.Fatalf("first progress %+v", e)
	}
	w.SetProgress(40, 200)
	if e := testkit.Receive(t, "the next progress", evs); e.Type != wire.TypeProgress || e.Done != 40 || e.Total != 200 {
		t.Fatalf("next progress %+v", e)
	}
	w.SetState(wire.StateReady)
	if err := testkit.Receive(t, "the stream's end", end); err != nil {
		t.Fatal(err)
	}
	if e := testkit.Receive(t, "the last progress", evs); e.Type != wire.TypeProgress || e.Done != 200 || e.Total != 200 {
		t.Fatalf("last progress %+v", e)
	}
	res := testkit.Receive(t, "the result", evs)
	var r wire.Ready
	if err := json.Unmarshal(res.Data, &r); err != nil || res.Type != wire.TypeResult || !r.Ready || r.WorkerID != "w1" || r.Model != "m" {
		t.Fatalf("result %+v (%v)", res, err)
	}
	if err := testkit.Receive(t, "WaitReady", waited); err != nil {
		t.Fatal(err)
	}
	if _, _, err := collect(t, c, wire.InferenceRequest{Prompt: "p"}); err != nil {
		t.Fatal(err)
	}
	// A loaded worker's stream answers at once.
	evs, end = follow(w)
	if err := testkit.Receive(t, "a loaded worker's stream", end); err != nil {
		t.Fatal(err)
	}
	if e := testkit.Receive(t, "its progress", evs); e.Type != wire.TypeProgress || e.Done != e.Total {
		t.Fatalf("progress of a loaded worker %+v", e)
	}
}

// A failed load ends the progress stream with a load_failed error event and
// leaves the worker up in state "error".
func TestFailLoad(t *testing.T) {
	w := fakeworker.NewT(t, fakeworker.Config{Loading: true})
	evs, end := follow(w)
	testkit.Receive(t, "the first progress", evs)
	waited := make(chan error, 1)
	go func() { waited <- client(w, "").WaitReady(t.Context()) }()
	w.FailLoad("tensor blk.0 has a bad shape")
	err := testkit.Receive(t, "the stream's end", end)
	// Status 0: the worker said it in its stream, not as an HTTP answer.
	if e, ok := wire.AsError(err); !ok || e.Code != wire.CodeLoadFailed || e.Message != "tensor blk.0 has a bad shape" || e.Status != 0 {
		t.Fatalf("stream: %v", err)
	}
	if err := testkit.Receive(t, "WaitReady", waited); err == nil || !strings.Contains(err.Error(), "bad shape") {
		t.Fatalf("WaitReady: %v", err)
	}
	if r := w.Ready(); r.Ready || r.State != wire.StateError || r.Error != "tensor blk.0 has a bad shape" {
		t.Fatalf("ready after a failed load: %+v", r)
	}
}

// Close ends a progress stream that waits for a load.
func TestCloseEndsProgress(t *testing.T) {
	w, err := fakeworker.New(fakeworker.Config{Loading: true})
	if err != nil {
		t.Fatal(err)
	}
	evs, end := follow(w)
	testkit.Receive(t, "the first progress", evs)
	w.Close()
	if err := testkit.Receive(t, "the stream's end", end); err == nil {
		t.Fatal("a stream cut by Close ended well")
	}
}

// The progress stream needs the token, as the real worker's does.
func TestProgressAuth(t *testing.T) {
	w := fakeworker.NewT(t, fakeworker.Config{Token: "s3cret"})
	for token, want := range map[string]bool{"": false, "s3cret": true} {
		c := jobs.Client{BaseURL: w.URL, Token: token}
		_, err := c.StreamPath(t.Context(), "/v1/loading/progress", nil)
		if ok := err == nil; ok != want {
			t.Errorf("token %q: %v", token, err)
		}
	}
}

// Addr says where the worker listens.
func TestAddr(t *testing.T) {
	p := testkit.ReservePortT(t)
	w := fakeworker.NewT(t, fakeworker.Config{Addr: "127.0.0.1:" + p.String()})
	p.Release()
	if w.URL != "http://127.0.0.1:"+p.String() {
		t.Fatalf("URL %s, want port %s", w.URL, p)
	}
	if _, err := client(w, "").Ready(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// A worker of a hive with a token proves its heartbeats, and guards its
// API, with the credential derived from it, as llm-worker-rbee does under
// a hive.
func TestHiveTokenCredential(t *testing.T) {
	const hiveToken = "the-hive-token-0123456789abcdef"
	want := httpapi.WorkerToken(hiveToken, "w9")
	auths := make(chan string, 8)
	queen := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		auths <- r.Header.Get("Authorization")
	}))
	defer queen.Close()
	w := fakeworker.NewT(t, fakeworker.Config{ID: "w9", HiveToken: hiveToken})
	if w.Credential != want {
		t.Fatalf("credential %q, want %q", w.Credential, want)
	}
	stop := w.StartHeartbeats(&jobs.Client{BaseURL: queen.URL, Token: "q-token"}, time.Hour)
	if got := testkit.Receive(t, "a heartbeat", auths); got != "Bearer "+want {
		t.Fatalf("heartbeat with %q", got)
	}
	stop()
	if _, err := client(w, "").Ready(t.Context()); err == nil {
		t.Fatal("its API took no credential")
	}
	if _, err := client(w, want).Ready(t.Context()); err != nil {
		t.Fatal(err)
	}
}
