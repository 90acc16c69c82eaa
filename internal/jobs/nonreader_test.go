package jobs

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rbee/rbee/internal/httpapi"
	"github.com/rbee/rbee/internal/testkit"
	"github.com/rbee/rbee/internal/wire"
)

// serveDaemon serves h the way every daemon does (httpapi.Daemon, whose
// connections have a small send buffer) and returns its address.
func serveDaemon(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- httpapi.Daemon{Handler: h, Grace: time.Second}.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return ln.Addr().String()
}

// A client that opens the stream of a long generation and never reads is
// cut off once its buffers are full and a write stalls for WriteTimeout,
// and the job is cancelled, long before the generation's end: kernel
// buffers must not let it hold a slot for the whole generation (megabytes
// of events on loopback, without the daemon's small send buffer). A client
// that reads, meanwhile, gets its whole stream.
func TestNonReaderIsCutAndItsJobCancelled(t *testing.T) {
	const n, size = 1024, 1024 // 1 MiB of events, paced like a generation
	piece := strings.Repeat("x", size)
	generate := func(j *Job) error {
		j.CancelWhenUnwatched()
		for j.subscribers() == 0 && j.Context().Err() == nil {
			time.Sleep(time.Millisecond)
		}
		for i := 0; i < n && j.Context().Err() == nil; i++ {
			j.Emit(wire.NewToken(piece, i))
			time.Sleep(time.Millisecond)
		}
		j.Emit(wire.NewEnd(wire.StopMaxTokens, 1, n, wire.Timings{}))
		return nil
	}
	reg := NewRegistry(Options{WriteTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { reg.Close() })
	mux := http.NewServeMux()
	reg.Mount(mux, dispatchMap(map[string]RunFunc{wire.OpInfer: generate}))
	addr := serveDaemon(t, mux)
	client := &Client{BaseURL: "http://" + addr}

	stalled, err := reg.Create(wire.Operation{Operation: wire.OpInfer}, generate)
	if err != nil {
		t.Fatal(err)
	}
	testkit.DialNonReader(t, addr, testkit.GetRequest(addr, "/v1/jobs/"+stalled.ID()+"/stream"))

	var tokens int
	_, err = client.Run(context.Background(), wire.Operation{Operation: wire.OpInfer}, func(e wire.Event) error {
		if e.Type == wire.TypeToken {
			tokens++
		}
		return nil
	})
	if err != nil || tokens != n {
		t.Fatalf("the reading client got %d tokens of %d: %v", tokens, n, err)
	}

	waitFinished(t, stalled)
	if cause := context.Cause(stalled.Context()); !errors.Is(cause, ErrUnwatched) {
		t.Fatalf("the non-reader's job ended with %v, want it cancelled as unwatched", cause)
	}
}

// A stream that goes silent (a stopped server: its kernel keeps the
// connection open) fails after the client's IdleTimeout, while pings keep
// a quiet stream alive.
func TestStreamIdleTimeout(t *testing.T) {
	release := make(chan struct{})
	reg := NewRegistry(Options{PingInterval: 20 * time.Millisecond})
	t.Cleanup(func() { close(release); reg.Close() })
	mux := http.NewServeMux()
	reg.Mount(mux, dispatchMap(map[string]RunFunc{wire.OpInfer: func(j *Job) error {
		select {
		case <-time.After(500 * time.Millisecond): // quiet, but pinged
		case <-j.Context().Done():
		}
		j.Emit(wire.NewResult("done"))
		return nil
	}}))
	addr := serveDaemon(t, mux)
	client := &Client{BaseURL: "http://" + addr, IdleTimeout: 200 * time.Millisecond}
	if _, err := client.Run(context.Background(), wire.Operation{Operation: wire.OpInfer}, nil); err != nil {
		t.Fatalf("a quiet stream with pings: %v", err)
	}

	// A server that sends its headers and then nothing, like a stopped one.
	silent := serveDaemon(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		_ = http.NewResponseController(w).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	client = &Client{BaseURL: "http://" + silent, IdleTimeout: 200 * time.Millisecond}
	done := make(chan error, 1)
	go func() {
		_, err := client.StreamPath(context.Background(), "/v1/inference/x/stream", nil)
		done <- err
	}()
	if err := testkit.Receive(t, "the silent stream to fail", done); !errors.Is(err, ErrStreamIdle) {
		t.Fatalf("silent stream: %v, want ErrStreamIdle", err)
	}
}
