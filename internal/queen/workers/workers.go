// Package workers is the queen's worker registry. It is fed by heartbeats
// alone: workers report straight to the queen, and the queen is the single
// source of truth for which worker is alive, what it serves and how busy it
// is. A worker whose heartbeats stop is gone; so is one that says it is
// shutting down, and one whose inference stream broke.
package workers

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/rbee/rbee/internal/wire"
)

// Why a worker is gone, as Worker.GoneReason says.
const (
	GoneTimeout  = "heartbeats stopped"
	GoneShutdown = "the worker said it is shutting down"
)

// ErrExists is returned for a heartbeat that claims the id of another
// live worker: one of another hive, or at another URL or pid.
var ErrExists = errors.New("another live worker has this id")

// ErrFull is returned for a heartbeat of a new worker when the registry holds
// Options.Max workers already.
var ErrFull = errors.New("the worker registry is full")

// Options configures a Registry. Zero fields take the documented defaults.
type Options struct {
	// GoneAfter is how long a worker may stay silent before it is gone:
	// three heartbeat intervals of 2 s plus grace; 8 s.
	GoneAfter time.Duration
	// Forget is how long a gone worker stays listed (rbee status shows it
	// and why it went) before it is dropped; 1 min. Requests still counted
	// on it do not keep it: they fail on their own.
	Forget time.Duration
	// Max bounds the workers kept, gone ones included; 10000.
	Max int
	// Now is the clock; time.Now. Tests pass a fake one.
	Now func() time.Time
}

// Worker is what the registry knows of one worker. State is computed when it
// is read: a worker silent for longer than GoneAfter reads as gone.
type Worker struct {
	wire.Heartbeat
	LastSeen   time.Time // when its last heartbeat arrived
	GoneSince  time.Time // zero unless State is gone
	GoneReason string    // why it is gone
	InFlight   int       // requests the queen is running on it now
}

// Load estimates how busy a worker is. Heartbeats lag by up to an interval,
// so the queen's own count of requests it sent there is taken when higher.
func (w Worker) Load() int { return max(w.Active+w.QueueLen, w.InFlight) }

// Free is how many more requests the worker can start now: its slots (at
// least one; a worker that reports none decodes one at a time) less its
// Load.
func (w Worker) Free() int { return max(w.Slots, 1) - w.Load() }

// Available reports whether the worker takes inference requests: a busy
// worker still queues them.
func (w Worker) Available() bool { return w.State == wire.StateReady || w.State == wire.StateBusy }

// Registry holds the workers. It is safe for concurrent use.
type Registry struct {
	opt Options

	mu        sync.Mutex
	workers   map[string]*entry
	changed   chan struct{} // closed and replaced on every change
	lastPrune time.Time
}

type entry struct {
	hb        wire.Heartbeat
	lastSeen  time.Time
	goneSince time.Time // set when marked gone explicitly
	reason    string
	inFlight  int
}

// New returns an empty Registry.
func New(opt Options) *Registry {
	if opt.GoneAfter <= 0 {
		opt.GoneAfter = 8 * time.Second
	}
	if opt.Forget <= 0 {
		opt.Forget = time.Minute
	}
	if opt.Max <= 0 {
		opt.Max = 10000
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	return &Registry{opt: opt, workers: make(map[string]*entry), changed: make(chan struct{})}
}

// GoneAfter is the silence after which a worker is gone.
func (r *Registry) GoneAfter() time.Duration { return r.opt.GoneAfter }

// Heartbeat records a heartbeat; it must have passed Validate. Any heartbeat
// revives a worker that was marked gone before it arrived, since it proves
// the worker is alive now; one whose state is gone marks it gone at once.
// A heartbeat that claims the id of another worker that is not gone
// (another hive, URL or pid) is refused with ErrExists: the id of a gone
// worker may be taken again.
func (r *Registry) Heartbeat(hb wire.Heartbeat) error {
	now := r.opt.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.workers[hb.WorkerID]
	if e != nil && r.viewLocked(e, now).GoneSince.IsZero() && !sameWorker(e.hb, hb) {
		return fmt.Errorf("%w: worker %s is live on hive %s at %s (pid %d), heard from %s ago; give this one another --worker-id",
			ErrExists, hb.WorkerID, e.hb.HiveID, e.hb.URL, e.hb.PID, now.Sub(e.lastSeen).Round(time.Millisecond))
	}
	if e == nil {
		if len(r.workers) >= r.opt.Max {
			r.pruneLocked(now, true)
		}
		if len(r.workers) >= r.opt.Max {
			return ErrFull
		}
		e = &entry{}
		r.workers[hb.WorkerID] = e
	}
	e.hb = hb
	e.lastSeen = now
	e.goneSince, e.reason = time.Time{}, ""
	if hb.State == wire.StateGone {
		e.goneSince, e.reason = now, GoneShutdown
	}
	r.notifyLocked()
	r.pruneLocked(now, false)
	return nil
}

// sameWorker reports whether two heartbeats with one id come from one
// worker process.
func sameWorker(a, b wire.Heartbeat) bool {
	return a.HiveID == b.HiveID && a.URL == b.URL && a.PID == b.PID
}

// MarkGone marks a worker gone now, for a reason the queen saw itself (its
// stream broke, it refused connections). Only a later heartbeat revives it.
func (r *Registry) MarkGone(id, reason string) {
	now := r.opt.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.workers[id]
	if e == nil || !r.viewLocked(e, now).GoneSince.IsZero() {
		return
	}
	e.hb.State = wire.StateGone
	e.goneSince, e.reason = now, reason
	r.notifyLocked()
}

// Get returns one worker.
func (r *Registry) Get(id string) (Worker, bool) {
	now := r.opt.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.workers[id]
	if e == nil {
		return Worker{}, false
	}
	return r.viewLocked(e, now), true
}

// List returns every worker still kept, gone ones included, by hive then id.
func (r *Registry) List() []Worker {
	now := r.opt.Now()
	r.mu.Lock()
	r.pruneLocked(now, false)
	out := make([]Worker, 0, len(r.workers))
	for _, e := range r.workers {
		out = append(out, r.viewLocked(e, now))
	}
	r.mu.Unlock()
	slices.SortFunc(out, func(a, b Worker) int {
		return cmp.Or(cmp.Compare(a.HiveID, b.HiveID), cmp.Compare(a.WorkerID, b.WorkerID))
	})
	return out
}

// Filter selects workers for a request. Empty fields match anything, except
// Models: a worker matches when its model is one of them.
type Filter struct {
	Models   []string
	HiveID   string
	WorkerID string
}

// Matches reports whether w is one of the workers f selects.
func (f Filter) Matches(w Worker) bool { return f.match(w) }

func (f Filter) match(w Worker) bool {
	return slices.Contains(f.Models, w.Model) &&
		(f.HiveID == "" || w.HiveID == f.HiveID) &&
		(f.WorkerID == "" || w.WorkerID == f.WorkerID)
}

// Pick returns the workers that match f and take requests, least busy first
// and, among equals, the most recently heard from; and separately those that
// match but are still loading, which will take requests soon.
func (r *Registry) Pick(f Filter) (ready, loading []Worker) {
	now := r.opt.Now()
	r.mu.Lock()
	// Only the matches are copied: the queue asks on every change, and the
	// registry may hold thousands of workers of other models.
	for _, e := range r.workers {
		if !slices.Contains(f.Models, e.hb.Model) {
			continue
		}
		w := r.viewLocked(e, now)
		if !f.match(w) {
			continue
		}
		switch {
		case w.Available():
			ready = append(ready, w)
		case w.State == wire.StateLoading:
			loading = append(loading, w)
		}
	}
	r.mu.Unlock()
	slices.SortFunc(loading, func(a, b Worker) int { return cmp.Compare(a.WorkerID, b.WorkerID) })
	slices.SortFunc(ready, func(a, b Worker) int {
		return cmp.Or(cmp.Compare(a.Load(), b.Load()), b.LastSeen.Compare(a.LastSeen), cmp.Compare(a.WorkerID, b.WorkerID))
	})
	return ready, loading
}

// Acquire counts a request the queen sends to a worker until release is
// called, so that requests arriving between two heartbeats spread out.
func (r *Registry) Acquire(id string) (release func()) {
	r.mu.Lock()
	e := r.workers[id]
	if e != nil {
		e.inFlight++
	}
	r.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			// The entry counted, not the id's entry now: a dropped worker's
			// id may belong to another one by then.
			r.mu.Lock()
			if e != nil && e.inFlight > 0 {
				e.inFlight--
			}
			r.mu.Unlock()
		})
	}
}

// Changed returns a channel that is closed at the next change: a heartbeat
// or a worker marked gone. Waiters call it again after each wake-up.
func (r *Registry) Changed() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.changed
}

// Len is the number of workers kept.
func (r *Registry) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.workers)
}

func (r *Registry) notifyLocked() {
	close(r.changed)
	r.changed = make(chan struct{})
}

func (r *Registry) viewLocked(e *entry, now time.Time) Worker {
	w := Worker{Heartbeat: e.hb, LastSeen: e.lastSeen, GoneSince: e.goneSince, GoneReason: e.reason, InFlight: e.inFlight}
	if w.GoneSince.IsZero() && now.Sub(e.lastSeen) > r.opt.GoneAfter {
		w.GoneSince, w.GoneReason = e.lastSeen.Add(r.opt.GoneAfter), GoneTimeout
	}
	if !w.GoneSince.IsZero() {
		w.State = wire.StateGone
	}
	return w
}

// pruneLocked drops workers gone for longer than Forget, whatever is still
// counted on them: a request stuck on a vanished worker must not keep it
// in rbee status forever. It walks the whole map, so unless forced it runs
// at most once a second however many heartbeats arrive.
func (r *Registry) pruneLocked(now time.Time, force bool) {
	if !force && now.Sub(r.lastPrune) < time.Second {
		return
	}
	r.lastPrune = now
	for id, e := range r.workers {
		w := r.viewLocked(e, now)
		if !w.GoneSince.IsZero() && now.Sub(w.GoneSince) > r.opt.Forget {
			delete(r.workers, id)
		}
	}
}
