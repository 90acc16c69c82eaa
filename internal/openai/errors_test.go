package openai

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rbee/rbee/internal/wire"
)

// Bad parameters are a 400 naming the field, before any worker is asked.
func TestBadParameters(t *testing.T) {
	b := newBackend("x")
	a := newAPI(t, b, func(o *Options) { o.MaxBody = 64 << 10 })
	msgs := `"messages":[{"role":"user","content":"hi"}]`
	cases := []struct {
		path, body, param string
		status            int
	}{
		{"/v1/chat/completions", `{` + msgs + `}`, "model", 400},
		{"/v1/chat/completions", `{"model":"m","messages":[]}`, "messages", 400},
		{"/v1/chat/completions", `{"model":"m"}`, "messages", 400},
		{"/v1/chat/completions", `{"model":"m",` + msgs + `,"n":2}`, "n", 400},
		{"/v1/chat/completions", `{"model":"m",` + msgs + `,"n":1000000}`, "n", 400},
		{"/v1/chat/completions", `{"model":"m",` + msgs + `,"n":0}`, "n", 400},
		{"/v1/chat/completions", `{"model":"m",` + msgs + `,"temperature":2.5}`, "temperature", 400},
		{"/v1/chat/completions", `{"model":"m",` + msgs + `,"temperature":-1}`, "temperature", 400},
		{"/v1/chat/completions", `{"model":"m",` + msgs + `,"temperature":"hot"}`, "temperature", 400},
		{"/v1/chat/completions", `{"model":"m",` + msgs + `,"top_p":1.5}`, "top_p", 400},
		{"/v1/chat/completions", `{"model":"m",` + msgs + `,"max_tokens":0}`, "max_tokens", 400},
		{"/v1/chat/completions", `{"model":"m",` + msgs + `,"max_tokens":2147483648}`, "max_tokens", 400},
		{"/v1/chat/completions", `{"model":"m",` + msgs + `,"max_completion_tokens":-5}`, "max_completion_tokens", 400},
		{"/v1/chat/completions", `{"model":"m",` + msgs + `,"max_tokens":1e400}`, "max_tokens", 400},
		{"/v1/chat/completions", `{"model":"m",` + msgs + `,"stop":""}`, "stop", 400},
		{"/v1/chat/completions", `{"model":"m",` + msgs + `,"stop":[` + strings.Repeat(`"s",`, 16) + `"s"]}`, "stop", 400},
		{"/v1/chat/completions", `{"model":"m",` + msgs + `,"stop":[1]}`, "stop", 400},
		{"/v1/chat/completions", `{"model":"m",` + msgs + `,"stop":"` + strings.Repeat("s", 257) + `"}`, "stop", 400},
		{"/v1/chat/completions", `{"model":"m","messages":[{"role":"wizard","content":"x"}]}`, "messages[0].role", 400},
		{"/v1/chat/completions", `{"model":"m","messages":[{"content":"x"}]}`, "messages[0].role", 400},
		{"/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]}`, "messages[0].content", 400},
		{"/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":42}]}`, "messages[0].content", 400},
		{"/v1/chat/completions", `{"model":"m","messages":"hi"}`, "messages", 400},
		{"/v1/chat/completions", `{"model":"m",` + msgs + `,"seed":"x"}`, "seed", 400},
		{"/v1/chat/completions", `{"model":"m",` + msgs, "", 400},
		{"/v1/chat/completions", `{"model":"m",` + msgs + `}{}`, "", 400},
		{"/v1/chat/completions", `[]`, "", 400},
		{"/v1/chat/completions", ``, "", 400},
		{"/v1/chat/completions", strings.Repeat("[", 20000) + strings.Repeat("]", 20000), "", 400},
		{"/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"` + strings.Repeat("x", 70<<10) + `"}]}`, "", 413},
		{"/v1/completions", `{"model":"m"}`, "prompt", 400},
		{"/v1/completions", `{"model":"m","prompt":""}`, "prompt", 400},
		{"/v1/completions", `{"model":"m","prompt":[1,2,3]}`, "prompt", 400},
		{"/v1/completions", `{"model":"m","prompt":["a",""]}`, "prompt", 400},
		{"/v1/completions", `{"model":"m","prompt":[]}`, "prompt", 400},
		{"/v1/completions", `{"model":"m","prompt":"a","best_of":3}`, "best_of", 400},
		{"/v1/completions", `{"model":"m","prompt":"a","suffix":"z"}`, "suffix", 400},
		{"/v1/completions", `{"model":"m","prompt":"a","n":3}`, "n", 400},
		{"/v1/completions", `{"model":"","prompt":"a"}`, "model", 400},
	}
	for _, c := range cases {
		r := a.post(t, c.path, c.body)
		name := c.body
		if len(name) > 80 {
			name = name[:80] + "..."
		}
		if r.status != c.status {
			t.Errorf("%s %s: %d %s", c.path, name, r.status, r.body)
			continue
		}
		e := r.apiErr(t)
		param := ""
		if e.Param != nil {
			param = *e.Param
		}
		if param != c.param || e.Type != typeInvalidRequest || e.Message == "" || e.Code == "" {
			t.Errorf("%s %s: error %+v (param %q), want param %q", c.path, name, e, param, c.param)
		}
	}
	if n := b.callCount(); n != 0 {
		t.Errorf("the backend was called %d times for bad requests", n)
	}
}

// Errors of the backend keep their meaning in OpenAI's shape and status.
func TestBackendErrors(t *testing.T) {
	cases := []struct {
		err         error
		status      int
		typ, code   string
		param       string
		retryAfter  bool
		messagePart string
	}{
		{wire.Errorf(wire.CodeUnknownModel, "no live hive has model %q", "m"), 404, typeInvalidRequest, wire.CodeModelNotFound, "model", false, "no live hive"},
		{wire.Errorf(wire.CodeNoWorker, "no worker became ready"), 503, typeServer, wire.CodeNoWorker, "", true, "no worker"},
		{wire.Errorf(wire.CodeWorkerGone, "went away"), 503, typeServer, wire.CodeWorkerGone, "", true, "went away"},
		{&wire.Error{Code: wire.CodeQueueFull, Message: "all busy", RetryAfter: 3}, 429, typeRateLimit, wire.CodeQueueFull, "", true, "all busy"},
		{&wire.Error{Status: 400, Code: wire.CodeContextLength, Message: "the prompt is 5000 tokens"}, 400, typeInvalidRequest, wire.CodeContextLength, "", false, "5000 tokens"},
		{&wire.Error{Code: wire.CodeLoadFailed, Message: "cannot load"}, 503, typeServer, wire.CodeLoadFailed, "", true, "cannot load"},
		{fmt.Errorf("wrapped: %w", wire.Errorf(wire.CodeHiveUnreachable, "hive down")), 503, typeServer, wire.CodeHiveUnreachable, "", true, "hive down"},
		{errors.New("secret detail of a bug"), 500, typeServer, wire.CodeInternal, "", false, "internal error"},
		{wire.Errorf("some_new_code", "x"), 500, typeServer, wire.CodeInternal, "", false, "internal error"},
	}
	for _, c := range cases {
		for _, stream := range []bool{false, true} {
			b := newBackend("never sent")
			b.err = c.err
			a := newAPI(t, b, nil)
			r := a.post(t, "/v1/chat/completions", fmt.Sprintf(`{"model":"m","messages":[{"role":"user","content":"x"}],"stream":%v}`, stream))
			if r.status != c.status {
				t.Errorf("%v (stream %v): status %d %s", c.err, stream, r.status, r.body)
				continue
			}
			e := r.apiErr(t)
			param := ""
			if e.Param != nil {
				param = *e.Param
			}
			if e.Type != c.typ || e.Code != c.code || param != c.param || !strings.Contains(e.Message, c.messagePart) {
				t.Errorf("%v (stream %v): %+v", c.err, stream, e)
			}
			if strings.Contains(string(r.body), "secret detail") {
				t.Errorf("an internal error's detail reached the client: %s", r.body)
			}
			if got := r.header.Get("Retry-After") != ""; got != c.retryAfter {
				t.Errorf("%v: Retry-After %q", c.err, r.header.Get("Retry-After"))
			}
		}
	}
}

// An error after the first token can no longer change the status: it ends
// the stream as an error object, which OpenAI clients raise.
func TestStreamErrorAfterTokens(t *testing.T) {
	b := newBackend("a", "b", "c")
	b.err, b.errAt = wire.Errorf(wire.CodeWorkerGone, "worker w went away mid-stream"), 2
	a := newAPI(t, b, nil)
	r := a.post(t, "/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"x"}],"stream":true}`)
	if r.status != http.StatusOK {
		t.Fatalf("%d %s", r.status, r.body)
	}
	evs := r.events(t)
	last := evs[len(evs)-1]
	if len(evs) != 4 || !strings.Contains(last, `"error":{`) || !strings.Contains(last, "went away") || !strings.Contains(last, `"code":"worker_gone"`) {
		t.Errorf("stream %v", evs)
	}
}

// A client that goes away stops the generation: the backend's context
// ends, which makes the queen cancel the worker's job.
func TestClientGoneStopsGeneration(t *testing.T) {
	for _, stream := range []bool{false, true} {
		b := newBackend("a")
		b.block = true
		a := newAPI(t, b, nil)
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, a.srv.URL+"/v1/chat/completions",
			strings.NewReader(fmt.Sprintf(`{"model":"m","messages":[{"role":"user","content":"x"}],"stream":%v}`, stream)))
		done := make(chan struct{})
		go func() {
			defer close(done)
			resp, err := a.srv.Client().Do(req)
			if err == nil {
				// The first token arrives on a stream; then the client leaves.
				buf := make([]byte, 1)
				_, _ = resp.Body.Read(buf)
				cancel()
				resp.Body.Close()
			}
		}()
		if !stream {
			// Without a stream nothing arrives before the end: leave once
			// the backend is working.
			for b.callCount() == 0 {
				time.Sleep(time.Millisecond)
			}
			cancel()
		}
		select {
		case err := <-b.stopped:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("stream %v: generation ended by %v", stream, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("stream %v: the generation went on after the client left", stream)
		}
		<-done
		cancel()
	}
}

func TestMethodsAndPaths(t *testing.T) {
	a := newAPI(t, newBackend("x"), nil)
	for _, c := range []struct {
		method, path string
		status       int
		code         string
	}{
		{http.MethodGet, "/v1/chat/completions", 405, wire.CodeMethod},
		{http.MethodPut, "/v1/completions", 405, wire.CodeMethod},
		{http.MethodPost, "/v1/models", 405, wire.CodeMethod},
		{http.MethodDelete, "/v1/models/x", 405, wire.CodeMethod},
		{http.MethodGet, "/v1/models/", 404, wire.CodeUnknownURL},
	} {
		r := a.do(t, c.method, c.path, "")
		if r.status != c.status || r.apiErr(t).Code != c.code {
			t.Errorf("%s %s: %d %s", c.method, c.path, r.status, r.body)
		}
	}
}
