package scheduling

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rbee/rbee/internal/queen/workers"
	"github.com/rbee/rbee/internal/wire"
)

// spawnSettle bounds the wait, after a start succeeded, for the new
// worker's first heartbeat: it sends one the moment it is ready, so only a
// worker that cannot reach the queen takes longer.
const spawnSettle = 15 * time.Second

// waiter is one request waiting in the queue for a worker: what it has
// seen and started so far. await drives it; each of its steps is one
// thing that can happen meanwhile.
type waiter struct {
	s *Scheduler
	t *ticket
	r *Routed

	flight   *spawnFlight // a start under way for this request
	unwatch  func()       // stops relaying the start's events to r.Say
	started  bool         // a start was waited for: say so when served
	settle   *time.Timer  // after a start: time for its worker's first heartbeat
	settling bool         // settle runs
	loadWait *time.Timer  // runs while no worker of the model takes requests
	deadline *time.Timer  // the request's timeout_ms; nil: none

	saidQueued, saidLoading bool
}

// await waits until the queue gives t a worker. Meanwhile it watches why
// nothing comes: while no worker of the model takes requests, it waits for
// one that loads, else starts one when r may, else fails with r.Nowhere.
func (s *Scheduler) await(ctx context.Context, t *ticket, r *Routed) (grant, error) {
	w := &waiter{s: s, t: t, r: r, unwatch: func() {}}
	defer w.stop()
	if !r.Deadline.IsZero() {
		w.deadline = time.NewTimer(time.Until(r.Deadline))
	}
	// A worker whose heartbeats stop goes gone by the clock alone, with no
	// change in the registry to wake anyone: a request that waits for it
	// (loading, or its slots) looks again every watchInterval, so that it
	// starts another worker instead of waiting for the next request to.
	recheck := time.NewTicker(watchInterval)
	defer recheck.Stop()
	for {
		select {
		case g := <-t.grant:
			return w.served(g), nil
		default:
		}
		if err := w.look(); err != nil {
			return grant{}, err
		}
		select {
		case g := <-t.grant:
			return w.served(g), nil
		case <-t.nudge: // no worker takes requests for it: look again
		case <-recheck.C:
		case <-w.spawned():
			if err := w.startEnded(); err != nil {
				return grant{}, err
			}
		case <-timerC(w.settle, w.settling):
			if err := w.settled(); err != nil {
				return grant{}, err
			}
		case <-timerC(w.loadWait, true):
			return grant{}, wire.Errorf(wire.CodeNoWorker, "no worker for model %s became ready within %s", r.Model, s.opt.LoadWait)
		case <-timerC(w.deadline, true):
			return grant{}, errDeadline(&r.Request, fmt.Sprintf("waited in the queen's queue (%d requests ahead)", max(s.queue.position(t), 0)))
		case <-s.closing:
			return grant{}, errShuttingDown()
		case <-ctx.Done():
			return grant{}, context.Cause(ctx)
		}
	}
}

// timerC is t's channel while t exists and is on; nil (never ready) else.
func timerC(t *time.Timer, on bool) <-chan time.Time {
	if t == nil || !on {
		return nil
	}
	return t.C
}

// look decides, from the workers the registry has now, what the request
// waits for: a slot of a ready worker, a worker that loads, or a start,
// which it begins when none is under way and r may. It fails with
// r.Nowhere when nothing will ever come.
func (w *waiter) look() error {
	ready, loading := w.s.workers.Pick(w.r.Filter)
	switch {
	case len(ready) > 0:
		w.sayQueued(len(ready))
	case w.flight != nil || w.settling && len(loading) == 0:
		// A start is under way, or it just ended and its worker has not
		// sent a heartbeat yet.
	case len(loading) > 0:
		w.sayLoading(loading[0])
	default:
		if err := w.startWorker(); err != nil {
			return err
		}
	}
	w.timeLoad(len(ready) > 0)
	return nil
}

// timeLoad runs LoadWait while no worker of the model takes requests, and
// stops it when one does.
func (w *waiter) timeLoad(anyReady bool) {
	switch {
	case anyReady && w.loadWait != nil:
		w.loadWait.Stop()
		w.loadWait = nil
	case !anyReady && w.loadWait == nil:
		w.loadWait = time.NewTimer(w.s.opt.LoadWait)
	}
}

func (w *waiter) sayQueued(ready int) {
	if w.saidQueued || w.r.Say == nil {
		return
	}
	w.saidQueued = true
	w.s.narrate(w.r, "queue", inQueueNote(&w.r.Request, w.s.queue.position(w.t), ready), "", "")
}

func (w *waiter) sayLoading(l workers.Worker) {
	if w.saidLoading {
		return
	}
	w.saidLoading = true
	w.s.narrate(w.r, "wait", fmt.Sprintf("Waiting for worker %s on hive %s to finish loading %s", l.WorkerID, l.HiveID, w.r.Model), l.HiveID, l.WorkerID)
}

// startWorker joins (or begins) the start of a worker for the model, when
// the request may start one.
func (w *waiter) startWorker() error {
	r := w.r
	if r.Place == PlaceNever || r.Place == PlaceCatalog && wire.CheckModelID(r.Model) != nil {
		return r.Nowhere()
	}
	f, err := w.s.spawnFor(r.Model, r.HiveID)
	if err != nil {
		return r.Nowhere()
	}
	w.flight, w.started = f, true
	w.unwatch = w.s.spawns.watch(f, r.Say)
	return nil
}

// spawned is closed when the start this request waits for ended.
func (w *waiter) spawned() <-chan struct{} {
	if w.flight == nil {
		return nil
	}
	return w.flight.done
}

// startEnded takes the outcome of the start: on success the new worker
// gets spawnSettle to send its first heartbeat.
func (w *waiter) startEnded() error {
	w.unwatch()
	w.unwatch = func() {}
	f := w.flight
	w.flight = nil
	if err := f.err; err != nil {
		if errors.Is(err, ErrNowhere) {
			return w.r.Nowhere()
		}
		return err
	}
	if w.settle == nil {
		w.settle = time.NewTimer(spawnSettle)
	} else {
		w.settle.Reset(spawnSettle)
	}
	w.settling = true
	return nil
}

// settled fails the request when the started worker never reported.
func (w *waiter) settled() error {
	w.settling = false
	if ready, loading := w.s.workers.Pick(w.r.Filter); len(ready)+len(loading) == 0 {
		return wire.Errorf(wire.CodeNoWorker, "a worker for %s started but sent no heartbeat to the queen within %s; is the queen's URL reachable from its hive?", w.r.Model, spawnSettle)
	}
	return nil
}

// served is the grant, after telling a person who waited for a start that
// it serves them now.
func (w *waiter) served(g grant) grant {
	if w.started {
		w.s.narrate(w.r, "spawn", fmt.Sprintf("Worker %s on hive %s serves %s now; %s", g.w.WorkerID, g.w.HiveID, w.r.Model, w.s.KeepAliveNote()), g.w.HiveID, g.w.WorkerID)
	}
	return g
}

func (w *waiter) stop() {
	w.unwatch()
	for _, t := range []*time.Timer{w.settle, w.loadWait, w.deadline} {
		if t != nil {
			t.Stop()
		}
	}
}
