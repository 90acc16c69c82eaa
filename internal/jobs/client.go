package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/rbee/rbee/internal/httpapi"
	"github.com/rbee/rbee/internal/sse"
	"github.com/rbee/rbee/internal/wire"
)

// Bounds of the client. A stream may carry a few events after its terminal
// one before [DONE]; a server that keeps talking past these bounds is cut off
// rather than followed forever.
const (
	maxErrorBody       = 64 << 10
	maxAfterTerminal   = 64
	afterTerminalWait  = 5 * time.Second
	cancelAfterTimeout = 5 * time.Second
	submitTimeout      = 30 * time.Second
)

// Client is the one client of the queen's and the hive's HTTP API: the job
// protocol, their small JSON endpoints and the heartbeats, with every error
// answer decoded into a *wire.Error. (A worker's own API has
// internal/workerclient, which streams through this one.)
type Client struct {
	BaseURL string       // e.g. "http://127.0.0.1:7833"
	HTTP    *http.Client // nil: NewHTTPClient's; must not set a Timeout, streams are long
	Token   string       // sent as "Authorization: Bearer" when set
	// IdleTimeout is how long a stream may stay silent, pings included,
	// before StreamPath fails with ErrStreamIdle; StreamIdleTimeout when
	// zero, none when negative.
	IdleTimeout time.Duration
}

// ErrStreamIdle is the error (wrapped) of a stream that stayed silent for
// the client's IdleTimeout: its server stopped answering.
var ErrStreamIdle = errors.New("the stream went silent: the server stopped answering")

func (c *Client) httpClient() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return defaultHTTP
}

func (c *Client) newRequest(ctx context.Context, method, path string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.BaseURL, "/")+path, body)
	if err != nil {
		return nil, err
	}
	httpapi.SetBearer(req, c.Token)
	return req, nil
}

func jobPath(jobID string) string { return "/v1/jobs/" + url.PathEscape(jobID) }

// Submit posts op and returns the created job. A non-2xx answer is a
// *wire.Error.
func (c *Client) Submit(ctx context.Context, op wire.Operation) (wire.JobCreated, error) {
	body, err := json.Marshal(op)
	if err != nil {
		return wire.JobCreated{}, err
	}
	req, err := c.newRequest(ctx, http.MethodPost, "/v1/jobs", bytes.NewReader(body))
	if err != nil {
		return wire.JobCreated{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return wire.JobCreated{}, fmt.Errorf("submit %s: %w", op.Operation, err)
	}
	defer closeBody(resp)
	if resp.StatusCode/100 != 2 {
		return wire.JobCreated{}, ReadError(resp)
	}
	var jc wire.JobCreated
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxErrorBody)).Decode(&jc); err != nil {
		return wire.JobCreated{}, fmt.Errorf("submit %s: malformed answer: %w", op.Operation, err)
	}
	if jc.JobID == "" {
		return wire.JobCreated{}, fmt.Errorf("submit %s: answer has no job_id", op.Operation)
	}
	return jc, nil
}

// Stream reads the events of a job, calls fn for each (terminal one
// included) and returns the terminal event. An error event is returned as a
// *wire.Error too. A stream that ends before its terminal event or its
// [DONE] is an error wrapping io.ErrUnexpectedEOF: silence is never success.
// An error from fn stops reading and is returned as is.
func (c *Client) Stream(ctx context.Context, jobID string, fn func(wire.Event) error) (wire.Event, error) {
	return c.StreamPath(ctx, jobPath(jobID)+"/stream", fn)
}

// StreamPath is Stream for a stream at any path of the server, such as the
// sse_url a worker returns for an inference job.
func (c *Client) StreamPath(ctx context.Context, path string, fn func(wire.Event) error) (wire.Event, error) {
	// Our own cancel lets a server that never sends [DONE] after the terminal
	// event, or that went silent, be cut off without touching the caller's
	// ctx.
	rctx, cancelCause := context.WithCancelCause(ctx)
	defer cancelCause(nil)
	cancel := func() { cancelCause(errAfterTerminal) }
	req, err := c.newRequest(rctx, http.MethodGet, path, nil)
	if err != nil {
		return wire.Event{}, err
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return wire.Event{}, fmt.Errorf("stream %s: %w", path, err)
	}
	defer resp.Body.Close() // never drained: the rest of a stream may be endless
	if resp.StatusCode/100 != 2 {
		return wire.Event{}, ReadError(resp)
	}

	if fn == nil {
		fn = func(wire.Event) error { return nil }
	}
	body := io.Reader(resp.Body)
	if idle := c.idleTimeout(); idle > 0 {
		// Servers ping every HeartbeatInterval while quiet, so silence
		// this long means a server that stopped (a stopped process keeps
		// its connections open).
		t := time.AfterFunc(idle, func() { cancelCause(ErrStreamIdle) })
		defer t.Stop()
		body = &idleReader{r: resp.Body, t: t, d: idle}
	}
	var (
		rd       = sse.NewReader(body)
		terminal *wire.Event
		after    int
		n        int
	)
	for {
		data, err := rd.Next()
		switch {
		case errors.Is(err, io.EOF): // [DONE]
			if terminal == nil {
				return wire.Event{}, fmt.Errorf("stream %s: [DONE] after %d events without a result, end or error event: %w", path, n, io.ErrUnexpectedEOF)
			}
			return finalResult(*terminal)
		case err != nil:
			if ctx.Err() != nil {
				return wire.Event{}, fmt.Errorf("stream %s: %w", path, ctx.Err())
			}
			if terminal != nil && terminal.Type == wire.TypeError {
				return finalResult(*terminal) // the job failed; that outranks a bad ending
			}
			if errors.Is(context.Cause(rctx), ErrStreamIdle) {
				return wire.Event{}, fmt.Errorf("stream %s: nothing for %s after %d events: %w", path, c.idleTimeout(), n, ErrStreamIdle)
			}
			if terminal != nil && rctx.Err() != nil {
				return wire.Event{}, fmt.Errorf("stream %s: no [DONE] within %s of the %s event: %w", path, afterTerminalWait, terminal.Type, io.ErrUnexpectedEOF)
			}
			if errors.Is(err, io.ErrUnexpectedEOF) {
				what := "without a result, end or error event"
				if terminal != nil {
					what = "after its " + terminal.Type + " event but before [DONE]"
				}
				return wire.Event{}, fmt.Errorf("stream %s: the stream was cut off after %d events %s: %w", path, n, what, io.ErrUnexpectedEOF)
			}
			return wire.Event{}, fmt.Errorf("stream %s: %w", path, err)
		}
		if terminal != nil {
			// The terminal event ended the job; anything before [DONE] is
			// not part of it.
			if after++; after > maxAfterTerminal {
				return wire.Event{}, fmt.Errorf("stream %s: %d events after the %s event and no [DONE]: %w", path, after, terminal.Type, io.ErrUnexpectedEOF)
			}
			continue
		}
		var ev wire.Event
		if err := json.Unmarshal(data, &ev); err != nil {
			return wire.Event{}, fmt.Errorf("stream %s: malformed event %.80q: %w", path, data, err)
		}
		n++
		if err := fn(ev); err != nil {
			return ev, err
		}
		if ev.Terminal() {
			terminal = &ev
			t := time.AfterFunc(afterTerminalWait, cancel)
			defer t.Stop()
		}
	}
}

var errAfterTerminal = errors.New("no [DONE] after the terminal event")

func (c *Client) idleTimeout() time.Duration {
	if c.IdleTimeout == 0 {
		return StreamIdleTimeout
	}
	return c.IdleTimeout
}

// idleReader restarts t with d on every byte read.
type idleReader struct {
	r io.Reader
	t *time.Timer
	d time.Duration
}

func (ir *idleReader) Read(p []byte) (int, error) {
	n, err := ir.r.Read(p)
	if n > 0 {
		ir.t.Reset(ir.d)
	}
	return n, err
}

func finalResult(ev wire.Event) (wire.Event, error) {
	if ev.Type == wire.TypeError {
		return ev, ev.Err()
	}
	return ev, nil
}

// Cancel asks the server to cancel a job. A job that already finished is no
// error; an unknown one is a *wire.Error with Status 404.
func (c *Client) Cancel(ctx context.Context, jobID string) error {
	req, err := c.newRequest(ctx, http.MethodDelete, jobPath(jobID), nil)
	if err != nil {
		return err
	}
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return fmt.Errorf("cancel %s: %w", jobID, err)
	}
	defer closeBody(resp)
	if resp.StatusCode/100 != 2 {
		return ReadError(resp)
	}
	return nil
}

// Run submits op and streams its events to fn (see Stream). When ctx is
// cancelled meanwhile, it also cancels the remote job, best effort, so that
// abandoning a job on this side stops it on the other.
func (c *Client) Run(ctx context.Context, op wire.Operation, fn func(wire.Event) error) (wire.Event, error) {
	jc, err := c.submitOrCancel(ctx, op)
	if err != nil {
		return wire.Event{}, err
	}
	ev, err := c.Stream(ctx, jc.JobID, fn)
	if ctx.Err() != nil {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cancelAfterTimeout)
		_ = c.Cancel(cctx, jc.JobID)
		cancel()
	}
	return ev, err
}

// submitOrCancel submits op on its own context, so that a caller who gives
// up while the answer is on its way does not leave a job running on the
// server that nobody knows the id of: the late answer's job is cancelled.
func (c *Client) submitOrCancel(ctx context.Context, op wire.Operation) (wire.JobCreated, error) {
	type answer struct {
		jc  wire.JobCreated
		err error
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), submitTimeout)
	done := make(chan answer, 1)
	go func() {
		defer cancel()
		jc, err := c.Submit(sctx, op)
		done <- answer{jc, err}
	}()
	select {
	case a := <-done:
		return a.jc, a.err
	case <-ctx.Done():
	}
	go func() {
		if a := <-done; a.err == nil {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cancelAfterTimeout)
			_ = c.Cancel(cctx, a.jc.JobID)
			cancel()
		}
	}()
	return wire.JobCreated{}, fmt.Errorf("submit %s: %w", op.Operation, ctx.Err())
}

// Get GETs one of the daemon's small JSON answers (/health,
// /v1/capabilities) into v. A non-2xx answer is a *wire.Error.
func (c *Client) Get(ctx context.Context, path string, v any) error {
	return c.call(ctx, http.MethodGet, path, nil, v)
}

// Post POSTs in as JSON to one of the daemon's small endpoints and decodes
// its JSON answer into out (nil: the answer is dropped). A non-2xx answer
// is a *wire.Error.
func (c *Client) Post(ctx context.Context, path string, in, out any) error {
	return c.call(ctx, http.MethodPost, path, in, out)
}

// Delete DELETEs path (a worker's inference job, say), dropping the
// answer's body. A non-2xx answer is a *wire.Error.
func (c *Client) Delete(ctx context.Context, path string) error {
	return c.call(ctx, http.MethodDelete, path, nil, nil)
}

// Heartbeat reports a worker to a queen.
func (c *Client) Heartbeat(ctx context.Context, hb wire.Heartbeat) error {
	return c.Post(ctx, "/v1/workers/heartbeat", hb, nil)
}

// maxAnswer bounds the small JSON answers of Get and Post.
const maxAnswer = 1 << 20

func (c *Client) call(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := c.newRequest(ctx, method, path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer closeBody(resp)
	if resp.StatusCode/100 != 2 {
		return ReadError(resp)
	}
	if out == nil {
		return nil
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if len(data) > maxAnswer {
		return fmt.Errorf("%s %s: answer larger than %d bytes", method, path, maxAnswer)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: malformed answer: %w", method, path, err)
	}
	return nil
}

// ReadError builds a *wire.Error from a non-2xx answer of any rbee daemon,
// reading only a bounded prefix of its body. Its Status is the answer's.
func ReadError(resp *http.Response) error {
	re := &wire.Error{Status: resp.StatusCode}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var eb wire.ErrorBody
	if json.Unmarshal(body, &eb) == nil && (eb.Error.Code != "" || eb.Error.Message != "") {
		re.Code, re.Message = eb.Error.Code, eb.Error.Message
	}
	if re.Message == "" {
		// Not an rbee daemon's answer (a proxy's, say): its status line says
		// the most.
		re.Message = "HTTP " + resp.Status
	}
	if n, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && n > 0 {
		re.RetryAfter = n
	}
	return re
}

// closeBody drains a little of a finished answer so the connection can be
// reused, without reading an unbounded body.
func closeBody(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
	_ = resp.Body.Close()
}
