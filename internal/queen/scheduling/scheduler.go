// Package scheduling is how an inference request reaches a worker: it
// waits in its model's queue until the Policy gives it a free slot (or a
// worker is started for it), runs there with its tokens relayed, and goes
// back in line when the worker turns it away. The keep-alive stops
// workers that had nothing to do for a while. It knows hives only through
// the functions of Options.
package scheduling

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/rbee/rbee/internal/jobs"
	"github.com/rbee/rbee/internal/queen/workers"
	"github.com/rbee/rbee/internal/wire"
)

// ErrNowhere is what Options.Start returns (wrapped or not) when no hive
// has the model or can get it: the request then fails in its own terms.
var ErrNowhere = errors.New("no live hive has the model")

// Options configures a Scheduler. Every field must be set but Logger.
type Options struct {
	Workers *workers.Registry
	// Jobs runs the worker starts, so that a start outlives the request
	// that caused it and can be followed like any job.
	Jobs   *jobs.Registry
	Policy Policy
	// MaxQueue is how many requests for one model may wait.
	MaxQueue int
	// LoadWait bounds how long a request waits while no worker of its
	// model takes requests (one loads, or is being started).
	LoadWait time.Duration
	// KeepAlive is how long a worker may idle before Stop; negative: never.
	KeepAlive time.Duration
	// Actor names the queen in its narration.
	Actor string
	// NoCacheRouting turns cache-aware routing off: every request goes
	// where the Policy sends it, wherever its prompt's prefix was run
	// before (see affinity.go). Zero: on.
	NoCacheRouting bool
	// Start starts a worker for model (only on hive, when set), narrating
	// into j and emit; ErrNowhere when no hive can.
	Start func(ctx context.Context, j *jobs.Job, model, hive string, emit func(wire.Event)) error
	// Stop stops a worker through its hive (keep_alive).
	Stop func(ctx context.Context, workerID, hiveID string) error
	// WorkerToken is the bearer worker workerID of hive hiveID requires:
	// its credential, derived from its hive's token (httpapi.WorkerToken).
	WorkerToken func(hiveID, workerID string) string
	HTTP        *http.Client
	Logger      *slog.Logger
}

// Scheduler routes inference requests to workers.
//
// Lock order, where locks nest: idle.mu, then queue.mu, then the
// affinity's, then the worker registry's (stopIdle asks the queue while it
// holds idle.mu; the queue asks the registry, its Policy and the affinity
// while it holds queue.mu; the affinity asks the registry). spawns.mu
// is taken alone, or before the job registry's (spawnFor creates the job
// of a start while it holds it).
type Scheduler struct {
	opt     Options
	log     *slog.Logger
	workers *workers.Registry
	queue   *queue
	spawns  spawnGroup // workers started for requests
	idle    idleWatch  // workers without work, for keep_alive
	closing chan struct{}
	loops   sync.WaitGroup // the queue's, keep_alive's and its stops
}

// New starts a Scheduler's loops; Close stops them.
func New(opt Options) *Scheduler {
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	s := &Scheduler{
		opt:     opt,
		log:     opt.Logger,
		workers: opt.Workers,
		queue:   newQueue(opt.Workers, opt.Policy, opt.MaxQueue),
		closing: make(chan struct{}),
	}
	if !opt.NoCacheRouting {
		s.queue.affinity = newAffinity(affinityKeys)
	}
	s.loops.Go(func() { s.queue.watch(s.closing) })
	if opt.KeepAlive > 0 {
		s.loops.Go(s.keepAlive)
	}
	return s
}

// Close refuses new requests, wakes the waiting ones (which fail as the
// queen shuts down) and waits for its loops. Call it once.
func (s *Scheduler) Close() {
	close(s.closing)
	s.queue.close()
	s.loops.Wait()
}

// QueueStatus lists the models with requests waiting.
func (s *Scheduler) QueueStatus() []wire.QueueStatus { return s.queue.status() }

// AffinityStats counts the requests given a worker so far (routed; one
// that a worker turned away and that went back to the queue counts again)
// and those of them sent where their prompt's prefix was run before
// (hits), for the benchmarks and rbee status.
func (s *Scheduler) AffinityStats() (hits, routed int64) {
	return s.queue.hits.Load(), s.queue.routed.Load()
}

// KeepAliveNote tells a person how long a worker started for them stays.
func (s *Scheduler) KeepAliveNote() string { return KeepAliveNote(s.opt.KeepAlive) }

// KeepAliveNote is the note for a keep_alive of d (negative: never).
func KeepAliveNote(d time.Duration) string {
	if d < 0 {
		return "it stays running for the next request until stopped (keep_alive 0)"
	}
	return fmt.Sprintf("it stays running for the next request, and stops after %s without one (keep_alive)", d)
}
