package queen

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/rbee/rbee/internal/modelref"
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
	// spawnSettle bounds the wait, after a start succeeded, for the new
	// worker's first heartbeat: it sends one the moment it is ready, so
	// only a worker that cannot reach the queen takes longer.
	spawnSettle = 15 * time.Second
)

var (
	// errWorkerSilent cancels a stream whose worker stopped heartbeating.
	errWorkerSilent = errors.New("the worker stopped sending heartbeats")
	// A worker refused the request before doing any of it, so another
	// may take it.
	errWorkerFull = errors.New("the worker's queue is full")
	errWorkerDown = errors.New("the worker does not answer")
)

// placeMode says whether a request may start a worker when none serves its
// model.
type placeMode int

const (
	// placeNever: the request names one worker.
	placeNever placeMode = iota
	// placeCatalog: only a catalog id may start a worker, never a path
	// (an API client must not make a hive open a file of its choosing) or
	// a download. The OpenAI API's rule.
	placeCatalog
	// placeAny: catalog ids, paths and hf: references. The job protocol's
	// rule, whose clients are this machine's users or hold the token.
	placeAny
)

// routed is one inference request on its way to a worker.
type routed struct {
	Request
	filter workers.Filter
	place  placeMode
	// say gets the queen's narration for this request and the events of a
	// worker start it waits for; nil: nobody reads them (the OpenAI API).
	say func(wire.Event)
	// nowhere is the error when no worker serves the model and none can
	// be started.
	nowhere func() error
}

func (r *routed) narrate(action, human, hive, worker string) {
	if r.say != nil {
		r.say(wire.Event{Type: wire.TypeNarration, Actor: Actor, Action: action, Human: human, HiveID: hive, WorkerID: worker})
	}
}

// Generate runs one inference request on a worker of model, without a job:
// it is the OpenAI API's way in (openai.Backend). fn gets each token event
// and then the end event; its error stops the generation. It goes the way
// of every request (see route); a model no worker serves is started only
// from a catalog id, shared by every request that waits for it. When ctx
// ends, the generation is stopped on the worker at once.
func (s *Server) Generate(ctx context.Context, model string, req wire.InferenceRequest, fn func(wire.Event) error) (wire.Event, error) {
	if err := req.Validate(); err != nil {
		return wire.Event{}, wire.BadRequest("%v", err)
	}
	r := &routed{
		Request: Request{Model: model, Inference: req},
		// Exactly the names /v1/models lists: what a worker reports serving.
		filter: workers.Filter{Models: []string{model}},
		place:  placeCatalog,
		nowhere: func() error {
			return wire.Errorf(wire.CodeUnknownModel, "no worker serves model %.128q and no live hive has it in its catalog", model)
		},
	}
	if !modelref.ValidID(model) {
		r.nowhere = func() error {
			return wire.Errorf(wire.CodeUnknownModel, "no worker serves model %.128q, and only a catalog id can start one", model)
		}
	}
	return s.route(ctx, r, fn)
}

// route is the one way an inference request reaches a worker, for the job
// protocol and the OpenAI API alike. The request takes its place in its
// model's queue (or is refused with queue_full when the queue is full),
// waits there until a worker has a free slot and the Policy gives it one
// (first in, first out), and runs there; tokens and the end event go to
// fn. While no worker serves the model, it waits for one that loads, or
// has one started (see spawnFor), within Options.LoadWait. A worker that
// turns it away before starting it (its own queue full, or gone) sends it
// back to its place in the queue. Its timeout_ms bounds all the waiting
// before it starts (deadline_exceeded); what is left of it goes to the
// worker, for the worker's own queue.
func (s *Server) route(ctx context.Context, r *routed, fn func(wire.Event) error) (wire.Event, error) {
	r.Queued = time.Now()
	if ms := r.Inference.TimeoutMs; ms != nil {
		r.Deadline = r.Queued.Add(time.Duration(*ms) * time.Millisecond)
	}
	t := newTicket(&r.Request, r.filter)
	if err := s.queue.add(t); err != nil {
		return wire.Event{}, err
	}
	defer s.queue.leave(t)
	for {
		g, err := s.await(ctx, t, r)
		if err != nil {
			return wire.Event{}, err
		}
		end, err := s.runOn(ctx, r, g.w, fn)
		g.release()
		switch {
		case errors.Is(err, errWorkerFull):
			s.queue.refuse(g.w.WorkerID)
			s.queue.requeue(t)
		case errors.Is(err, errWorkerDown):
			s.queue.requeue(t) // the worker is marked gone
		default:
			return end, err
		}
	}
}

// await waits until the queue gives t a worker. Meanwhile it watches why
// nothing comes: while no worker of the model takes requests, it waits for
// one that loads, else starts one when r may, else fails with r.nowhere.
func (s *Server) await(ctx context.Context, t *ticket, r *routed) (grant, error) {
	var deadline <-chan time.Time
	if !r.Deadline.IsZero() {
		dt := time.NewTimer(time.Until(r.Deadline))
		defer dt.Stop()
		deadline = dt.C
	}
	var (
		flight     *spawnFlight
		spawned    <-chan struct{}
		unwatch    = func() {}
		settle     *time.Timer
		settleC    <-chan time.Time
		loadWait   *time.Timer // runs while no worker takes requests
		saidLoad   bool
		saidQueued bool
	)
	defer func() {
		unwatch()
		for _, tm := range []*time.Timer{settle, loadWait} {
			if tm != nil {
				tm.Stop()
			}
		}
	}()
	started := false // a start was waited for
	got := func(g grant) (grant, error) {
		if started {
			r.narrate("spawn", fmt.Sprintf("Worker %s on hive %s serves %s now; %s", g.w.WorkerID, g.w.HiveID, r.Model, s.keepAliveNote()), g.w.HiveID, g.w.WorkerID)
		}
		return g, nil
	}
	for {
		select {
		case g := <-t.grant:
			return got(g)
		default:
		}
		ready, loading := s.workers.Pick(r.filter)
		switch {
		case len(ready) > 0:
			if !saidQueued && r.say != nil {
				saidQueued = true
				r.narrate("queue", inQueueNote(&r.Request, s.queue.position(t), len(ready)), "", "")
			}
		case flight != nil || settleC != nil && len(loading) == 0:
			// A start is under way, or it just ended and its worker has
			// not sent a heartbeat yet.
		case len(loading) > 0:
			if !saidLoad {
				saidLoad = true
				r.narrate("wait", fmt.Sprintf("Waiting for worker %s on hive %s to finish loading %s", loading[0].WorkerID, loading[0].HiveID, r.Model), loading[0].HiveID, loading[0].WorkerID)
			}
		case r.place == placeNever || r.place == placeCatalog && !modelref.ValidID(r.Model):
			return grant{}, r.nowhere()
		default:
			ref, err := modelref.Parse(r.Model)
			if err != nil {
				return grant{}, r.nowhere()
			}
			flight = s.spawnFor(want{model: r.Model, ref: ref, hive: r.HiveID})
			spawned, started = flight.done, true
			unwatch = s.spawns.watch(flight, r.say)
		}
		var loadWaitC <-chan time.Time
		switch {
		case len(ready) > 0 && loadWait != nil:
			loadWait.Stop()
			loadWait = nil
		case len(ready) == 0 && loadWait == nil:
			loadWait = time.NewTimer(s.opt.LoadWait)
		}
		if loadWait != nil {
			loadWaitC = loadWait.C
		}
		select {
		case g := <-t.grant:
			return got(g)
		case <-t.nudge:
		case <-spawned:
			unwatch()
			unwatch, spawned = func() {}, nil
			if err := flight.err; err != nil {
				if errors.Is(err, errNowhere) {
					return grant{}, r.nowhere()
				}
				return grant{}, err
			}
			flight = nil
			settle = time.NewTimer(spawnSettle)
			settleC = settle.C
		case <-settleC:
			settleC = nil
			if ready, loading := s.workers.Pick(r.filter); len(ready)+len(loading) == 0 {
				return grant{}, wire.Errorf(wire.CodeNoWorker, "a worker for %s started but sent no heartbeat to the queen within %s; is the queen's URL reachable from its hive?", r.Model, spawnSettle)
			}
		case <-loadWaitC:
			return grant{}, wire.Errorf(wire.CodeNoWorker, "no worker for model %s became ready within %s", r.Model, s.opt.LoadWait)
		case <-deadline:
			return grant{}, errDeadline(&r.Request, fmt.Sprintf("waited in the queen's queue (%d requests ahead)", max(s.queue.position(t), 0)))
		case <-s.closing:
			return grant{}, errShuttingDown()
		case <-ctx.Done():
			return grant{}, context.Cause(ctx)
		}
	}
}

// runOn runs the request on worker w. A worker that refuses it before
// doing any of it (full, or not answering) is errWorkerFull or
// errWorkerDown, so that another can take it. Tokens and the end event go
// to fn, the worker's narration and progress to r.say.
func (s *Server) runOn(ctx context.Context, r *routed, w workers.Worker, fn func(wire.Event) error) (wire.Event, error) {
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
	wc := &workerclient.Client{BaseURL: w.URL, Token: s.hiveToken(w.HiveID), HTTP: s.opt.HTTP}
	jc, err := wc.Submit(ctx, req)
	if err != nil {
		var re *wire.Error
		switch {
		case ctx.Err() != nil:
			return wire.Event{}, context.Cause(ctx)
		case errors.As(err, &re) && (re.Status == http.StatusTooManyRequests || re.Status == http.StatusServiceUnavailable):
			r.narrate("route", fmt.Sprintf("Worker %s turned the request away (%s); back to the queue", w.WorkerID, re.Message), w.HiveID, w.WorkerID)
			return wire.Event{}, errWorkerFull
		case errors.As(err, &re):
			return wire.Event{}, workerError(r, w, re)
		}
		s.workers.MarkGone(w.WorkerID, "it refused the connection: "+err.Error())
		r.narrate("route", fmt.Sprintf("Worker %s does not answer (%v); back to the queue", w.WorkerID, err), w.HiveID, w.WorkerID)
		return wire.Event{}, errWorkerDown
	}
	// The worker's job id lets a person (or a test) follow the generation
	// on the worker itself.
	r.narrate("route", fmt.Sprintf("Running on worker %s (hive %s) as %s", w.WorkerID, w.HiveID, jc.JobID), w.HiveID, w.WorkerID)

	sctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	go s.watchWorker(sctx, stop, w.WorkerID)
	var fnErr error
	end, err := wc.Stream(sctx, jc, func(e wire.Event) error {
		switch e.Type {
		case wire.TypeToken, wire.TypeEnd:
			fnErr = fn(e) // as is: the index, the stop reason and timings are the worker's
			return fnErr
		case wire.TypeNarration, wire.TypeProgress:
			if r.say != nil {
				r.say(e)
			}
		}
		return nil
	})
	var re *wire.Error
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
		return wire.Event{}, workerError(r, w, re)
	}
	why := err.Error()
	if errors.Is(context.Cause(sctx), errWorkerSilent) {
		why = fmt.Sprintf("no heartbeat for %s", s.workers.GoneAfter())
	}
	s.workers.MarkGone(w.WorkerID, "its inference stream broke: "+why)
	return wire.Event{}, wire.Errorf(wire.CodeWorkerGone, "worker %s on hive %s went away mid-stream (%s)", w.WorkerID, w.HiveID, why)
}

// workerError is the worker's verdict on the request (a 400
// context_length_exceeded, a failed generation), saying which worker; its
// own deadline is the request's.
func workerError(r *routed, w workers.Worker, re *wire.Error) error {
	if re.Code == wire.CodeDeadline {
		return errDeadline(&r.Request, fmt.Sprintf("worker %s had no free slot in time: %s", w.WorkerID, re.Message))
	}
	return &wire.Error{Status: re.Status, Code: re.Code, Message: fmt.Sprintf("worker %s: %s", w.WorkerID, re.Message)}
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
