package worker

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rbee/rbee/internal/engine"
	"github.com/rbee/rbee/internal/engine/fake"
	"github.com/rbee/rbee/internal/jobs"
	"github.com/rbee/rbee/internal/sse"
	"github.com/rbee/rbee/internal/testkit"
	"github.com/rbee/rbee/internal/wire"
)

type testWorker struct {
	*Server
	url string
}

func start(t testing.TB, m engine.Model, mutate func(*Config)) *testWorker {
	t.Helper()
	cfg := Config{
		WorkerID: "w1", HiveID: "localhost", ModelName: "fake", ModelSize: 100,
		Load: func(progress func(float32)) (engine.Model, error) {
			progress(0.5)
			return m, nil
		},
	}
	if mutate != nil {
		mutate(&cfg)
	}
	s := New(cfg)
	ts := httptest.NewServer(s.Handler())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		ts.Close()
	})
	w := &testWorker{Server: s, url: ts.URL}
	testkit.WaitFor(t, "ready", func() bool { return s.Ready().Ready })
	return w
}

func TestMain(m *testing.M) { os.Exit(testkit.CheckLeaks(m)) }

// job returns a kept job, or nil.
func (s *Server) job(id string) *jobs.Job {
	j, _ := s.jobs.Get(id)
	return j
}

// finished reports whether a job's run function has returned.
func finished(j *jobs.Job) func() bool {
	return func() bool {
		select {
		case <-j.Finished():
			return true
		default:
			return false
		}
	}
}

func (w *testWorker) post(t *testing.T, body string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Post(w.url+"/v1/inference", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func (w *testWorker) submit(t *testing.T, body string) wire.JobCreated {
	t.Helper()
	resp, b := w.post(t, body)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /v1/inference: %s %s", resp.Status, b)
	}
	var jc wire.JobCreated
	if err := json.Unmarshal(b, &jc); err != nil {
		t.Fatal(err)
	}
	return jc
}

// stream reads a job's events until [DONE].
func (w *testWorker) stream(t *testing.T, jc wire.JobCreated) (text string, events []wire.Event) {
	t.Helper()
	resp, err := http.Get(w.url + jc.SSEURL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := sse.NewReader(resp.Body)
	for {
		d, err := r.Next()
		if errors.Is(err, io.EOF) {
			return text, events
		}
		if err != nil {
			t.Fatalf("stream: %v", err)
		}
		var e wire.Event
		if err := json.Unmarshal(d, &e); err != nil {
			t.Fatal(err)
		}
		if e.Type == wire.TypeToken {
			text += e.T
		}
		events = append(events, e)
	}
}

func last(events []wire.Event) wire.Event { return events[len(events)-1] }

func TestInferenceStream(t *testing.T) {
	w := start(t, &fake.Model{}, nil)
	text, events := w.stream(t, w.submit(t, `{"prompt":"abc","temperature":0}`))
	if text != "defghijklmnopqrstuvwxyz" {
		t.Fatalf("text %q", text)
	}
	end := last(events)
	if end.Type != wire.TypeEnd || end.StopReason != wire.StopEOS || end.TokensIn != 4 || end.TokensOut != 23 {
		t.Fatalf("end event %+v", end)
	}
	if end.Timings == nil || end.Timings.TotalMs < end.Timings.TTFTMs {
		t.Fatalf("end event lacks timings: %+v", end)
	}
	for i, e := range events[:len(events)-1] {
		if e.Type != wire.TypeToken || e.I != i {
			t.Fatalf("event %d: %+v", i, e)
		}
	}
}

func TestStopAndMaxTokens(t *testing.T) {
	w := start(t, &fake.Model{}, nil)
	text, events := w.stream(t, w.submit(t, `{"prompt":"abc","max_tokens":100,"stop":["hij"]}`))
	if text != "defg" || last(events).StopReason != wire.StopSequence {
		t.Fatalf("stop: %q %+v", text, last(events))
	}
	text, events = w.stream(t, w.submit(t, `{"prompt":"abc","max_tokens":5}`))
	if text != "defgh" || last(events).StopReason != wire.StopMaxTokens {
		t.Fatalf("max_tokens: %q %+v", text, last(events))
	}
}

func TestBadRequests(t *testing.T) {
	w := start(t, &fake.Model{CtxSize: 64}, nil)
	cases := []struct {
		name, body string
		status     int
	}{
		{"max_tokens zero", `{"prompt":"a","max_tokens":0}`, 400},
		{"max_tokens negative", `{"prompt":"a","max_tokens":-5}`, 400},
		{"max_tokens past context", `{"prompt":"a","max_tokens":1000}`, 400},
		{"prompt past context", `{"prompt":"` + strings.Repeat("a", 100) + `"}`, 400},
		{"negative temperature", `{"prompt":"a","temperature":-1}`, 400},
		{"NaN temperature", `{"prompt":"a","temperature":NaN}`, 400},
		{"string temperature", `{"prompt":"a","temperature":"NaN"}`, 400},
		{"top_p zero", `{"prompt":"a","top_p":0}`, 400},
		{"malformed", `{"prompt":`, 400},
		{"not an object", `[1,2]`, 400},
		{"trailing garbage", `{"prompt":"a"} {}`, 400},
		{"unknown field", `{"prompt":"a","max_tokenz":3}`, 400},
		{"empty body", ``, 400},
		{"empty stop", `{"prompt":"a","stop":[""]}`, 400},
		{"too large", `{"prompt":"` + strings.Repeat("a", 1<<20) + `"}`, 413},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, b := w.post(t, c.body)
			if resp.StatusCode != c.status {
				t.Fatalf("status %d (%s), want %d", resp.StatusCode, b, c.status)
			}
			var eb wire.ErrorBody
			if err := json.Unmarshal(b, &eb); err != nil || eb.Error.Code == "" || eb.Error.Message == "" {
				t.Fatalf("error body %s", b)
			}
		})
	}
	// The worker still serves after all of that.
	if text, _ := w.stream(t, w.submit(t, `{"prompt":"x"}`)); text != "yz" {
		t.Fatalf("after bad requests: %q", text)
	}
}

func TestQueueFull(t *testing.T) {
	w := start(t, &fake.Model{Delay: 20 * time.Millisecond}, func(c *Config) { c.QueueCap = 1 })
	a := w.submit(t, `{"prompt":"a","max_tokens":50}`)
	testkit.WaitFor(t, "first job running", func() bool { return w.Ready().Active == 1 })
	b := w.submit(t, `{"prompt":"a","max_tokens":1}`)
	if r := w.Ready(); r.QueueLen != 1 || r.State != wire.StateBusy {
		t.Fatalf("ready while full: %+v", r)
	}
	resp, body := w.post(t, `{"prompt":"a"}`)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("third request: %s %s (Retry-After %q)", resp.Status, body, resp.Header.Get("Retry-After"))
	}
	// The queued one runs once the first is done.
	w.cancel(t, a.JobID)
	if text, _ := w.stream(t, b); text != "b" {
		t.Fatalf("queued job text %q", text)
	}
}

func (w *testWorker) cancel(t *testing.T, id string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodDelete, w.url+"/v1/inference/"+id, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("DELETE: %s", resp.Status)
	}
}

func TestDeleteStopsWithinOneToken(t *testing.T) {
	m := &fake.Model{Delay: 5 * time.Millisecond}
	w := start(t, m, nil)
	jc := w.submit(t, `{"prompt":"a","max_tokens":400}`)
	testkit.WaitFor(t, "some tokens", func() bool { return m.Decodes() >= 3 })
	w.cancel(t, jc.JobID)
	at := m.Decodes()
	_, events := w.stream(t, jc)
	end := last(events)
	if end.Type != wire.TypeEnd || end.StopReason != wire.StopCancelled {
		t.Fatalf("end %+v", end)
	}
	if extra := m.Decodes() - at; extra > 1 {
		t.Fatalf("%d tokens decoded after DELETE; want at most 1", extra)
	}
}

func TestDroppedStreamStopsGeneration(t *testing.T) {
	m := &fake.Model{Delay: 5 * time.Millisecond}
	w := start(t, m, nil)
	jc := w.submit(t, `{"prompt":"a","max_tokens":400}`)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, w.url+jc.SSEURL, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r := sse.NewReader(resp.Body)
	for range 3 {
		if _, err := r.Next(); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	resp.Body.Close()
	j := w.job(jc.JobID)
	testkit.WaitFor(t, "job to end", finished(j))
	at := m.Decodes()
	time.Sleep(30 * time.Millisecond)
	if m.Decodes() != at {
		t.Fatal("generation went on after the stream was dropped")
	}
	// A late reader gets the whole stream, ended by the cancellation.
	if _, events := w.stream(t, jc); last(events).Type != wire.TypeEnd || last(events).StopReason != wire.StopCancelled {
		t.Fatalf("last event %+v", last(events))
	}
}

func TestUnwatchedJobIsCancelled(t *testing.T) {
	m := &fake.Model{Delay: 5 * time.Millisecond}
	w := start(t, m, func(c *Config) { c.UnwatchedTimeout = 50 * time.Millisecond })
	jc := w.submit(t, `{"prompt":"a","max_tokens":400}`)
	testkit.WaitFor(t, "unwatched job to end", finished(w.job(jc.JobID)))
	if _, events := w.stream(t, jc); last(events).StopReason != wire.StopCancelled {
		t.Fatalf("last event %+v", last(events))
	}
}

func TestLateStreamReplaysAndJobsAreForgotten(t *testing.T) {
	w := start(t, &fake.Model{}, func(c *Config) { c.Retain = 100 * time.Millisecond })
	jc := w.submit(t, `{"prompt":"t"}`)
	testkit.WaitFor(t, "job to end", finished(w.job(jc.JobID)))
	if text, _ := w.stream(t, jc); text != "uvwxyz" {
		t.Fatalf("late stream %q", text)
	}
	testkit.WaitFor(t, "job to be forgotten", func() bool { return w.job(jc.JobID) == nil })
	resp, err := http.Get(w.url + jc.SSEURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("forgotten job: %s", resp.Status)
	}
}

func TestConcurrentSlots(t *testing.T) {
	w := start(t, &fake.Model{Slots: 2, Delay: time.Millisecond}, func(c *Config) { c.Slots = 2 })
	var wg sync.WaitGroup
	texts := make([]string, 4)
	for i := range texts {
		jc := w.submit(t, `{"prompt":"p"}`)
		wg.Go(func() { texts[i], _ = w.stream(t, jc) })
	}
	wg.Wait()
	for _, s := range texts {
		if s != "qrstuvwxyz" {
			t.Fatalf("texts %q", texts)
		}
	}
}

func TestLoadingProgressAndReady(t *testing.T) {
	release := make(chan struct{})
	m := &fake.Model{}
	cfg := Config{WorkerID: "w1", ModelName: "fake", ModelSize: 1000, Load: func(progress func(float32)) (engine.Model, error) {
		progress(0.25)
		<-release
		return m, nil
	}}
	s := New(cfg)
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); <-done }()

	var ready wire.Ready
	getJSON(t, ts.URL+"/v1/ready", &ready)
	if ready.Ready || ready.State != wire.StateLoading {
		t.Fatalf("while loading: %+v", ready)
	}
	resp, _ := http.Post(ts.URL+"/v1/inference", "application/json", strings.NewReader(`{"prompt":"a"}`))
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("inference while loading: %s", resp.Status)
	}

	resp, err := http.Get(ts.URL + "/v1/loading/progress")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := sse.NewReader(resp.Body)
	var types []string
	for {
		d, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		var e wire.Event
		_ = json.Unmarshal(d, &e)
		types = append(types, e.Type)
		if e.Type == wire.TypeProgress && e.Done == 250 {
			close(release)
		}
	}
	if got := strings.Join(types, ","); got != "progress,progress,result" {
		t.Fatalf("progress stream types %s", got)
	}
	getJSON(t, ts.URL+"/v1/ready", &ready)
	if !ready.Ready || ready.State != wire.StateReady {
		t.Fatalf("after load: %+v", ready)
	}
}

func TestLoadFailure(t *testing.T) {
	s := New(Config{Load: func(func(float32)) (engine.Model, error) { return nil, errors.New("boom") }})
	if err := s.Run(context.Background()); err == nil || err.Error() != "boom" {
		t.Fatalf("Run: %v", err)
	}
	if r := s.Ready(); r.State != wire.StateError || r.Error != "boom" {
		t.Fatalf("ready after failure: %+v", r)
	}
}

func TestHostAndToken(t *testing.T) {
	w := start(t, &fake.Model{}, func(c *Config) { c.Loopback = true; c.Token = "s3cret" })
	req, _ := http.NewRequest(http.MethodGet, w.url+"/v1/ready", nil)
	req.Host = "attacker.example"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("foreign Host: %s", resp.Status)
	}
	for _, auth := range []string{"", "Bearer wrong", "Bearer ' OR '1'='1", "Basic s3cret"} {
		req, _ = http.NewRequest(http.MethodGet, w.url+"/v1/ready", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("auth %q: %s", auth, resp.Status)
		}
	}
	req, _ = http.NewRequest(http.MethodGet, w.url+"/v1/ready", nil)
	req.Header.Set("Authorization", "Bearer s3cret")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("good token: %s", resp.Status)
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

func TestChatMessages(t *testing.T) {
	w := start(t, &fake.Model{}, nil)
	// The fake renders "user: abc\nassistant:"; its last character ':' is
	// followed by ';' and so on, up to 'z' and EOS.
	text, _ := w.stream(t, w.submit(t, `{"messages":[{"role":"user","content":"abc"}],"max_tokens":3,"temperature":0}`))
	if text != ";<=" {
		t.Fatalf("text %q", text)
	}
	for _, body := range []string{
		`{"prompt":"a","messages":[{"role":"user","content":"b"}]}`,
		`{"messages":[{"role":"","content":"b"}]}`,
	} {
		if resp, b := w.post(t, body); resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("%s: %s %s", body, resp.Status, b)
		}
	}
}

func TestQueueDeadline(t *testing.T) {
	w := start(t, &fake.Model{Delay: 20 * time.Millisecond}, nil)
	a := w.submit(t, `{"prompt":"a","max_tokens":100}`)
	testkit.WaitFor(t, "first job running", func() bool { return w.Ready().Active == 1 })
	b := w.submit(t, `{"prompt":"a","timeout_ms":30}`)
	_, events := w.stream(t, b)
	if e := last(events); e.Type != wire.TypeError || e.Code != wire.CodeDeadline {
		t.Fatalf("waiting job ended with %+v", e)
	}
	w.cancel(t, a.JobID)
	// A request that gets its slot in time is not affected.
	if text, _ := w.stream(t, w.submit(t, `{"prompt":"x","timeout_ms":5000}`)); text != "yz" {
		t.Fatalf("text %q", text)
	}
}
