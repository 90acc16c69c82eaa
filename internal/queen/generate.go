package queen

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/rbee/rbee/internal/httpapi"
	"github.com/rbee/rbee/internal/jobs"
	"github.com/rbee/rbee/internal/modelref"
	"github.com/rbee/rbee/internal/queen/workers"
	"github.com/rbee/rbee/internal/wire"
	"github.com/rbee/rbee/internal/workerclient"
)

// spawnSettle bounds the wait, after a spawn succeeded, for the new worker's
// first heartbeat: it sends one the moment it is ready, so only a worker
// that cannot reach the queen takes longer.
const spawnSettle = 15 * time.Second

// Generate runs one inference request on a worker of model, without a job:
// it is the OpenAI API's way in (openai.Backend). fn gets each token event
// and then the end event; its error stops the generation. The least busy
// ready worker is tried first and a full or dead one is passed over;
// workers still loading are waited for; and when no worker serves the
// model, one is started on a live hive whose catalog has it (see spawnFor),
// shared by every request that waits for the same model. Waiting is bounded
// by Options.LoadWait. When ctx ends, the generation is stopped on the
// worker at once.
func (s *Server) Generate(ctx context.Context, model string, req wire.InferenceRequest, fn func(wire.Event) error) (wire.Event, error) {
	if err := req.Validate(); err != nil {
		return wire.Event{}, httpapi.BadRequest("%v", err)
	}
	// Exactly the names /v1/models lists: what a worker reports serving.
	f := workers.Filter{Models: []string{model}}
	deadline := time.NewTimer(s.opt.LoadWait)
	defer deadline.Stop()
	var (
		flight  *spawnFlight // the start this request waits for
		started time.Time    // when a start it waited for succeeded
		settle  <-chan time.Time
	)
	for {
		changed := s.workers.Changed()
		ready, loading := s.workers.Pick(f)
		if len(ready) > 0 {
			end, err := s.generateOnAny(ctx, ready, req, fn)
			if !errors.Is(err, errWorkerDown) {
				return end, err
			}
			continue // those that did not answer are gone now: look again
		}
		if len(loading) == 0 && flight == nil && started.IsZero() {
			if !modelref.ValidID(model) {
				// Only catalog ids are started from the API: a path would
				// let a client load any file of a hive's machine.
				return wire.Event{}, jobs.Errorf(wire.CodeUnknownModel, "no worker serves model %.128q, and only a catalog id can start one", model)
			}
			flight = s.spawnFor(model)
		}
		var spawned <-chan struct{}
		if flight != nil {
			spawned = flight.done
		}
		select {
		case <-changed:
		case <-spawned:
			if flight.err != nil {
				return wire.Event{}, flight.err
			}
			flight, started = nil, time.Now()
			settle = time.After(spawnSettle)
		case <-settle:
			return wire.Event{}, jobs.Errorf(wire.CodeNoWorker, "a worker for %s started but sent no heartbeat to the queen within %s; is the queen's URL reachable from its hive?", model, spawnSettle)
		case <-ctx.Done():
			return wire.Event{}, context.Cause(ctx)
		case <-deadline.C:
			return wire.Event{}, jobs.Errorf(wire.CodeNoWorker, "no worker for model %s became ready within %s", model, s.opt.LoadWait)
		}
	}
}

// generateOnAny tries the ready workers in turn. It returns errWorkerDown
// when none answered and some did not (so a new worker may be needed), and
// queue_full when every one that answered was full.
func (s *Server) generateOnAny(ctx context.Context, ready []workers.Worker, req wire.InferenceRequest, fn func(wire.Event) error) (wire.Event, error) {
	var full []string
	for _, w := range ready {
		end, err := s.generateOn(ctx, w, req, fn)
		switch {
		case errors.Is(err, errWorkerFull):
			full = append(full, w.WorkerID)
		case !errors.Is(err, errWorkerDown):
			return end, err
		}
	}
	if len(full) == 0 {
		return wire.Event{}, errWorkerDown
	}
	e := httpapi.Errorf(http.StatusTooManyRequests, wire.CodeQueueFull, "every worker for this model is busy with a full queue (%s); try again shortly", strings.Join(full, ", "))
	e.RetryAfter = 1
	return wire.Event{}, e
}

// generateOn runs the request on one worker. A worker that refuses it
// before doing any of it (full, or not answering) is errWorkerFull or
// errWorkerDown, so that another can take it.
func (s *Server) generateOn(ctx context.Context, w workers.Worker, req wire.InferenceRequest, fn func(wire.Event) error) (wire.Event, error) {
	release := s.workers.Acquire(w.WorkerID)
	defer release()
	wc := &workerclient.Client{BaseURL: w.URL, Token: s.hiveToken(w.HiveID), HTTP: s.opt.HTTP}

	jc, err := wc.Submit(ctx, req)
	if err != nil {
		var re *jobs.RemoteError
		switch {
		case ctx.Err() != nil:
			return wire.Event{}, context.Cause(ctx)
		case errors.As(err, &re) && (re.Status == http.StatusTooManyRequests || re.Status == http.StatusServiceUnavailable):
			return wire.Event{}, errWorkerFull
		case errors.As(err, &re):
			return wire.Event{}, re // the worker's verdict on the request, e.g. 400 context_length_exceeded
		}
		s.workers.MarkGone(w.WorkerID, "it refused the connection: "+err.Error())
		return wire.Event{}, errWorkerDown
	}

	sctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	go s.watchWorker(sctx, stop, w.WorkerID)
	var fnErr error
	end, err := wc.Stream(sctx, jc, func(e wire.Event) error {
		if e.Type != wire.TypeToken && e.Type != wire.TypeEnd {
			return nil
		}
		fnErr = fn(e)
		return fnErr
	})
	var re *jobs.RemoteError
	switch {
	case err == nil:
		return end, nil
	case ctx.Err() != nil || fnErr != nil:
		// The client went away or stopped reading: stop the generation now
		// rather than when the worker notices the dropped stream.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cancelTimeout)
		defer cancel()
		_ = wc.Cancel(cctx, jc.JobID)
		if fnErr != nil {
			return wire.Event{}, fnErr
		}
		return wire.Event{}, context.Cause(ctx)
	case errors.As(err, &re):
		return wire.Event{}, re
	}
	why := err.Error()
	if errors.Is(context.Cause(sctx), errWorkerSilent) {
		why = fmt.Sprintf("no heartbeat for %s", s.workers.GoneAfter())
	}
	s.workers.MarkGone(w.WorkerID, "its inference stream broke: "+why)
	return wire.Event{}, jobs.Errorf(wire.CodeWorkerGone, "worker %s on hive %s went away mid-stream (%s)", w.WorkerID, w.HiveID, why)
}
