package queen

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/rbee/rbee/internal/config"
	"github.com/rbee/rbee/internal/httpapi"
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
}

// spawnGroup holds the starts in progress, one per model at most.
type spawnGroup struct {
	mu      sync.Mutex
	flights map[string]*spawnFlight
}

// spawnFor starts a worker for model on a hive that has it, or returns the
// start already in progress. The start runs as a queen job, so that it
// outlives the request that caused it (others wait for it too), stops when
// the queen does, and can be followed or cancelled like any job.
func (s *Server) spawnFor(model string) *spawnFlight {
	g := &s.spawns
	g.mu.Lock()
	defer g.mu.Unlock()
	if f := g.flights[model]; f != nil {
		f.waiters++
		return f
	}
	f := &spawnFlight{done: make(chan struct{}), waiters: 1}
	finish := func(err error) {
		g.mu.Lock()
		delete(g.flights, model)
		g.mu.Unlock()
		f.err = coded(err, model)
		close(f.done)
	}
	op := wire.Operation{Operation: wire.OpWorkerSpawn, Model: model}
	j, err := s.jobs.Create(op, func(j *jobs.Job) (err error) {
		// Set first, so that waiters are released even if the start
		// panics (the registry recovers it).
		err = errors.New("the worker start stopped unexpectedly; see the queen's log")
		defer func() { finish(err) }()
		ctx, cancel := context.WithTimeout(j.Context(), s.opt.LoadWait)
		defer cancel()
		err = s.spawnOnSomeHive(ctx, j, model)
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
	g.flights[model] = f
	s.log.Info("starting a worker for an API request", "model", model, "job_id", f.job)
	return f
}

// coded gives an error of a start a code, so that the requests waiting for
// it learn that the service is unavailable (shutting down, the hive list
// unreadable) rather than of an internal error.
func coded(err error, model string) error {
	var (
		je jobs.Error
		jp *jobs.Error
		re *jobs.RemoteError
		he *httpapi.Error
	)
	if err == nil || errors.As(err, &je) || errors.As(err, &jp) || errors.As(err, &re) || errors.As(err, &he) {
		return err
	}
	return jobs.Errorf(wire.CodeUnavailable, "starting a worker for %s: %v", model, err)
}

// placement is a live hive whose catalog has the model.
type placement struct {
	hive    config.Hive
	model   wire.ModelInfo
	ramFree uint64 // 0: unknown
}

// spawnOnSomeHive starts a worker for model on the live hive that has it
// and the most free memory, falling back to the next when a start fails.
func (s *Server) spawnOnSomeHive(ctx context.Context, j *jobs.Job, model string) error {
	places, err := s.placements(ctx, model)
	if err != nil {
		return err
	}
	if len(places) == 0 {
		return jobs.Errorf(wire.CodeUnknownModel, "no live hive has model %q in its catalog (add it with: rbee model download MODEL --hive ALIAS)", model)
	}
	var fits []placement
	var short []string
	for _, p := range places {
		// A hive that does not say how much memory it has is tried.
		if p.ramFree == 0 || p.ramFree >= needs(p.model) {
			fits = append(fits, p)
		} else {
			short = append(short, fmt.Sprintf("%s has %d MiB free", p.hive.Alias, p.ramFree>>20))
		}
	}
	if len(fits) == 0 {
		return jobs.Errorf(wire.CodeUnavailable, "no hive has room for model %s (about %d MiB): %s", model, needs(places[0].model)>>20, strings.Join(short, "; "))
	}
	var errs []error
	for _, p := range fits {
		j.Narrate("spawn", fmt.Sprintf("Starting a worker for %s on hive %s", model, p.hive.Alias))
		op := wire.Operation{Operation: wire.OpWorkerSpawn, Model: model}
		ev, err := s.runOnHive(ctx, p.hive, op, func(e wire.Event) error {
			if !e.Terminal() {
				j.Emit(e.Type, tagHive(e, p.hive.Alias))
			}
			return nil
		})
		if err == nil {
			j.Emit(wire.TypeResult, ev)
			return nil
		}
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		s.log.Warn("starting a worker failed", "model", model, "hive", p.hive.Alias, "err", err)
		errs = append(errs, err)
	}
	if len(errs) == 1 {
		return errs[0]
	}
	return jobs.Errorf(wire.CodeWorkerFailed, "no hive could start a worker for %s: %v", model, errors.Join(errs...))
}

// needs is the memory a worker of m needs: the catalog's estimate, else
// the file's size, which is loaded whole, so the least it can be.
func needs(m wire.ModelInfo) uint64 {
	if m.MemoryBytes > 0 {
		return m.MemoryBytes
	}
	return uint64(max(m.SizeBytes, 0))
}

// placements lists the live hives whose catalog has model, most free
// memory first.
func (s *Server) placements(ctx context.Context, model string) ([]placement, error) {
	hives, err := s.opt.Hives()
	if err != nil {
		return nil, fmt.Errorf("reading the hive list: %w", err)
	}
	sts := s.probeAll(ctx, hives)
	out := make([]*placement, len(hives))
	var wg sync.WaitGroup
	for i, h := range hives {
		if sts[i].State != wire.HiveOnline {
			continue
		}
		wg.Go(func() {
			ms, err := s.hiveModels(ctx, h)
			if err != nil {
				return
			}
			k := slices.IndexFunc(ms, func(m wire.HiveModel) bool { return m.ID == model })
			if k < 0 {
				return
			}
			p := &placement{hive: h, model: ms[k].ModelInfo}
			if caps, err := s.capabilities(ctx, h); err == nil {
				p.ramFree = caps.RAMFreeBytes
			}
			out[i] = p
		})
	}
	wg.Wait()
	var places []placement
	for _, p := range out {
		if p != nil {
			places = append(places, *p)
		}
	}
	slices.SortStableFunc(places, func(a, b placement) int {
		return cmp.Or(cmp.Compare(b.ramFree, a.ramFree), cmp.Compare(a.hive.Alias, b.hive.Alias))
	})
	return places, nil
}
