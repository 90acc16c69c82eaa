package queen

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/rbee/rbee/internal/jobs"
	"github.com/rbee/rbee/internal/wire"
)

// spawnFlight is one start of a worker for a model, which every request for
// that model waits on.
type spawnFlight struct {
	done    chan struct{} // closed when the start ended; then err is set
	err     error
	job     string // the queen job that runs it, for the log
	waiters int    // requests that asked for it; guarded by spawnGroup.mu
	// watchers get the start's narration and progress (a download, the
	// load): the requests of the job protocol, whose clients read them.
	watchers map[int]func(wire.Event) // guarded by spawnGroup.mu
	nextID   int
}

// spawnGroup holds the starts in progress, one per model (and hive, for
// requests restricted to one) at most.
type spawnGroup struct {
	mu      sync.Mutex
	flights map[string]*spawnFlight
}

// watch has fn called with the start's events until stop is called.
func (g *spawnGroup) watch(f *spawnFlight, fn func(wire.Event)) (stop func()) {
	if fn == nil {
		return func() {}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if f.watchers == nil {
		f.watchers = make(map[int]func(wire.Event))
	}
	id := f.nextID
	f.nextID++
	f.watchers[id] = fn
	return func() {
		g.mu.Lock()
		delete(f.watchers, id)
		g.mu.Unlock()
	}
}

func (g *spawnGroup) tell(f *spawnFlight, e wire.Event) {
	g.mu.Lock()
	fns := make([]func(wire.Event), 0, len(f.watchers))
	for _, fn := range f.watchers {
		fns = append(fns, fn)
	}
	g.mu.Unlock()
	for _, fn := range fns {
		fn(e)
	}
}

func flightKey(w want) string {
	if w.hive == "" {
		return w.ref.ID
	}
	return w.ref.ID + "@" + w.hive
}

// spawnFor starts a worker for w on the best placement, or returns the
// start already in progress. The start runs as a queen job, so that it
// outlives the request that caused it (others wait for it too), stops when
// the queen does, and can be followed or cancelled like any job.
func (s *Server) spawnFor(w want) *spawnFlight {
	g := &s.spawns
	key := flightKey(w)
	g.mu.Lock()
	defer g.mu.Unlock()
	if f := g.flights[key]; f != nil {
		f.waiters++
		return f
	}
	f := &spawnFlight{done: make(chan struct{}), waiters: 1}
	finish := func(err error) {
		g.mu.Lock()
		delete(g.flights, key)
		g.mu.Unlock()
		f.err = coded(err, w.model)
		close(f.done)
	}
	op := wire.Operation{Operation: wire.OpWorkerSpawn, Model: w.model, HiveID: w.hive}
	j, err := s.jobs.Create(op, func(j *jobs.Job) (err error) {
		// Set first, so that waiters are released even if the start
		// panics (the registry recovers it).
		err = errors.New("the worker start stopped unexpectedly; see the queen's log")
		defer func() { finish(err) }()
		ctx, cancel := context.WithTimeout(j.Context(), s.opt.LoadWait)
		defer cancel()
		emit := func(e wire.Event) {
			j.Emit(e)
			g.tell(f, e)
		}
		err = s.spawnSomewhere(ctx, j, w, emit)
		return err
	})
	if err != nil {
		f.err = err
		close(f.done)
		return f
	}
	f.job = j.ID()
	if g.flights == nil {
		g.flights = make(map[string]*spawnFlight)
	}
	g.flights[key] = f
	s.log.Info("starting a worker for a request", "model", w.model, "hive", w.hive, "job_id", f.job)
	return f
}

// coded gives an error of a start a code, so that the requests waiting for
// it learn that the service is unavailable (shutting down, the hive list
// unreadable) rather than of an internal error.
func coded(err error, model string) error {
	if _, typed := wire.AsError(err); err == nil || typed || errors.Is(err, errNowhere) {
		return err
	}
	return wire.Errorf(wire.CodeUnavailable, "starting a worker for %s: %v", model, err)
}

// spawnSomewhere starts a worker for w on the first placement that takes
// it (see placements), trying the next when a start fails.
func (s *Server) spawnSomewhere(ctx context.Context, j *jobs.Job, w want, emit func(wire.Event)) error {
	places, err := s.placements(ctx, w)
	if err != nil {
		return err
	}
	say := func(action, human string, hive string) {
		n := j.Narration(action, human)
		n.HiveID = hive
		emit(wire.Event{Type: wire.TypeNarration, Actor: n.Actor, Action: n.Action, Human: n.Human, JobID: n.JobID, HiveID: n.HiveID})
	}
	var errs []error
	for i, p := range places {
		if i == 0 {
			say("spawn", fmt.Sprintf("No worker serves %s yet; starting one on %s", w.model, p), p.hive.Alias)
		} else {
			say("spawn", fmt.Sprintf("Trying %s for %s instead", p, w.model), p.hive.Alias)
		}
		op := wire.Operation{Operation: wire.OpWorkerSpawn, Model: p.spawn, Device: p.device}
		ev, err := s.runOnHive(ctx, p.hive, op, func(e wire.Event) error {
			if !e.Terminal() {
				emit(tagHive(e, p.hive.Alias))
			}
			return nil
		})
		if err == nil {
			j.Emit(ev)
			var wi wire.WorkerInfo
			_ = json.Unmarshal(ev.Data, &wi)
			// Only in this job: each request says so itself when it gets
			// the worker, which may be before this answer comes.
			j.Narrate("spawn", fmt.Sprintf("Worker %s started on %s for %s; %s", wi.WorkerID, p, w.model, s.keepAliveNote()))
			return nil
		}
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		s.log.Warn("starting a worker failed", "model", w.model, "hive", p.hive.Alias, "device", p.device, "err", err)
		say("spawn", fmt.Sprintf("Starting a worker on %s failed: %v", p, err), p.hive.Alias)
		errs = append(errs, err)
	}
	if len(errs) == 1 {
		return errs[0]
	}
	return wire.Errorf(wire.CodeWorkerFailed, "no hive could start a worker for %s: %v", w.model, errors.Join(errs...))
}

// keepAliveNote tells a person how long a worker started for them stays.
func (s *Server) keepAliveNote() string {
	if s.opt.KeepAlive < 0 {
		return "it stays running for the next request until stopped (keep_alive 0)"
	}
	return fmt.Sprintf("it stays running for the next request, and stops after %s without one (keep_alive)", s.opt.KeepAlive)
}
