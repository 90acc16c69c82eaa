package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rbee/rbee/internal/testkit"
	"github.com/rbee/rbee/internal/wire"
)

func TestCreateStreamResult(t *testing.T) {
	e := newEnv(t, Options{}, map[string]RunFunc{
		wire.OpStatus: func(j *Job) error {
			j.Narrate("status", "looking at the hives")
			n := j.Narration("hive_seen", "hive gpu1 is up")
			n.HiveID = "gpu1"
			j.Emit(n)
			j.Emit(wire.NewResult(map[string]int{"hives": 1}))
			return nil
		},
		"noresult": func(j *Job) error { return nil },
	})

	id := e.submit(t, wire.OpStatus)
	evs, term, err := e.collect(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if got := types(evs); got != "narration,narration,result" {
		t.Fatalf("events %s", got)
	}
	if evs[0].Actor != "queen-rbee" || evs[0].JobID != id || evs[0].Action != "status" {
		t.Fatalf("narration %+v", evs[0])
	}
	if evs[1].HiveID != "gpu1" || evs[1].JobID != id {
		t.Fatalf("narration with hive id %+v", evs[1])
	}
	if term.Type != wire.TypeResult || string(term.Data) != `{"hives":1}` {
		t.Fatalf("terminal %+v data %s", term, term.Data)
	}

	// A run that returns nil without a terminal event still ends its stream.
	_, term, err = e.collect(context.Background(), e.submit(t, "noresult"))
	if err != nil || term.Type != wire.TypeResult || string(term.Data) != "null" {
		t.Fatalf("noresult: %+v %s %v", term, term.Data, err)
	}
}

func TestRunErrorsBecomeErrorEvents(t *testing.T) {
	cases := []struct {
		name      string
		err       error
		code, msg string
	}{
		{"plain", errors.New("ssh: connection refused"), wire.CodeInternal, "ssh: connection refused"},
		{"coded", &wire.Error{Code: wire.CodeWorkerGone, Message: "worker died"}, wire.CodeWorkerGone, "worker died"},
		{"not_found", wire.NotFound("no hive %q", "h"), wire.CodeNotFound, `no hive "h"`},
		{"wrapped", fmt.Errorf("hive gpu1: %w", wire.Errorf(wire.CodeUnavailable, "down")), wire.CodeUnavailable, "hive gpu1: down"},
		{"remote", &wire.Error{Status: 400, Code: wire.CodeBadRequest, Message: "bad model"}, wire.CodeBadRequest, "bad model"},
		{"no_code", &wire.Error{Message: "odd"}, wire.CodeInternal, "odd"},
	}
	runs := map[string]RunFunc{}
	for _, c := range cases {
		runs[c.name] = func(j *Job) error {
			j.Narrate("try", "trying")
			return c.err
		}
	}
	e := newEnv(t, Options{}, runs)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			evs, term, err := e.collect(context.Background(), e.submit(t, c.name))
			re := asRemote(t, err)
			if re.Code != c.code || re.Message != c.msg || re.Status != 0 {
				t.Fatalf("got %+v, want code %q message %q", re, c.code, c.msg)
			}
			if types(evs) != "narration,error" || term.Type != wire.TypeError || term.Code != c.code {
				t.Fatalf("events %s terminal %+v", types(evs), term)
			}
		})
	}
}

func TestPanicBecomesErrorEventAndServerSurvives(t *testing.T) {
	e := newEnv(t, Options{}, map[string]RunFunc{
		"boom": func(j *Job) error { panic("nil map somewhere") },
		"nilp": func(j *Job) error {
			var m map[string]int
			m["x"] = 1
			return nil
		},
		wire.OpStatus: func(j *Job) error { return nil },
	})
	for _, name := range []string{"boom", "nilp"} {
		_, term, err := e.collect(context.Background(), e.submit(t, name))
		re := asRemote(t, err)
		if re.Code != wire.CodeInternal || !strings.Contains(re.Message, "panicked") || term.Type != wire.TypeError {
			t.Fatalf("%s: %+v %+v", name, re, term)
		}
	}
	if _, _, err := e.collect(context.Background(), e.submit(t, wire.OpStatus)); err != nil {
		t.Fatalf("after panics: %v", err)
	}
}

func TestRejectedOperationsCreateNoJob(t *testing.T) {
	e := newEnv(t, Options{}, map[string]RunFunc{wire.OpStatus: func(*Job) error { return nil }})
	reg := NewRegistry(Options{})
	defer reg.Close()
	mux := http.NewServeMux()
	// A dispatch that returns an untyped error still rejects with a 400.
	reg.Mount(mux, func(op wire.Operation) (RunFunc, error) { return nil, errors.New("no such operation") })

	big := `{"operation":"status","prompt":"` + strings.Repeat("a", MaxOperationBody) + `"}`
	cases := []struct {
		name   string
		body   io.Reader
		length bool
		status int
		code   string
	}{
		{"unknown_op", strings.NewReader(`{"operation":"fly"}`), true, 400, wire.CodeBadRequest},
		{"missing_op", strings.NewReader(`{}`), true, 400, wire.CodeBadRequest},
		{"malformed", strings.NewReader(`{"operation":`), true, 400, wire.CodeBadRequest},
		{"unknown_field", strings.NewReader(`{"operation":"status","colour":"red"}`), true, 400, wire.CodeBadRequest},
		{"trailing", strings.NewReader(`{"operation":"status"} {}`), true, 400, wire.CodeBadRequest},
		{"empty", strings.NewReader(``), true, 400, wire.CodeBadRequest},
		{"too_big", strings.NewReader(big), true, 413, wire.CodeTooLarge},
		// No Content-Length: the limit must hold for chunked bodies too.
		{"too_big_chunked", io.MultiReader(strings.NewReader(big)), false, 413, wire.CodeTooLarge},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/v1/jobs", c.body)
			if !c.length {
				req.ContentLength = -1
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var eb wire.ErrorBody
			if err := json.NewDecoder(resp.Body).Decode(&eb); err != nil {
				t.Fatalf("error body: %v", err)
			}
			if resp.StatusCode != c.status || eb.Error.Code != c.code || eb.Error.Message == "" {
				t.Fatalf("got %d %+v, want %d %s", resp.StatusCode, eb, c.status, c.code)
			}
			if n := e.reg.Len(); n != 0 {
				t.Fatalf("%d jobs created", n)
			}
		})
	}

	_, err := e.client.Submit(context.Background(), wire.Operation{Operation: "fly"})
	if re := asRemote(t, err); re.Status != 400 || re.Code != wire.CodeBadRequest || !strings.Contains(re.Message, "fly") {
		t.Fatalf("client error %+v", re)
	}

	rec := newRecorder(`{"operation":"status"}`, mux)
	if rec.Code != 400 || !strings.Contains(rec.Body.String(), "no such operation") || reg.Len() != 0 {
		t.Fatalf("untyped dispatch error: %d %s", rec.Code, rec.Body)
	}
}

func TestUnknownJob(t *testing.T) {
	e := newEnv(t, Options{}, nil)
	_, _, err := e.collect(context.Background(), "job-nope")
	if re := asRemote(t, err); re.Status != 404 || re.Code != wire.CodeNotFound {
		t.Fatalf("stream: %+v", re)
	}
	if re := asRemote(t, e.client.Cancel(context.Background(), "job-nope")); re.Status != 404 {
		t.Fatalf("cancel: %+v", re)
	}
}

func TestCancelEndsWithOneCancelledEvent(t *testing.T) {
	started := make(chan struct{})
	e := newEnv(t, Options{}, map[string]RunFunc{
		"wait": func(j *Job) error {
			j.Narrate("wait", "waiting")
			close(started)
			<-j.Context().Done()
			// Both of these come too late and must not reach the stream.
			j.Emit(wire.End{Type: wire.TypeEnd, StopReason: wire.StopCancelled})
			return j.Context().Err()
		},
	})
	id := e.submit(t, "wait")
	j := e.job(t, id)
	<-started
	s := openRaw(t, e.srv.URL+"/v1/jobs/"+id+"/stream")
	if err := e.client.Cancel(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	body := readAll(t, s.resp.Body)
	if strings.Count(body, `"type":"error"`) != 1 || strings.Count(body, `"code":"cancelled"`) != 1 ||
		strings.Contains(body, `"type":"end"`) || !strings.HasSuffix(body, "data: [DONE]\n\n") {
		t.Fatalf("stream:\n%s", body)
	}
	waitFinished(t, j)
	if !errors.Is(context.Cause(j.Context()), ErrCancelled) {
		t.Fatalf("cause %v", context.Cause(j.Context()))
	}
	// Cancelling a finished job is not an error.
	if err := e.client.Cancel(context.Background(), id); err != nil {
		t.Fatalf("second cancel: %v", err)
	}
	_, _, err := e.collect(context.Background(), id)
	if re := asRemote(t, err); re.Code != wire.CodeCancelled {
		t.Fatalf("replay after cancel: %+v", re)
	}
}

func TestLateSubscriberReplaysEverything(t *testing.T) {
	e := newEnv(t, Options{}, map[string]RunFunc{
		"gen": func(j *Job) error {
			for i := range 500 {
				j.Emit(wire.NewToken(fmt.Sprintf("t%d ", i), i))
			}
			j.Emit(wire.End{Type: wire.TypeEnd, StopReason: wire.StopMaxTokens, TokensOut: 500})
			return nil
		},
	})
	id := e.submit(t, "gen")
	waitFinished(t, e.job(t, id))
	evs, term, err := e.collect(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 501 || term.Type != wire.TypeEnd || term.TokensOut != 500 {
		t.Fatalf("%d events, terminal %+v", len(evs), term)
	}
	for i, ev := range evs[:500] {
		if ev.Type != wire.TypeToken || ev.I != i || ev.T != fmt.Sprintf("t%d ", i) {
			t.Fatalf("event %d: %+v", i, ev)
		}
	}
}

func TestSubscribersGetIdenticalSequences(t *testing.T) {
	const subs = 50
	e := newEnv(t, Options{}, nil)
	j, err := e.reg.Create(wire.Operation{Operation: "gen"}, func(j *Job) error {
		for j.subscribers() < subs {
			time.Sleep(time.Millisecond)
		}
		for i := range 1000 {
			j.Emit(wire.NewToken("x", i))
		}
		j.Emit(wire.NewResult("ok"))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	type got struct {
		evs []wire.Event
		err error
	}
	results := make(chan got, subs)
	for range subs {
		go func() {
			evs, _, err := e.collect(context.Background(), j.ID())
			results <- got{evs, err}
		}()
	}
	for range subs {
		g := <-results
		if g.err != nil {
			t.Fatal(g.err)
		}
		if len(g.evs) != 1001 || g.evs[1000].Type != wire.TypeResult {
			t.Fatalf("%d events", len(g.evs))
		}
		for i, ev := range g.evs[:1000] {
			if ev.I != i {
				t.Fatalf("event %d has index %d", i, ev.I)
			}
		}
	}
}

func TestRetainForgetsFinishedJobs(t *testing.T) {
	e := newEnv(t, Options{Retain: 30 * time.Millisecond}, map[string]RunFunc{
		wire.OpStatus: func(j *Job) error { return nil },
	})
	var ids []string
	for range 5 {
		ids = append(ids, e.submit(t, wire.OpStatus))
	}
	testkit.WaitFor(t, "finished jobs to be forgotten", func() bool { return e.reg.Len() == 0 })
	_, _, err := e.collect(context.Background(), ids[0])
	if re := asRemote(t, err); re.Status != http.StatusNotFound {
		t.Fatalf("forgotten job: %+v", re)
	}
}

func TestMaxJobs(t *testing.T) {
	release := make(chan struct{})
	e := newEnv(t, Options{MaxJobs: 2}, map[string]RunFunc{
		"block": func(j *Job) error { <-release; return nil },
		"quick": func(j *Job) error { return nil },
	})
	a := e.submit(t, "block")
	e.submit(t, "block")
	resp, err := http.Post(e.srv.URL+"/v1/jobs", "application/json", strings.NewReader(`{"operation":"quick"}`))
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(t, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" ||
		!strings.Contains(body, wire.CodeQueueFull) || e.reg.Len() != 2 {
		t.Fatalf("full registry answered %d %q (Retry-After %q), %d jobs", resp.StatusCode, body, resp.Header.Get("Retry-After"), e.reg.Len())
	}
	close(release)
	waitFinished(t, e.job(t, a))
	// Finished jobs make room, oldest first.
	for range 10 {
		id := e.submit(t, "quick")
		waitFinished(t, e.job(t, id))
		if n := e.reg.Len(); n > 2 {
			t.Fatalf("%d jobs kept", n)
		}
	}
	if _, ok := e.reg.Get(a); ok {
		t.Fatal("oldest finished job was not evicted")
	}
}

func TestPingOnQuietStream(t *testing.T) {
	release := make(chan struct{})
	e := newEnv(t, Options{PingInterval: 10 * time.Millisecond}, map[string]RunFunc{
		"quiet": func(j *Job) error {
			<-release
			j.Emit(wire.NewResult(1))
			return nil
		},
	})
	s := openRaw(t, e.srv.URL+"/v1/jobs/"+e.submit(t, "quiet")+"/stream")
	for pings := 0; pings < 3; {
		if l := s.line(t); l == ": ping" {
			pings++
		} else if l != "" {
			t.Fatalf("unexpected line %q", l)
		}
	}
	close(release)
	rest := readAll(t, s.lines)
	if !strings.Contains(rest, "event: result\ndata: {\"type\":\"result\",\"data\":1}\n\n") || !strings.HasSuffix(rest, "data: [DONE]\n\n") {
		t.Fatalf("rest of stream:\n%s", rest)
	}
}
