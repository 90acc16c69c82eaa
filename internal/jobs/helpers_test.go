package jobs

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/rbee/rbee/internal/testkit"
	"github.com/rbee/rbee/internal/wire"
)

// testEnv is a registry mounted on a real HTTP server, and a client for it.
type testEnv struct {
	reg    *Registry
	srv    *httptest.Server
	client *Client
}

func newEnv(t *testing.T, opt Options, runs map[string]RunFunc) *testEnv {
	t.Helper()
	if opt.Actor == "" {
		opt.Actor = "queen-rbee"
	}
	reg := NewRegistry(opt)
	mux := http.NewServeMux()
	reg.Mount(mux, dispatchMap(runs))
	srv := httptest.NewServer(mux)
	e := &testEnv{reg: reg, srv: srv, client: &Client{BaseURL: srv.URL, HTTP: srv.Client()}}
	t.Cleanup(func() {
		if err := reg.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		srv.CloseClientConnections()
		srv.Close()
	})
	return e
}

func dispatchMap(runs map[string]RunFunc) Dispatch {
	return func(op wire.Operation) (RunFunc, error) {
		if run, ok := runs[op.Operation]; ok {
			return run, nil
		}
		return nil, wire.BadRequest("unknown operation %q", op.Operation)
	}
}

func (e *testEnv) submit(t *testing.T, name string) string {
	t.Helper()
	jc, err := e.client.Submit(context.Background(), wire.Operation{Operation: name})
	if err != nil {
		t.Fatalf("submit %s: %v", name, err)
	}
	if !strings.HasPrefix(jc.JobID, "job-") || jc.SSEURL != "/v1/jobs/"+jc.JobID+"/stream" {
		t.Fatalf("bad JobCreated %+v", jc)
	}
	return jc.JobID
}

func (e *testEnv) job(t *testing.T, id string) *Job {
	t.Helper()
	j, ok := e.reg.Get(id)
	if !ok {
		t.Fatalf("job %s not found", id)
	}
	return j
}

// collect streams a job and returns every event fn saw and the result.
func (e *testEnv) collect(ctx context.Context, id string) ([]wire.Event, wire.Event, error) {
	var evs []wire.Event
	term, err := e.client.Stream(ctx, id, func(ev wire.Event) error {
		evs = append(evs, ev)
		return nil
	})
	return evs, term, err
}

// rawStream reads a stream's bytes as they come, line by line.
type rawStream struct {
	resp  *http.Response
	lines *bufio.Reader
}

func openRaw(t *testing.T, url string) *rawStream {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("stream status %d", resp.StatusCode)
	}
	return &rawStream{resp: resp, lines: bufio.NewReaderSize(resp.Body, 64<<10)}
}

func (s *rawStream) line(t *testing.T) string {
	t.Helper()
	l, err := s.lines.ReadString('\n')
	if err != nil {
		t.Fatalf("reading stream: %v (partial %q)", err, l)
	}
	return strings.TrimSuffix(l, "\n")
}

func TestMain(m *testing.M) { os.Exit(testkit.CheckLeaks(m)) }

func waitFinished(t *testing.T, j *Job) {
	t.Helper()
	testkit.Receive(t, "job "+j.ID()+" to finish", j.Finished())
}

func asRemote(t *testing.T, err error) *wire.Error {
	t.Helper()
	var re *wire.Error
	if !errors.As(err, &re) {
		t.Fatalf("want *wire.Error, got %T %v", err, err)
	}
	return re
}

func readAll(t *testing.T, r io.Reader) string {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func types(evs []wire.Event) string {
	var b strings.Builder
	for i, ev := range evs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(ev.Type)
	}
	return b.String()
}
