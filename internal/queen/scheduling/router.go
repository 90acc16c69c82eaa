package scheduling

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

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
	// maxWorkerDown is how many workers that stop answering before the
	// first token a request tries before it fails with worker_gone: a
	// prompt that crashes workers must not take down every one in turn.
	maxWorkerDown = 3
)

var (
	// errWorkerSilent cancels a stream whose worker stopped heartbeating.
	errWorkerSilent = errors.New("the worker stopped sending heartbeats")
	// A worker refused the request before doing any of it, so another
	// may take it.
	errWorkerFull = errors.New("the worker's queue is full")
	errWorkerDown = errors.New("the worker does not answer")
)

// A worker that stops answering (stopped, frozen, its machine swapped
// out) keeps its connections open, so the queen notices it by silence, the
// first of: its registry entry timing out (workers.Options.GoneAfter, 8 s
// without a heartbeat, checked every watchInterval), no answer to the
// request within jobs.ResponseHeaderTimeout (10 s), or its stream silent
// for jobs.StreamIdleTimeout (10 s; workers ping every heartbeat interval).
// Before its first token the request goes back to the queue for another
// worker (or a new one); after it, the stream ends with worker_gone.

// PlaceMode says whether a request may start a worker when none serves its
// model.
type PlaceMode int

const (
	// PlaceNever: the request names one worker.
	PlaceNever PlaceMode = iota
	// PlaceCatalog: only a catalog id may start a worker, never a path
	// (an API client must not make a hive open a file of its choosing) or
	// a download. The OpenAI API's rule.
	PlaceCatalog
	// PlaceAny: catalog ids, paths and hf: references. The job protocol's
	// rule, whose clients are this machine's users or hold the token.
	PlaceAny
)

// Routed is one inference request on its way to a worker.
type Routed struct {
	Request
	Filter workers.Filter
	Place  PlaceMode
	// Say gets the queen's narration for this request and the events of a
	// worker start it waits for; nil: nobody reads them (the OpenAI API).
	Say func(wire.Event)
	// Nowhere is the error when no worker serves the model and none can
	// be started.
	Nowhere func() error
}

func (s *Scheduler) narrate(r *Routed, action, human, hive, worker string) {
	if r.Say != nil {
		r.Say(wire.Event{Type: wire.TypeNarration, Actor: s.opt.Actor, Action: action, Human: human, HiveID: hive, WorkerID: worker})
	}
}

// Route is the one way an inference request reaches a worker, for the job
// protocol and the OpenAI API alike. The request takes its place in its
// model's queue (or is refused with queue_full when the queue is full),
// waits there until a worker has a free slot and the Policy gives it one
// (first in, first out; a worker that ran a long prefix of its prompt
// before and has a free slot takes it first, see affinity.go), and runs
// there; tokens and the end event go to fn. While no worker serves the
// model, it waits for one that loads, or has one started (see spawnFor),
// within Options.LoadWait. A worker that turns it away before starting it
// (its own queue full, or gone) sends it back to its place in the queue.
// Its timeout_ms bounds all the waiting before it starts
// (deadline_exceeded); what is left of it goes to the worker, for the
// worker's own queue.
func (s *Scheduler) Route(ctx context.Context, r *Routed, fn func(wire.Event) error) (wire.Event, error) {
	r.Queued = time.Now()
	if ms := r.Inference.TimeoutMs; ms != nil {
		r.Deadline = r.Queued.Add(time.Duration(*ms) * time.Millisecond)
	}
	t := newTicket(&r.Request, r.Filter)
	if s.queue.affinity != nil {
		t.prefix = prefixOf(t.model, &r.Inference)
	}
	if err := s.queue.add(t); err != nil {
		return wire.Event{}, err
	}
	defer s.queue.leave(t)
	down := 0
	for {
		g, err := s.await(ctx, t, r)
		if err != nil {
			return wire.Event{}, err
		}
		end, err := s.runOn(ctx, r, g.w, s.queue.affinity.follow(t.prefix, g.w, fn))
		g.release()
		switch {
		case errors.Is(err, errWorkerFull):
			s.queue.refuse(g.w.WorkerID)
			s.queue.requeue(t)
		case errors.Is(err, errWorkerDown):
			if down++; down >= maxWorkerDown {
				return wire.Event{}, wire.Errorf(wire.CodeWorkerGone,
					"%d workers for %s stopped answering before the request's first token; the last: %v", down, r.Model, err)
			}
			s.queue.requeue(t) // the worker is marked gone
		default:
			return end, err
		}
	}
}

// runOn runs the request on worker w. A worker that refuses it before
// doing any of it (full, or not answering) is errWorkerFull or
// errWorkerDown, so that another can take it. Tokens and the end event go
// to fn, the worker's narration and progress to r.Say.
func (s *Scheduler) runOn(ctx context.Context, r *Routed, w workers.Worker, fn func(wire.Event) error) (wire.Event, error) {
	req := r.Inference
	if !r.Deadline.IsZero() {
		// The worker's own queue gets what is left of the time.
		left := time.Until(r.Deadline)
		if left <= 0 {
			return wire.Event{}, errDeadline(&r.Request, "its time ran out as a slot opened")
		}
		ms := int((left + time.Millisecond - 1) / time.Millisecond)
		req.TimeoutMs = &ms
	}
	wc := &workerclient.Client{BaseURL: w.URL, Token: s.opt.WorkerToken(w.HiveID, w.WorkerID), HTTP: s.opt.HTTP}
	// The watch runs from the submit on: a worker that stops answering
	// before it even takes the request is given up as soon as the
	// registry times it out.
	sctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	go s.watchWorker(sctx, stop, w.WorkerID)
	jc, err := wc.Submit(sctx, req)
	if err != nil {
		var re *wire.Error
		coded := errors.As(err, &re)
		switch {
		case ctx.Err() != nil:
			return wire.Event{}, context.Cause(ctx)
		case coded && (re.Status == http.StatusTooManyRequests || re.Status == http.StatusServiceUnavailable):
			s.narrate(r, "route", fmt.Sprintf("Worker %s turned the request away (%s); back to the queue", w.WorkerID, re.Message), w.HiveID, w.WorkerID)
			return wire.Event{}, errWorkerFull
		case coded:
			return wire.Event{}, workerError(r, w, re)
		}
		return wire.Event{}, s.down(r, w, sctx, "it did not take the request", err)
	}
	// The worker's job id lets a person (or a test) follow the generation
	// on the worker itself.
	s.narrate(r, "route", fmt.Sprintf("Running on worker %s (hive %s) as %s", w.WorkerID, w.HiveID, jc.JobID), w.HiveID, w.WorkerID)

	var (
		fnErr   error
		relayed bool // a token or the end reached the client: no retry elsewhere
	)
	end, err := wc.Stream(sctx, jc, func(e wire.Event) error {
		switch e.Type {
		case wire.TypeToken, wire.TypeEnd:
			relayed = true
			fnErr = fn(e) // as is: the index, the stop reason and timings are the worker's
			return fnErr
		case wire.TypeNarration, wire.TypeProgress:
			if r.Say != nil {
				r.Say(e)
			}
		}
		return nil
	})
	var re *wire.Error
	coded := errors.As(err, &re)
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
	case coded:
		return wire.Event{}, workerError(r, w, re)
	case !relayed:
		// Nothing reached the client yet: another worker may take it.
		return wire.Event{}, s.down(r, w, sctx, "its inference stream broke before the first token", err)
	}
	why := silence(s, sctx, err)
	s.workers.MarkGone(w.WorkerID, "its inference stream broke: "+why)
	return wire.Event{}, wire.Errorf(wire.CodeWorkerGone, "worker %s on hive %s went away mid-stream (%s)", w.WorkerID, w.HiveID, why)
}

// down marks w gone for what happened and sends the request back to the
// queue (errWorkerDown), saying so.
func (s *Scheduler) down(r *Routed, w workers.Worker, sctx context.Context, what string, err error) error {
	why := silence(s, sctx, err)
	s.workers.MarkGone(w.WorkerID, what+": "+why)
	s.narrate(r, "route", fmt.Sprintf("Worker %s does not answer (%s); back to the queue", w.WorkerID, why), w.HiveID, w.WorkerID)
	return fmt.Errorf("%w: worker %s on hive %s: %s", errWorkerDown, w.WorkerID, w.HiveID, why)
}

// silence says why a call to a worker failed, naming the heartbeats when
// the registry's timeout ended it.
func silence(s *Scheduler, sctx context.Context, err error) string {
	if errors.Is(context.Cause(sctx), errWorkerSilent) {
		return fmt.Sprintf("no heartbeat for %s", s.workers.GoneAfter())
	}
	return err.Error()
}

// workerError is the worker's verdict on the request (a 400
// context_length_exceeded, a failed generation), saying which worker; its
// own deadline is the request's.
func workerError(r *Routed, w workers.Worker, re *wire.Error) error {
	if re.Code == wire.CodeDeadline {
		return errDeadline(&r.Request, fmt.Sprintf("worker %s had no free slot in time: %s", w.WorkerID, re.Message))
	}
	return &wire.Error{Status: re.Status, Code: re.Code, Message: fmt.Sprintf("worker %s: %s", w.WorkerID, re.Message)}
}

// watchWorker cancels the stream when the registry times the worker out.
// A worker that said it is shutting down is left to finish its streams.
func (s *Scheduler) watchWorker(ctx context.Context, stop context.CancelCauseFunc, id string) {
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
