package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/rbee/rbee/internal/sse"
	"github.com/rbee/rbee/internal/testkit"
	"github.com/rbee/rbee/internal/wire"
)

// bigTokens emits n tokens of size bytes each, once want subscribers attached.
func bigTokens(n, size, want int) RunFunc {
	piece := strings.Repeat("x", size)
	return func(j *Job) error {
		for j.subscribers() < want && j.Context().Err() == nil {
			time.Sleep(time.Millisecond)
		}
		for i := range n {
			j.Emit(wire.NewToken(piece, i))
		}
		j.Emit(wire.End{Type: wire.TypeEnd, StopReason: wire.StopMaxTokens, TokensOut: n})
		return nil
	}
}

// stall opens a stream of job id over a raw connection that never reads
// and waits until the job counts it as a subscriber.
func stall(t *testing.T, e *testEnv, j *Job) net.Conn {
	t.Helper()
	u, _ := url.Parse(e.srv.URL)
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "GET /v1/jobs/%s/stream HTTP/1.1\r\nHost: %s\r\n\r\n", j.ID(), u.Host)
	testkit.WaitFor(t, "the stalled subscriber to attach", func() bool { return j.subscribers() == 1 })
	return conn
}

// A subscriber that never reads must neither block the job nor the other
// subscribers. Its write deadline is far away, so the proof is that both
// are done while it is still attached, stuck in its write.
func TestStalledReaderDoesNotBlockJob(t *testing.T) {
	const n, size = 4000, 2048 // 8 MiB: more than loopback socket buffers hold
	e := newEnv(t, Options{BufferEvents: 2 * n, BufferBytes: 4 * n * size, WriteTimeout: testkit.Patience}, nil)
	j, err := e.reg.Create(wire.Operation{Operation: "infer"}, bigTokens(n, size, 2))
	if err != nil {
		t.Fatal(err)
	}
	conn := stall(t, e, j)

	evs, term, err := e.collect(context.Background(), j.ID())
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != n+1 || term.Type != wire.TypeEnd {
		t.Fatalf("fast subscriber got %d events, terminal %+v", len(evs), term)
	}
	waitFinished(t, j)
	if s := j.subscribers(); s != 1 {
		t.Fatalf("%d subscribers once the job is done; want the stalled one still attached", s)
	}
	conn.Close() // its write fails now, and it goes
	testkit.WaitFor(t, "the stalled subscriber to go", func() bool { return j.subscribers() == 0 })
}

// A subscriber whose write stalls past WriteTimeout is dropped, short of
// the stream's end.
func TestStalledReaderIsDropped(t *testing.T) {
	const n, size = 4000, 2048
	e := newEnv(t, Options{BufferEvents: 2 * n, BufferBytes: 4 * n * size, WriteTimeout: 100 * time.Millisecond}, nil)
	j, err := e.reg.Create(wire.Operation{Operation: "infer"}, bigTokens(n, size, 1))
	if err != nil {
		t.Fatal(err)
	}
	conn := stall(t, e, j)
	waitFinished(t, j)
	testkit.WaitFor(t, "the stalled subscriber to be dropped", func() bool { return j.subscribers() == 0 })

	// What the stalled reader got stops short of the end.
	_ = conn.SetReadDeadline(time.Now().Add(testkit.Patience))
	raw, _ := io.ReadAll(conn) // a reset connection is fine too
	if strings.Contains(string(raw), sse.Done) {
		t.Fatalf("the stalled reader got the whole stream (%d bytes)", len(raw))
	}
}

// A subscriber that falls behind by more than the buffer is cut off with a
// slow_reader error instead of getting a stream with a hole in it.
func TestSlowReaderIsCutOff(t *testing.T) {
	const n, size = 4000, 2048
	e := newEnv(t, Options{BufferEvents: 32, WriteTimeout: 20 * time.Second}, nil)
	j, err := e.reg.Create(wire.Operation{Operation: "infer"}, bigTokens(n, size, 1))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(e.srv.URL + "/v1/jobs/" + j.ID() + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// Read nothing until the job is done: the publisher must not wait.
	waitFinished(t, j)

	rd := sse.NewReader(resp.Body)
	next := 0
	for {
		data, err := rd.Next()
		if err != nil {
			t.Fatalf("after %d tokens: %v", next, err)
		}
		var ev wire.Event
		if err := json.Unmarshal(data, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Type == wire.TypeError {
			if ev.Code != wire.CodeSlowReader {
				t.Fatalf("error event %+v", ev)
			}
			break
		}
		if ev.Type != wire.TypeToken || ev.I != next {
			t.Fatalf("event %+v, want token %d", ev, next)
		}
		next++
	}
	if _, err := rd.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("after slow_reader: %v, want [DONE]", err)
	}
	if next >= n {
		t.Fatal("no events were dropped; the test proves nothing")
	}
}

func TestCancelWhenUnwatched(t *testing.T) {
	e := newEnv(t, Options{AttachTimeout: 50 * time.Millisecond}, map[string]RunFunc{
		wire.OpInfer: func(j *Job) error {
			j.CancelWhenUnwatched()
			for i := 0; j.Context().Err() == nil; i++ {
				j.Emit(wire.NewToken("x", i))
				time.Sleep(time.Millisecond)
			}
			return j.Context().Err()
		},
		wire.OpHiveInstall: func(j *Job) error {
			j.Narrate("install", "installing")
			time.Sleep(100 * time.Millisecond)
			j.Emit(wire.NewResult("installed"))
			return nil
		},
	})

	// A dropped stream stops an infer job.
	id := e.submit(t, wire.OpInfer)
	ctx, cancel := context.WithCancel(context.Background())
	_, err := e.client.Stream(ctx, id, func(ev wire.Event) error {
		if ev.I == 3 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("stream: %v", err)
	}
	j := e.job(t, id)
	waitFinished(t, j)
	if !errors.Is(context.Cause(j.Context()), ErrUnwatched) {
		t.Fatalf("cause %v", context.Cause(j.Context()))
	}

	// Nobody attaching at all stops it too.
	j = e.job(t, e.submit(t, wire.OpInfer))
	waitFinished(t, j)
	if !errors.Is(context.Cause(j.Context()), ErrUnwatched) {
		t.Fatalf("unattached: cause %v", context.Cause(j.Context()))
	}

	// Other jobs run on when their client goes away.
	id = e.submit(t, wire.OpHiveInstall)
	ctx, cancel = context.WithCancel(context.Background())
	_, _ = e.client.Stream(ctx, id, func(wire.Event) error { cancel(); return nil })
	j = e.job(t, id)
	waitFinished(t, j)
	_, term, err := e.collect(context.Background(), id)
	if err != nil || string(term.Data) != `"installed"` {
		t.Fatalf("hive_install after detach: %+v %v", term, err)
	}
}

func TestCreateOptionCancelWhenUnwatched(t *testing.T) {
	reg := NewRegistry(Options{AttachTimeout: 20 * time.Millisecond})
	defer reg.Close()
	j, err := reg.Create(wire.Operation{Operation: wire.OpInfer}, func(j *Job) error {
		<-j.Context().Done()
		return nil
	}, CreateOptions{CancelWhenUnwatched: true})
	if err != nil {
		t.Fatal(err)
	}
	waitFinished(t, j)
	if !errors.Is(context.Cause(j.Context()), ErrUnwatched) {
		t.Fatalf("cause %v", context.Cause(j.Context()))
	}
}

// serveText answers every request with body, then closes the stream.
func serveText(t *testing.T, body string) *Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return &Client{BaseURL: srv.URL, HTTP: srv.Client()}
}

func TestClientStreamRejectsIncompleteStreams(t *testing.T) {
	tok := "data: {\"type\":\"token\",\"t\":\"a\",\"i\":0}\n\n"
	res := "data: {\"type\":\"result\",\"data\":1}\n\n"
	cases := map[string]string{
		"cut_mid_stream":       tok + tok,
		"cut_mid_event":        tok + "data: {\"type\":\"tok",
		"done_without_result":  tok + "data: [DONE]\n\n",
		"result_without_done":  tok + res,
		"empty":                "",
		"too_much_after_final": res + strings.Repeat(tok, maxAfterTerminal+1) + "data: [DONE]\n\n",
	}
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			c := serveText(t, body)
			_, err := c.Stream(context.Background(), "job-x", func(wire.Event) error { return nil })
			if err == nil {
				t.Fatal("incomplete stream accepted")
			}
			if name != "cut_mid_event" && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("error %v does not wrap io.ErrUnexpectedEOF", err)
			}
		})
	}

	// Events after the terminal one are skipped, [DONE] still ends it.
	c := serveText(t, tok+res+": ping\n\n"+tok+"data: [DONE]\n\n")
	var seen []wire.Event
	term, err := c.Stream(context.Background(), "job-x", func(ev wire.Event) error { seen = append(seen, ev); return nil })
	if err != nil || term.Type != wire.TypeResult || types(seen) != "token,result" {
		t.Fatalf("%+v %v %s", term, err, types(seen))
	}

	// An error from fn stops the stream and is returned as is.
	stop := errors.New("stop")
	if _, err := c.Stream(context.Background(), "job-x", func(wire.Event) error { return stop }); err != stop {
		t.Fatalf("fn error: %v", err)
	}
}

func TestClientErrors(t *testing.T) {
	var auth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth = r.Header.Get("Authorization")
		w.WriteHeader(http.StatusBadGateway)
		io.WriteString(w, "<html>"+strings.Repeat("upstream down ", 1<<16)+"</html>")
	}))
	defer srv.Close()
	c := &Client{BaseURL: srv.URL + "/", HTTP: srv.Client(), Token: "s3cret"}
	_, err := c.Submit(context.Background(), wire.Operation{Operation: wire.OpStatus})
	re := asRemote(t, err)
	if re.Status != http.StatusBadGateway || re.Message != "HTTP 502 Bad Gateway" || auth != "Bearer s3cret" {
		t.Fatalf("%+v, auth %q", re, auth)
	}
	if !strings.Contains(re.Error(), "502") {
		t.Fatalf("Error() = %q", re.Error())
	}
}

// A client that gives up cancels the remote job, so nothing runs for nobody.
func TestClientRunCancelsRemoteJob(t *testing.T) {
	jobs := make(chan *Job, 1)
	e := newEnv(t, Options{}, map[string]RunFunc{
		wire.OpModelDownload: func(j *Job) error {
			jobs <- j
			j.Emit(wire.NewProgress(1, 100, "bytes"))
			<-j.Context().Done()
			return j.Context().Err()
		},
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err := e.client.Run(ctx, wire.Operation{Operation: wire.OpModelDownload}, func(ev wire.Event) error {
		if ev.Type == wire.TypeProgress {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("run: %v", err)
	}
	j := <-jobs
	waitFinished(t, j)
	if !errors.Is(context.Cause(j.Context()), ErrCancelled) {
		t.Fatalf("cause %v", context.Cause(j.Context()))
	}
}

func TestClientRunRelaysEveryEvent(t *testing.T) {
	e := newEnv(t, Options{}, map[string]RunFunc{
		wire.OpWorkerList: func(j *Job) error {
			j.Narrate("list", "listing workers")
			j.Emit(wire.NewProgress(1, 2, "hives"))
			j.Emit(wire.NewResult([]string{"w1"}))
			return nil
		},
	})
	// The queen's pattern: run a hive job and relay it into a job of its own.
	queen := NewRegistry(Options{Actor: "queen-rbee"})
	defer queen.Close()
	qj, err := queen.Create(wire.Operation{Operation: wire.OpWorkerList}, func(j *Job) error {
		_, err := e.client.Run(j.Context(), j.Op(), func(ev wire.Event) error {
			j.Emit(ev)
			return nil
		})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	waitFinished(t, qj)
	evs, _, _, done, _ := qj.read(0, nil, 10)
	var got []string
	for _, ev := range evs {
		got = append(got, ev.typ)
	}
	if !done || strings.Join(got, ",") != "narration,progress,result" || !strings.Contains(string(evs[2].data), `["w1"]`) {
		t.Fatalf("relayed %v %q", got, evs)
	}
}

func TestGoroutinesReturnToBaseline(t *testing.T) {
	base := numGoroutines()
	func() {
		e := newEnv(t, Options{PingInterval: 5 * time.Millisecond}, map[string]RunFunc{
			wire.OpStatus: func(j *Job) error { j.Narrate("s", "s"); return nil },
			"wait": func(j *Job) error {
				<-j.Context().Done()
				return j.Context().Err()
			},
		})
		for range 5 {
			if _, _, err := e.collect(context.Background(), e.submit(t, wire.OpStatus)); err != nil {
				t.Fatal(err)
			}
		}
		id := e.submit(t, "wait")
		done := make(chan struct{})
		go func() {
			defer close(done)
			_, _, _ = e.collect(context.Background(), id)
		}()
		testkit.WaitFor(t, "subscriber", func() bool { return e.job(t, id).subscribers() == 1 })
		if err := e.reg.Close(); err != nil {
			t.Fatal(err)
		}
		<-done
		e.srv.CloseClientConnections()
		e.srv.Close()
		e.srv.Client().CloseIdleConnections()
	}()
	testkit.WaitFor(t, "goroutines to return to their baseline", func() bool {
		http.DefaultClient.CloseIdleConnections()
		return numGoroutines() <= base
	})
}

func numGoroutines() int { return runtime.NumGoroutine() }

// A caller that gives up while the job's creation is on its way leaves no
// job running on the server: the late answer's job is cancelled.
func TestRunCancelsAJobCreatedTooLate(t *testing.T) {
	release := make(chan struct{})
	deleted := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodPost:
			<-release
			w.WriteHeader(http.StatusCreated)
			io.WriteString(w, `{"job_id":"job-late","sse_url":"/v1/jobs/job-late/stream"}`)
		case http.MethodDelete:
			deleted <- r.URL.Path
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	defer srv.Close()
	c := &Client{BaseURL: srv.URL, HTTP: srv.Client()}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := c.Run(ctx, wire.Operation{Operation: wire.OpStatus}, nil)
		errc <- err
	}()
	cancel()
	if err := testkit.Receive(t, "Run to return", errc); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v", err)
	}
	close(release)
	if p := testkit.Receive(t, "the late job's cancellation", deleted); p != "/v1/jobs/job-late" {
		t.Fatalf("DELETE %s", p)
	}
}
