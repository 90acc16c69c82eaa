package openai

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rbee/rbee/internal/httpapi"
	"github.com/rbee/rbee/internal/testkit"
	"github.com/rbee/rbee/internal/wire"
)

// endlessBackend generates paced tokens until fn or ctx stops it, and
// says how it stopped.
type endlessBackend struct {
	fakeBackend
	sent    atomic.Int64
	stopped chan error
}

func (b *endlessBackend) Generate(ctx context.Context, model string, req wire.InferenceRequest, fn func(wire.Event) error) (wire.Event, error) {
	for i := 0; i < 60000; i++ {
		if err := ctx.Err(); err != nil {
			b.stopped <- err
			return wire.Event{}, err
		}
		if err := fn(wire.Event{Type: wire.TypeToken, T: "a", I: i}); err != nil {
			b.stopped <- err
			return wire.Event{}, err
		}
		b.sent.Add(1)
		time.Sleep(200 * time.Microsecond)
	}
	b.stopped <- nil
	end := wire.Event{Type: wire.TypeEnd, StopReason: wire.StopMaxTokens}
	return end, fn(end)
}

// A streaming client that never reads is cut off once what it can absorb
// is full and a write stalls for WriteTimeout, and its generation stops,
// long before its end: without the daemon's small send buffer, loopback's
// kernel buffers take thousands of chunks first.
func TestStreamNonReaderStopsGeneration(t *testing.T) {
	b := &endlessBackend{stopped: make(chan error, 1)}
	s := New(Options{Backend: b, WriteTimeout: 100 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	mux := http.NewServeMux()
	s.Mount(mux)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- httpapi.Daemon{Handler: mux, Grace: time.Second}.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-served })

	body := `{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true}`
	testkit.DialNonReader(t, ln.Addr().String(), fmt.Sprintf("POST /v1/chat/completions HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
		ln.Addr(), len(body), body))

	if err := testkit.Receive(t, "the generation to stop", b.stopped); err == nil {
		t.Fatal("the generation ran to its end for a client that never read")
	}
	if n := b.sent.Load(); n >= 5000 {
		t.Fatalf("%d chunks went to a client that never read before it was cut off", n)
	}
}
