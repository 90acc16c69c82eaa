package worker

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/rbee/rbee/internal/engine"
	"github.com/rbee/rbee/internal/engine/fake"
	"github.com/rbee/rbee/internal/testkit"
	"github.com/rbee/rbee/internal/wire"
	"github.com/rbee/rbee/internal/workerclient"
)

// Shutting Serve down ends an open stream cleanly (end, cancelled, then
// [DONE]) before the listener closes, and frees the model.
func TestServeEndsStreamsOnShutdown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := &closeCounter{Model: &fake.Model{Delay: 5 * time.Millisecond}}
	s := New(Config{WorkerID: "w1", Load: func(func(float32)) (engine.Model, error) { return m, nil }})
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln) }()

	c := &workerclient.Client{BaseURL: "http://" + ln.Addr().String()}
	if err := c.WaitReady(t.Context()); err != nil {
		t.Fatal(err)
	}
	tokens := make(chan struct{}, 1000)
	type outcome struct {
		end wire.Event
		err error
	}
	ended := make(chan outcome, 1)
	go func() {
		end, err := c.Generate(context.Background(), wire.InferenceRequest{Prompt: "a", MaxTokens: ptr(400)}, func(wire.Event) error {
			tokens <- struct{}{}
			return nil
		})
		ended <- outcome{end, err}
	}()
	testkit.Receive(t, "a token", tokens)
	cancel()
	o := testkit.Receive(t, "the stream's end", ended)
	if o.err != nil || o.end.StopReason != wire.StopCancelled {
		t.Fatalf("stream ended with %+v, %v", o.end, o.err)
	}
	if err := testkit.Receive(t, "Serve to return", served); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if m.closed != 1 {
		t.Fatalf("model closed %d times", m.closed)
	}
}

// A model that cannot load ends Serve with the load's error.
func TestServeReturnsLoadError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	s := New(Config{Load: func(func(float32)) (engine.Model, error) { return nil, boom }})
	if err := s.Serve(context.Background(), ln); !errors.Is(err, boom) {
		t.Fatalf("Serve: %v", err)
	}
}

type closeCounter struct {
	*fake.Model
	closed int
}

func (m *closeCounter) Close() error { m.closed++; return m.Model.Close() }

func ptr[T any](v T) *T { return &v }
