package openai

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rbee/rbee/internal/apikeys"
	"github.com/rbee/rbee/internal/wire"
)

// fakeBackend answers Generate with fixed tokens and end event, or with
// an error before or after some tokens.
type fakeBackend struct {
	tokens  []string
	end     wire.Event
	err     error // returned by Generate
	errAt   int   // with err: after this many tokens (0: before any)
	block   bool  // after the tokens, wait until ctx ends
	models  []Model
	stopped chan error // with block: what ended the wait
	// script, when set, gives the token events of a request (instead of
	// tokens) and its stop reason ("": end's).
	script func(req wire.InferenceRequest) ([]wire.Event, string)

	mu    sync.Mutex
	calls []generateCall
}

type generateCall struct {
	model string
	req   wire.InferenceRequest
}

func newBackend(tokens ...string) *fakeBackend {
	return &fakeBackend{
		tokens:  tokens,
		end:     wire.Event{Type: wire.TypeEnd, StopReason: wire.StopEOS, TokensIn: 7, TokensCached: 5, TokensOut: len(tokens)},
		stopped: make(chan error, 1),
	}
}

func (b *fakeBackend) Models(ctx context.Context) ([]Model, error) { return b.models, b.err }

func (b *fakeBackend) Generate(ctx context.Context, model string, req wire.InferenceRequest, fn func(wire.Event) error) (wire.Event, error) {
	b.mu.Lock()
	b.calls = append(b.calls, generateCall{model, req})
	b.mu.Unlock()
	if b.script != nil {
		evs, stop := b.script(req)
		end := b.end
		end.TokensOut = len(evs)
		if stop != "" {
			end.StopReason = stop
		}
		for _, e := range evs {
			e.Type = wire.TypeToken
			if err := fn(e); err != nil {
				return wire.Event{}, err
			}
		}
		if err := fn(end); err != nil {
			return wire.Event{}, err
		}
		return end, nil
	}
	for i, t := range b.tokens {
		if b.err != nil && i == b.errAt {
			return wire.Event{}, b.err
		}
		if err := fn(wire.Event{Type: wire.TypeToken, T: t, I: i}); err != nil {
			return wire.Event{}, err
		}
	}
	if b.block {
		<-ctx.Done()
		b.stopped <- context.Cause(ctx)
		return wire.Event{}, context.Cause(ctx)
	}
	if b.err != nil {
		return wire.Event{}, b.err
	}
	if err := fn(b.end); err != nil {
		return wire.Event{}, err
	}
	return b.end, nil
}

func (b *fakeBackend) lastCall(t *testing.T) generateCall {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.calls) == 0 {
		t.Fatal("the backend was not called")
	}
	return b.calls[len(b.calls)-1]
}

func (b *fakeBackend) callCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.calls)
}

// fakeKeys is a key store with fixed keys, or one that cannot be read.
type fakeKeys struct {
	keys map[string]string // key -> id
	err  error
}

func (k fakeKeys) Check(presented string) (apikeys.Result, error) {
	if k.err != nil {
		return apikeys.Result{}, k.err
	}
	return apikeys.Result{Keys: len(k.keys), ID: k.keys[presented]}, nil
}

// api is the API on a real HTTP server.
type api struct {
	*Server
	srv *httptest.Server
}

func newAPI(t *testing.T, b Backend, mutate func(*Options)) *api {
	t.Helper()
	opt := Options{Backend: b, Now: func() time.Time { return time.Unix(1700000000, 0) }, Logger: slog.New(slog.DiscardHandler)}
	if mutate != nil {
		mutate(&opt)
	}
	s := New(opt)
	mux := http.NewServeMux()
	s.Mount(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &api{Server: s, srv: srv}
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

func (a *api) do(t *testing.T, method, path, body string, header ...string) reply {
	t.Helper()
	req, err := http.NewRequest(method, a.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := a.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: b}
}

func (a *api) post(t *testing.T, path, body string, header ...string) reply {
	t.Helper()
	return a.do(t, http.MethodPost, path, body, header...)
}

// apiErr decodes an OpenAI error body, failing unless all four keys are
// there.
func (r reply) apiErr(t *testing.T) errorDetail {
	t.Helper()
	var raw struct {
		Error map[string]json.RawMessage `json:"error"`
	}
	if err := json.Unmarshal(r.body, &raw); err != nil {
		t.Fatalf("error body %s: %v", r.body, err)
	}
	for _, k := range []string{"message", "type", "param", "code"} {
		if _, ok := raw.Error[k]; !ok {
			t.Errorf("error body lacks %q: %s", k, r.body)
		}
	}
	var eb errorBody
	_ = json.Unmarshal(r.body, &eb)
	return eb.Error
}

func (r reply) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("body %s: %v", r.body, err)
	}
}

// events splits a stream into its data payloads; the last must be [DONE].
func (r reply) events(t *testing.T) []string {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("stream content type %q: %s", ct, r.body)
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(r.body))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
		case strings.HasPrefix(line, "data: "):
			out = append(out, strings.TrimPrefix(line, "data: "))
		default:
			t.Errorf("stream line %q: OpenAI streams hold data lines only", line)
		}
	}
	if len(out) == 0 || out[len(out)-1] != "[DONE]" {
		t.Fatalf("stream does not end with [DONE]: %s", r.body)
	}
	return out[:len(out)-1]
}

func ptr[T any](v T) *T { return &v }
