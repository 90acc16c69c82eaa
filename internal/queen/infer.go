package queen

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/rbee/rbee/internal/httpapi"
	"github.com/rbee/rbee/internal/jobs"
	"github.com/rbee/rbee/internal/queen/workers"
	"github.com/rbee/rbee/internal/wire"
	"github.com/rbee/rbee/internal/workerclient"
)

// Bounds of one inference the queen routes.
const (
	// watchInterval is how often a running inference checks that its
	// worker still heartbeats: a worker on a vanished machine never closes
	// its stream, so silence in the registry is what ends it.
	watchInterval = time.Second
	// cancelTimeout bounds the DELETE that stops a worker's job.
	cancelTimeout = 2 * time.Second
)

// errWorkerSilent cancels a stream whose worker stopped heartbeating.
var errWorkerSilent = errors.New("the worker stopped sending heartbeats")

func (s *Server) prepareInfer(op wire.Operation) (jobs.RunFunc, error) {
	if err := checkModel(op.Model); err != nil {
		return nil, err
	}
	if op.Prompt == "" {
		return nil, httpapi.BadRequest("prompt is required")
	}
	req := op.InferenceRequest()
	if err := req.Validate(); err != nil {
		return nil, httpapi.BadRequest("%v", err)
	}
	f := workers.Filter{Models: modelNames(op.Model), HiveID: op.HiveID, WorkerID: op.WorkerID}
	for _, v := range []struct{ field, value string }{{"hive_id", op.HiveID}, {"worker_id", op.WorkerID}} {
		if v.value == "" {
			continue
		}
		if err := workers.CheckName(v.field, v.value); err != nil {
			return nil, httpapi.BadRequest("%v", err)
		}
	}
	return func(j *jobs.Job) error {
		// A client that stops reading does not want the tokens: stop the
		// generation rather than burn the worker on it.
		j.CancelWhenUnwatched()
		return s.infer(j, op, f, req)
	}, nil
}

func (s *Server) infer(j *jobs.Job, op wire.Operation, f workers.Filter, req wire.InferenceRequest) error {
	ctx := j.Context()
	ready, err := s.waitForWorker(ctx, j, op, f)
	if err != nil {
		return err
	}
	var tried []string
	full := false
	for _, w := range ready {
		err := s.inferOn(ctx, j, w, req)
		if !errors.Is(err, errWorkerFull) && !errors.Is(err, errWorkerDown) {
			return err
		}
		full = full || errors.Is(err, errWorkerFull)
		tried = append(tried, w.WorkerID)
	}
	if full {
		return jobs.Errorf(wire.CodeQueueFull, "every worker for model %q is full (tried %s); try again shortly, or spawn another: rbee worker spawn -m %s", op.Model, strings.Join(tried, ", "), op.Model)
	}
	return jobs.Errorf(wire.CodeWorkerGone, "no worker for model %q answered (tried %s); see rbee status", op.Model, strings.Join(tried, ", "))
}

// waitForWorker returns the workers that can take the request, best first.
// Workers still loading the model are waited for: a worker that a spawn
// just reported ready may not have said so in a heartbeat yet.
func (s *Server) waitForWorker(ctx context.Context, j *jobs.Job, op wire.Operation, f workers.Filter) ([]workers.Worker, error) {
	deadline := time.NewTimer(s.opt.LoadWait)
	defer deadline.Stop()
	said := false
	for {
		changed := s.workers.Changed()
		ready, loading := s.workers.Pick(f)
		if len(ready) > 0 {
			return ready, nil
		}
		if len(loading) == 0 {
			return nil, s.noWorker(op)
		}
		if !said {
			j.Narrate("wait", fmt.Sprintf("Waiting for worker %s on hive %s to finish loading %s", loading[0].WorkerID, loading[0].HiveID, op.Model))
			said = true
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		case <-deadline.C:
			return nil, jobs.Errorf(wire.CodeNoWorker, "worker %s is still loading %s after %s", loading[0].WorkerID, op.Model, s.opt.LoadWait)
		}
	}
}

// noWorker explains why no worker matches and how to get one.
func (s *Server) noWorker(op wire.Operation) error {
	spawn := "rbee worker spawn -m " + op.Model
	if op.HiveID != "" {
		spawn += " --hive " + op.HiveID
	}
	var others []string
	names := modelNames(op.Model)
	for _, w := range s.workers.List() {
		if slices.Contains(names, w.Model) {
			others = append(others, fmt.Sprintf("%s on %s is %s", w.WorkerID, w.HiveID, w.State))
		}
	}
	msg := fmt.Sprintf("no worker serves model %q", op.Model)
	switch {
	case op.WorkerID != "":
		msg = fmt.Sprintf("worker %q does not serve model %q or is not ready", op.WorkerID, op.Model)
	case op.HiveID != "":
		msg += " on hive " + op.HiveID
	}
	if len(others) > 0 {
		msg += " (" + strings.Join(others, "; ") + ")"
	}
	return jobs.Errorf(wire.CodeNoWorker, "%s; start one with: %s", msg, spawn)
}

// A worker refused the request before doing any of it, so another may
// take it.
var (
	errWorkerFull = errors.New("the worker's queue is full")
	errWorkerDown = errors.New("the worker does not answer")
)

// inferOn runs the request on one worker, relaying its tokens and its end
// event into the job.
func (s *Server) inferOn(ctx context.Context, j *jobs.Job, w workers.Worker, req wire.InferenceRequest) error {
	release := s.workers.Acquire(w.WorkerID)
	defer release()
	wc := &workerclient.Client{BaseURL: w.URL, Token: s.hiveToken(w.HiveID), HTTP: s.opt.HTTP}

	jc, err := wc.Submit(ctx, req)
	if err != nil {
		var re *jobs.RemoteError
		switch {
		case ctx.Err() != nil:
			return context.Cause(ctx)
		case errors.As(err, &re) && (re.Status == http.StatusTooManyRequests || re.Status == http.StatusServiceUnavailable):
			j.Narrate("route", fmt.Sprintf("Worker %s is full (%s); trying another", w.WorkerID, re.Message))
			return errWorkerFull
		case errors.As(err, &re):
			return jobs.Errorf(re.Code, "worker %s: %s", w.WorkerID, re.Message)
		}
		s.workers.MarkGone(w.WorkerID, "it refused the connection: "+err.Error())
		j.Narrate("route", fmt.Sprintf("Worker %s does not answer (%v); trying another", w.WorkerID, err))
		return errWorkerDown
	}
	n := j.Narration("route", fmt.Sprintf("Running on worker %s (hive %s)", w.WorkerID, w.HiveID))
	n.WorkerID, n.HiveID = w.WorkerID, w.HiveID
	j.Emit(wire.TypeNarration, n)

	sctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	go s.watchWorker(sctx, stop, w.WorkerID)

	_, err = wc.Stream(sctx, jc, func(e wire.Event) error {
		switch e.Type {
		case wire.TypeToken, wire.TypeEnd, wire.TypeNarration, wire.TypeProgress:
			j.Emit(e.Type, e) // as is: the index, the stop reason and timings are the worker's
		}
		return nil
	})
	var re *jobs.RemoteError
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		// The client cancelled or went away: stop the generation now
		// rather than when the worker notices the dropped stream.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cancelTimeout)
		defer cancel()
		_ = wc.Cancel(cctx, jc.JobID)
		return context.Cause(ctx)
	case errors.As(err, &re):
		return jobs.Errorf(re.Code, "worker %s: %s", w.WorkerID, re.Message)
	}
	why := err.Error()
	if errors.Is(context.Cause(sctx), errWorkerSilent) {
		why = fmt.Sprintf("no heartbeat for %s", s.workers.GoneAfter())
	}
	s.workers.MarkGone(w.WorkerID, "its inference stream broke: "+why)
	return jobs.Errorf(wire.CodeWorkerGone, "worker %s on hive %s went away mid-stream (%s)", w.WorkerID, w.HiveID, why)
}

// watchWorker cancels the stream when the registry times the worker out.
// A worker that said it is shutting down is left to finish its streams.
func (s *Server) watchWorker(ctx context.Context, stop context.CancelCauseFunc, id string) {
	t := time.NewTicker(watchInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if w, ok := s.workers.Get(id); !ok || w.GoneReason == workers.GoneTimeout {
				stop(errWorkerSilent)
				return
			}
		}
	}
}
