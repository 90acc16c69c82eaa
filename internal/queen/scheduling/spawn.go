package scheduling

import (
	"context"
	"errors"
	"sync"

	"github.com/rbee/rbee/internal/jobs"
	"github.com/rbee/rbee/internal/modelref"
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

// flightKey is what requests share a start by: the model's catalog id,
// and the hive when they are restricted to one.
func flightKey(id, hive string) string {
	if hive == "" {
		return id
	}
	return id + "@" + hive
}

// spawnFor starts a worker for model (on hive, when set) through
// Options.Start, or returns the start already in progress. The start runs
// as a queen job, so that it outlives the request that caused it (others
// wait for it too), stops when the queen does, and can be followed or
// cancelled like any job. A model that is no reference is an error.
func (s *Scheduler) spawnFor(model, hive string) (*spawnFlight, error) {
	ref, err := modelref.Parse(model)
	if err != nil {
		return nil, err
	}
	g := &s.spawns
	key := flightKey(ref.ID, hive)
	g.mu.Lock()
	defer g.mu.Unlock()
	if f := g.flights[key]; f != nil {
		f.waiters++
		return f, nil
	}
	f := &spawnFlight{done: make(chan struct{}), waiters: 1}
	finish := func(err error) {
		g.mu.Lock()
		delete(g.flights, key)
		g.mu.Unlock()
		f.err = coded(err, model)
		close(f.done)
	}
	op := wire.Operation{Operation: wire.OpWorkerSpawn, Model: model, HiveID: hive}
	j, err := s.opt.Jobs.Create(op, func(j *jobs.Job) (err error) {
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
		err = s.opt.Start(ctx, j, model, hive, emit)
		return err
	})
	if err != nil {
		f.err = err
		close(f.done)
		return f, nil
	}
	f.job = j.ID()
	if g.flights == nil {
		g.flights = make(map[string]*spawnFlight)
	}
	g.flights[key] = f
	s.log.Info("starting a worker for a request", "model", model, "hive", hive, "job_id", f.job)
	return f, nil
}

// coded gives an error of a start a code, so that the requests waiting for
// it learn that the service is unavailable (shutting down, the hive list
// unreadable) rather than of an internal error.
func coded(err error, model string) error {
	if _, typed := wire.AsError(err); err == nil || typed || errors.Is(err, ErrNowhere) {
		return err
	}
	return wire.Errorf(wire.CodeUnavailable, "starting a worker for %s: %v", model, err)
}
