package workerclient

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/rbee/rbee/internal/engine"
	"github.com/rbee/rbee/internal/engine/fake"
	"github.com/rbee/rbee/internal/testkit"
	"github.com/rbee/rbee/internal/wire"
	"github.com/rbee/rbee/internal/worker"
)

func TestMain(m *testing.M) { os.Exit(testkit.CheckLeaks(m)) }

// startWorker runs a worker on the fake model until the test's end.
func startWorker(t *testing.T, m *fake.Model, cfg worker.Config) string {
	t.Helper()
	cfg.Load = func(func(float32)) (engine.Model, error) { return m, nil }
	w := worker.New(cfg)
	ts := httptest.NewServer(w.Handler())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		ts.Close()
	})
	return ts.URL
}

func ptr[T any](v T) *T { return &v }

func TestGenerateAndErrors(t *testing.T) {
	url := startWorker(t, &fake.Model{Delay: 2 * time.Millisecond}, worker.Config{Token: "s3cret", QueueCap: 1})
	ctx := t.Context()

	// A wrong token is the worker's 401, as a *wire.Error.
	bad := &Client{BaseURL: url, Token: "wrong"}
	if _, err := bad.Ready(ctx); !wire.IsCode(err, wire.CodeUnauthorized) {
		t.Fatalf("wrong token: %v", err)
	}

	c := &Client{BaseURL: url, Token: "s3cret"}
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	var text string
	end, err := c.Generate(ctx, wire.InferenceRequest{Prompt: "abc", MaxTokens: ptr(5), Temperature: ptr(0.0)}, func(ev wire.Event) error {
		text += ev.T
		return nil
	})
	if err != nil || text != "defgh" || end.StopReason != wire.StopMaxTokens {
		t.Fatalf("generate: %q %+v %v", text, end, err)
	}

	// A bad request is a 400 that names the field.
	_, err = c.Submit(ctx, wire.InferenceRequest{Prompt: "a", MaxTokens: ptr(0)})
	if e, ok := wire.AsError(err); !ok || e.Status != http.StatusBadRequest || e.Message == "" {
		t.Fatalf("bad request: %v", err)
	}
	// An unknown job is a 404.
	if err := c.Cancel(ctx, "inf-nope"); !wire.IsCode(err, wire.CodeNotFound) {
		t.Fatalf("cancel unknown: %v", err)
	}

	// A full queue is a 429 with its Retry-After; a DELETE frees it.
	running, err := c.Submit(ctx, wire.InferenceRequest{Prompt: "a", MaxTokens: ptr(400)})
	if err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, "the first job to run", func() bool {
		r, err := c.Ready(ctx)
		return err == nil && r.Active == 1
	})
	waiting, err := c.Submit(ctx, wire.InferenceRequest{Prompt: "a", MaxTokens: ptr(1)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Submit(ctx, wire.InferenceRequest{Prompt: "a"})
	if e, ok := wire.AsError(err); !ok || e.Code != wire.CodeQueueFull || e.Status != http.StatusTooManyRequests || e.RetryAfter < 1 {
		t.Fatalf("full queue: %#v", err)
	}
	if err := c.Cancel(ctx, running.JobID); err != nil {
		t.Fatal(err)
	}
	if end, err := c.Stream(ctx, running, nil); err != nil || end.StopReason != wire.StopCancelled {
		t.Fatalf("cancelled job: %+v %v", end, err)
	}
	if end, err := c.Stream(ctx, waiting, nil); err != nil || end.TokensOut != 1 {
		t.Fatalf("queued job: %+v %v", end, err)
	}
}
