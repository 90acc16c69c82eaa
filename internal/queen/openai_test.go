package queen

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rbee/rbee/internal/apikeys"
	"github.com/rbee/rbee/internal/config"
	"github.com/rbee/rbee/internal/jobs"
	"github.com/rbee/rbee/internal/openai"
	"github.com/rbee/rbee/internal/testkit"
	"github.com/rbee/rbee/internal/testkit/fakeworker"
	"github.com/rbee/rbee/internal/wire"
)

func chatJSON(model string, stream bool) string {
	return fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"abc"}],"stream":%v}`, model, stream)
}

// postAPI sends an OpenAI API request to the queen.
func (q *testQueen) postAPI(t *testing.T, path, body string, header ...string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, q.srv.URL+path, strings.NewReader(body))
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := q.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func content(t *testing.T, body []byte) string {
	t.Helper()
	var c openai.ChatCompletion
	if err := json.Unmarshal(body, &c); err != nil || len(c.Choices) != 1 {
		t.Fatalf("not a chat completion: %s", body)
	}
	return c.Choices[0].Message.Content
}

// A chat request goes straight to a ready worker, as messages.
func TestAPIRoutesToWorker(t *testing.T) {
	q := newQueen(t, nil, nil)
	w := fakeworker.NewT(t, fakeworker.Config{ID: "w1", Tokens: []string{"d", "e", "f"}})
	q.beat(t, w.Heartbeat("alpha", wire.StateReady, 0))
	code, body := q.postAPI(t, "/v1/chat/completions", chatJSON("alpha", false))
	if code != http.StatusOK || content(t, body) != "def" {
		t.Fatalf("%d %s", code, body)
	}
	req := w.LastRequest()
	if req.Prompt != "" || len(req.Messages) != 1 || req.Messages[0].Role != "user" || req.Messages[0].Content != "abc" {
		t.Errorf("worker request %+v", req)
	}
	// The job protocol stays where it was.
	if evs, err := q.run(t, wire.Operation{Operation: wire.OpInfer, Model: "alpha", InferenceRequest: wire.InferenceRequest{Prompt: "abc"}}); err != nil || len(evs) == 0 {
		t.Errorf("infer job: %v", err)
	}
}

// spawnHive is a fake hive whose catalog has alpha and whose worker_spawn
// starts a fake worker that heartbeats to q, once release is closed.
type spawnHive struct {
	*fakeHive
	spawns  atomic.Int32
	release chan struct{}
	fail    string // worker_spawn fails with this message
}

func newSpawnHive(t *testing.T, q **testQueen, size int64) *spawnHive {
	t.Helper()
	h := &spawnHive{release: make(chan struct{})}
	h.fakeHive = newFakeHive(t, "localhost", map[string]jobs.RunFunc{
		wire.OpModelList: func(j *jobs.Job) error {
			j.Emit(wire.NewResult([]wire.ModelInfo{{ID: "alpha", SizeBytes: size, AddedAt: time.Unix(1600000000, 0)}}))
			return nil
		},
		wire.OpWorkerSpawn: func(j *jobs.Job) error {
			n := h.spawns.Add(1)
			select {
			case <-h.release:
			case <-j.Context().Done():
				return context.Cause(j.Context())
			}
			if h.fail != "" {
				return wire.Errorf(wire.CodeLoadFailed, "%s", h.fail)
			}
			w := fakeworker.NewT(t, fakeworker.Config{ID: fmt.Sprintf("w-%d", n), Tokens: []string{"x", "y", "z"}})
			hb := w.Heartbeat(j.Op().Model, wire.StateReady, 0)
			if err := (*q).Workers().Heartbeat(hb); err != nil {
				return err
			}
			j.Emit(wire.NewResult(wire.WorkerInfo{WorkerID: hb.WorkerID, HiveID: "localhost", Model: hb.Model, URL: hb.URL, State: wire.StateReady}))
			return nil
		},
	})
	return h
}

// Requests for a model that no worker serves start one worker on a hive
// whose catalog has it, all waiting for that one start.
func TestAPIStartsOneWorker(t *testing.T) {
	var q *testQueen
	h := newSpawnHive(t, &q, 1<<20)
	q = newQueen(t, []config.Hive{h.hive}, nil)

	const n = 5
	type answer struct {
		code int
		body []byte
	}
	answers := make(chan answer, n)
	for range n {
		go func() {
			code, body := q.postAPI(t, "/v1/chat/completions", chatJSON("alpha", false))
			answers <- answer{code, body}
		}()
	}
	testkit.WaitFor(t, "every request to wait for the start", func() bool { return q.queued("alpha") == n && h.spawns.Load() == 1 })
	close(h.release)
	for range n {
		a := <-answers
		if a.code != http.StatusOK || content(t, a.body) != "xyz" {
			t.Errorf("%d %s", a.code, a.body)
		}
	}
	if got := h.spawns.Load(); got != 1 {
		t.Errorf("%d workers started for %d requests", got, n)
	}
	var spawnOps int
	for _, op := range h.received() {
		if op.Operation == wire.OpWorkerSpawn {
			spawnOps++
			if op.Model != "alpha" || op.HiveID != "" {
				t.Errorf("spawn operation %+v", op)
			}
		}
	}
	if spawnOps != 1 {
		t.Errorf("%d worker_spawn operations", spawnOps)
	}
	// The next request uses the worker started.
	if code, body := q.postAPI(t, "/v1/chat/completions", chatJSON("alpha", false)); code != http.StatusOK {
		t.Errorf("after the start: %d %s", code, body)
	}
	if h.spawns.Load() != 1 {
		t.Error("a second worker was started")
	}
}

// A start that fails fails every request that waited for it, with the
// hive's reason and a 503; the next request tries again.
func TestAPIStartFails(t *testing.T) {
	var q *testQueen
	h := newSpawnHive(t, &q, 1<<20)
	h.fail = "the GGUF is broken"
	close(h.release)
	q = newQueen(t, []config.Hive{h.hive}, nil)
	for i := range 2 {
		code, body := q.postAPI(t, "/v1/chat/completions", chatJSON("alpha", true))
		if code != http.StatusServiceUnavailable || !strings.Contains(string(body), "the GGUF is broken") || !strings.Contains(string(body), `"code":"load_failed"`) {
			t.Errorf("attempt %d: %d %s", i, code, body)
		}
	}
	if h.spawns.Load() != 2 {
		t.Errorf("%d starts for two requests after failures", h.spawns.Load())
	}
}

// A model no live hive has is a 404, and nothing is started; so is a path,
// which the API never loads.
func TestAPIUnknownModel(t *testing.T) {
	var q *testQueen
	h := newSpawnHive(t, &q, 1<<20)
	q = newQueen(t, []config.Hive{h.hive, deadHive(t, "gone")}, nil)
	for _, model := range []string{"gpt-4o", "/etc/passwd", "../alpha", "hf:owner/repo"} {
		code, body := q.postAPI(t, "/v1/chat/completions", chatJSON(model, false))
		if code != http.StatusNotFound || !strings.Contains(string(body), `"code":"model_not_found"`) {
			t.Errorf("%s: %d %s", model, code, body)
		}
	}
	if h.spawns.Load() != 0 {
		t.Error("a worker was started")
	}
}

// capsHive serves the fake hive with a /v1/capabilities of our choosing.
func capsHive(t *testing.T, h *fakeHive, ramFree uint64) config.Hive {
	t.Helper()
	target, _ := url.Parse(h.srv.URL)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/capabilities", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(wire.HiveCapabilities{HiveID: h.hive.Alias, RAMFreeBytes: ramFree, GPUs: []wire.GPUInfo{}})
	})
	mux.Handle("/", httputil.NewSingleHostReverseProxy(target))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	hv := h.hive
	hv.HivePort = srv.Listener.Addr().(*net.TCPAddr).Port
	return hv
}

// A hive without the memory for the model is not asked to start it.
func TestAPINoRoom(t *testing.T) {
	var q *testQueen
	h := newSpawnHive(t, &q, 8<<30)
	close(h.release)
	q = newQueen(t, []config.Hive{capsHive(t, h.fakeHive, 1<<30)}, nil)
	code, body := q.postAPI(t, "/v1/completions", `{"model":"alpha","prompt":"abc"}`)
	if code != http.StatusServiceUnavailable || !strings.Contains(string(body), "no hive has room") {
		t.Errorf("%d %s", code, body)
	}
	if h.spawns.Load() != 0 {
		t.Error("a worker was started")
	}
	// With the room, it is.
	q.setHives(capsHive(t, h.fakeHive, 16<<30))
	if code, body := q.postAPI(t, "/v1/completions", `{"model":"alpha","prompt":"abc"}`); code != http.StatusOK {
		t.Errorf("with room: %d %s", code, body)
	}
}

// A full queue: 429 with Retry-After, so clients back off and retry.
func TestAPIQueueFull(t *testing.T) {
	q := newQueen(t, nil, func(o *Options) { o.MaxQueue = 1 })
	w := fakeworker.NewT(t, fakeworker.Config{ID: "w1", Tokens: []string{"x"}})
	q.beat(t, w.Heartbeat("alpha", wire.StateBusy, 1)) // its one slot is taken
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	waiting, _ := http.NewRequestWithContext(ctx, http.MethodPost, q.srv.URL+"/v1/chat/completions", strings.NewReader(chatJSON("alpha", false)))
	go func() {
		if resp, err := q.srv.Client().Do(waiting); err == nil {
			resp.Body.Close()
		}
	}()
	testkit.WaitFor(t, "a request in the queue", func() bool { return q.queued("alpha") == 1 })
	req, _ := http.NewRequest(http.MethodPost, q.srv.URL+"/v1/chat/completions", strings.NewReader(chatJSON("alpha", false)))
	resp, err := q.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(b), `"code":"queue_full"`) {
		t.Errorf("%d %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), b)
	}
	// The client that waited and left is out of the queue.
	cancel()
	testkit.WaitFor(t, "the queue to empty", func() bool { return len(q.sched.QueueStatus()) == 0 })
}

// A client that leaves mid-stream gets its generation stopped on the
// worker at once.
func TestAPIClientGoneCancelsWorkerJob(t *testing.T) {
	q := newQueen(t, nil, nil)
	w := fakeworker.NewT(t, fakeworker.Config{ID: "w1", Tokens: []string{"x"}})
	w.SetHold(true)
	q.beat(t, w.Heartbeat("alpha", wire.StateReady, 0))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, q.srv.URL+"/v1/chat/completions", strings.NewReader(chatJSON("alpha", true)))
	resp, err := q.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "data: ") {
		t.Fatalf("first line %q %v", line, err)
	}
	cancel()
	resp.Body.Close()
	if id := testkit.Receive(t, "the worker job's cancellation", w.Deletes()); id != "inf-1" {
		t.Errorf("deleted %q", id)
	}
}

// With API keys, the OpenAI API needs one; the job protocol on this
// machine does not, and keys do not open it to others.
func TestAPIKeysOnQueen(t *testing.T) {
	store := apikeys.Open(t.TempDir() + "/keys.json")
	key, _, err := store.Create("test")
	if err != nil {
		t.Fatal(err)
	}
	q := newQueen(t, nil, func(o *Options) { o.APIKeys = apikeys.NewChecker(store) })
	w := fakeworker.NewT(t, fakeworker.Config{ID: "w1", Tokens: []string{"x"}})
	q.beat(t, w.Heartbeat("alpha", wire.StateReady, 0))
	if code, body := q.postAPI(t, "/v1/chat/completions", chatJSON("alpha", false)); code != http.StatusUnauthorized || !strings.Contains(string(body), "invalid_api_key") {
		t.Errorf("without a key: %d %s", code, body)
	}
	if code, body := q.postAPI(t, "/v1/chat/completions", chatJSON("alpha", false), "Authorization", "Bearer "+key); code != http.StatusOK {
		t.Errorf("with the key: %d %s", code, body)
	}
	if _, err := q.run(t, wire.Operation{Operation: wire.OpStatus}); err != nil {
		t.Errorf("job protocol from this machine: %v", err)
	}

	// Bound beyond loopback with keys and no queen_token: the job
	// protocol is refused to other machines (heartbeats have their own
	// rule: authHeartbeat).
	open := New(Options{URL: "http://queen.test", APIKeys: apikeys.NewChecker(store), Hives: func() ([]config.Hive, error) { return nil, nil }})
	t.Cleanup(func() { open.Close() })
	h := open.Handler()
	for _, path := range []string{"/v1/jobs", "/v1/shutdown"} {
		r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(`{"operation":"status"}`))
		r.RemoteAddr = "192.0.2.9:5555"
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if rec.Code != http.StatusForbidden {
			t.Errorf("remote %s: %d %s", path, rec.Code, rec.Body)
		}
	}
	r := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", strings.NewReader(chatJSON("alpha", false)))
	r.RemoteAddr = "192.0.2.9:5555"
	r.Header.Set("Authorization", "Bearer "+key)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	if rec.Code == http.StatusForbidden || rec.Code == http.StatusUnauthorized {
		t.Errorf("remote API request with a key: %d %s", rec.Code, rec.Body)
	}
}

// /v1/models lists the catalogs of live hives and the models of workers.
func TestAPIModels(t *testing.T) {
	var q *testQueen
	h := newSpawnHive(t, &q, 1<<20)
	q = newQueen(t, []config.Hive{h.hive, deadHive(t, "gone")}, nil)
	w := fakeworker.NewT(t, fakeworker.Config{ID: "w1", Tokens: []string{"x"}})
	q.beat(t, w.Heartbeat("by-hand", wire.StateReady, 0))
	resp, err := q.srv.Client().Get(q.srv.URL + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list openai.ModelList
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatal(err)
	}
	if len(list.Data) != 2 ||
		list.Data[0].ID != "alpha" || list.Data[0].Loaded || list.Data[0].OwnedBy != "localhost" || list.Data[0].Created != 1600000000 ||
		list.Data[1].ID != "by-hand" || !list.Data[1].Loaded || list.Data[1].OwnedBy != "localhost" {
		t.Errorf("%+v", list)
	}
}

// A worker that does not answer is passed over (and marked gone); one
// that breaks mid-stream ends the answer with worker_gone: in the stream
// once it has begun, as a 503 before.
func TestAPIWorkerFailures(t *testing.T) {
	q := newQueen(t, nil, nil)
	q.beat(t, deadWorker(t, "dead", "alpha", 4))
	good := fakeworker.NewT(t, fakeworker.Config{ID: "good", Tokens: []string{"o", "k"}})
	hb := good.Heartbeat("alpha", wire.StateReady, 3) // busier, so tried second
	hb.Slots = 4
	q.beat(t, hb)
	code, body := q.postAPI(t, "/v1/chat/completions", chatJSON("alpha", false))
	if code != http.StatusOK || content(t, body) != "ok" {
		t.Fatalf("with a dead worker: %d %s", code, body)
	}
	if w, _ := q.Workers().Get("dead"); w.State != wire.StateGone {
		t.Errorf("the dead worker is %s", w.State)
	}

	good.SetDropAfter(1)
	code, body = q.postAPI(t, "/v1/chat/completions", chatJSON("alpha", true))
	if code != http.StatusOK || !strings.Contains(string(body), `"content":"o"`) || !strings.Contains(string(body), `"code":"worker_gone"`) || !strings.HasSuffix(string(body), "data: [DONE]\n\n") {
		t.Errorf("stream cut mid-way: %d %s", code, body)
	}
	q.beat(t, good.Heartbeat("alpha", wire.StateReady, 0)) // it is alive after all
	code, body = q.postAPI(t, "/v1/chat/completions", chatJSON("alpha", false))
	if code != http.StatusServiceUnavailable || !strings.Contains(string(body), `"code":"worker_gone"`) {
		t.Errorf("answer cut mid-way: %d %s", code, body)
	}
}

// A queen that stops while requests wait for a worker's start answers them
// 503, not as an internal error.
func TestAPIShutdownDuringStart(t *testing.T) {
	var q *testQueen
	h := newSpawnHive(t, &q, 1<<20)
	q = newQueen(t, []config.Hive{h.hive}, nil)
	type answer struct {
		code int
		body []byte
	}
	done := make(chan answer, 1)
	go func() {
		code, body := q.postAPI(t, "/v1/completions", `{"model":"alpha","prompt":"abc"}`)
		done <- answer{code, body}
	}()
	testkit.WaitFor(t, "the request to wait for the start", func() bool { return q.queued("alpha") == 1 && h.spawns.Load() == 1 })
	_ = q.Close()
	a := <-done
	if a.code != http.StatusServiceUnavailable || !strings.Contains(string(a.body), "shutting down") {
		t.Errorf("%d %s", a.code, a.body)
	}
}
