// Package workerclient is the typed client of a worker's simple HTTP API,
// used by the queen, the hive, the benchmarks and the tests. Its transport,
// streaming and error decoding are jobs.Client's: every error answer is a
// *wire.Error, decoded by jobs.ReadError.
package workerclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/rbee/rbee/internal/jobs"
	"github.com/rbee/rbee/internal/wire"
)

// Client talks to one worker.
type Client struct {
	BaseURL string       // e.g. "http://127.0.0.1:40123"
	Token   string       // bearer token, when the worker needs one
	HTTP    *http.Client // nil: jobs.NewHTTPClient's; no Timeout (streams are long)
}

func (c *Client) api() *jobs.Client {
	return &jobs.Client{BaseURL: c.BaseURL, HTTP: c.HTTP, Token: c.Token}
}

// Ready asks the worker's state.
func (c *Client) Ready(ctx context.Context) (wire.Ready, error) {
	var r wire.Ready
	err := c.api().Get(ctx, "/v1/ready", &r)
	return r, err
}

// WaitReady polls until the worker is ready, its load failed, or ctx ends.
func (c *Client) WaitReady(ctx context.Context) error {
	for {
		r, err := c.Ready(ctx)
		if err == nil && r.Ready {
			return nil
		}
		if err == nil && r.State == wire.StateError {
			return fmt.Errorf("worker failed to load its model: %s", r.Error)
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return fmt.Errorf("worker not ready: %w", err)
			}
			return fmt.Errorf("worker not ready (state %s): %w", r.State, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Submit posts an inference request.
func (c *Client) Submit(ctx context.Context, req wire.InferenceRequest) (wire.JobCreated, error) {
	var jc wire.JobCreated
	err := c.api().Post(ctx, "/v1/inference", req, &jc)
	if err == nil && !strings.HasPrefix(jc.SSEURL, "/v1/inference/") {
		err = fmt.Errorf("worker answered an unexpected stream URL %q", jc.SSEURL)
	}
	return jc, err
}

// Stream reads a job's events, calling fn for each, and returns the end
// event. An error event is returned as a *wire.Error.
func (c *Client) Stream(ctx context.Context, jc wire.JobCreated, fn func(wire.Event) error) (wire.Event, error) {
	return c.api().StreamPath(ctx, jc.SSEURL, fn)
}

// Cancel stops a job.
func (c *Client) Cancel(ctx context.Context, jobID string) error {
	return c.api().Delete(ctx, "/v1/inference/"+url.PathEscape(jobID))
}

// Generate submits req and streams it to the end. If ctx ends first the job
// is cancelled on the worker (the dropped stream cancels it too; the DELETE
// makes it immediate).
func (c *Client) Generate(ctx context.Context, req wire.InferenceRequest, fn func(wire.Event) error) (wire.Event, error) {
	jc, err := c.Submit(ctx, req)
	if err != nil {
		return wire.Event{}, err
	}
	end, err := c.Stream(ctx, jc, fn)
	if err != nil && ctx.Err() != nil {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_ = c.Cancel(cctx, jc.JobID)
	}
	if err == nil && end.Type != wire.TypeEnd {
		err = errors.New("worker stream ended with a " + end.Type + " event instead of end")
	}
	return end, err
}
