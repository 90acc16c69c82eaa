// Package jobs is both ends of the job protocol (contracts.md, "The job
// protocol"): a Registry that runs operations as jobs and serves their event
// streams over HTTP, and a Client that submits operations and reads those
// streams. The queen uses both: the server for the keeper, the client for
// the hives. The Registry is also the worker's store of inference jobs (its
// ServeStream is the one SSE stream loop of rbee), and the Client the
// transport of the worker's client (internal/workerclient).
package jobs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"sync"
	"time"

	"github.com/rbee/rbee/internal/wire"
)

// Options configures a Registry. Zero fields take the documented defaults.
type Options struct {
	Actor         string        // narration actor, e.g. "queen-rbee"
	Retain        time.Duration // how long a finished job stays readable; 5 min
	MaxJobs       int           // jobs kept, running or finished; 10000
	BufferEvents  int           // events kept per job; 4096
	BufferBytes   int           // event bytes kept per job (the newest event is always kept); 8 MiB
	PingInterval  time.Duration // keep-alive comment on a quiet stream; HeartbeatInterval (2 s)
	WriteTimeout  time.Duration // bound on each stream write, so a stalled reader is dropped; WriteTimeout (10 s)
	AttachTimeout time.Duration // how long a CancelWhenUnwatched job waits for a first subscriber; 30 s
	CloseTimeout  time.Duration // how long Close waits for run functions to return; 10 s
	Logger        *slog.Logger  // slog.Default()
	IDPrefix      string        // job ids are this and 32 hex digits; "job-"
}

func (o *Options) setDefaults() {
	if o.Actor == "" {
		o.Actor = "rbee"
	}
	if o.Retain <= 0 {
		o.Retain = 5 * time.Minute
	}
	if o.MaxJobs <= 0 {
		o.MaxJobs = 10000
	}
	if o.BufferEvents <= 0 {
		o.BufferEvents = 4096
	}
	if o.BufferBytes <= 0 {
		o.BufferBytes = 8 << 20
	}
	if o.PingInterval <= 0 {
		o.PingInterval = HeartbeatInterval
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = WriteTimeout
	}
	if o.AttachTimeout <= 0 {
		o.AttachTimeout = 30 * time.Second
	}
	if o.CloseTimeout <= 0 {
		o.CloseTimeout = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.IDPrefix == "" {
		o.IDPrefix = "job-"
	}
}

// CreateOptions are per-job options of Create.
type CreateOptions struct {
	// CancelWhenUnwatched cancels the job when its last subscriber goes
	// away, or when nobody subscribes within Options.AttachTimeout.
	CancelWhenUnwatched bool
	// QuietCancel leaves the end of a cancelled stream to the run function:
	// cancelling (DELETE, shutdown, nobody watching) only cancels the job's
	// context, instead of ending the stream at once with an error event of
	// code cancelled. The worker uses it, whose cancelled generation ends
	// with an end event (stop_reason cancelled) within one token.
	QuietCancel bool
}

// Registry runs jobs and keeps their events for subscribers.
type Registry struct {
	opt Options

	mu       sync.Mutex
	jobs     map[string]*Job
	finished []finishedJob // in the order they finished, so oldest first
	closed   bool

	wg          sync.WaitGroup // run functions
	stop        chan struct{}
	janitorDone chan struct{}
	closeOnce   sync.Once
	closeErr    error
}

type finishedJob struct {
	job *Job
	at  time.Time
}

// NewRegistry returns a Registry and starts its janitor; Close stops it.
func NewRegistry(opt Options) *Registry {
	opt.setDefaults()
	r := &Registry{
		opt:         opt,
		jobs:        make(map[string]*Job),
		stop:        make(chan struct{}),
		janitorDone: make(chan struct{}),
	}
	go r.janitor()
	return r
}

// Create registers a job for op and starts run in its own goroutine. It fails
// with a 503 *wire.Error when the registry is closed or full of running
// jobs.
func (r *Registry) Create(op wire.Operation, run RunFunc, opts ...CreateOptions) (*Job, error) {
	var co CreateOptions
	if len(opts) > 0 {
		co = opts[0]
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	j := &Job{
		op:       op,
		reg:      r,
		created:  time.Now(),
		ctx:      ctx,
		cancel:   cancel,
		finished: make(chan struct{}),
		log:      newEventLog(r.opt.BufferEvents, r.opt.BufferBytes),
		notify:   make(chan struct{}),
		quiet:    co.QuietCancel,
	}

	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		cancel(ErrShutdown)
		return nil, wire.Errorf(wire.CodeUnavailable, "the daemon is shutting down")
	}
	for len(r.jobs) >= r.opt.MaxJobs && len(r.finished) > 0 {
		r.forgetOldestLocked()
	}
	if len(r.jobs) >= r.opt.MaxJobs {
		r.mu.Unlock()
		cancel(context.Canceled)
		// 503, not queue_full's 429: the daemon as a whole is full.
		e := wire.Errorf(wire.CodeQueueFull, "too many jobs running (%d); try again later", r.opt.MaxJobs)
		e.Status, e.RetryAfter = http.StatusServiceUnavailable, 1
		return nil, e
	}
	for j.id == "" || r.jobs[j.id] != nil {
		j.id = newJobID(r.opt.IDPrefix)
	}
	r.jobs[j.id] = j
	r.wg.Add(1) // under mu, so Close's Wait cannot miss it
	r.mu.Unlock()

	if co.CancelWhenUnwatched {
		j.CancelWhenUnwatched()
	}
	go r.run(j, run)
	return j, nil
}

func (r *Registry) run(j *Job, run RunFunc) {
	defer r.wg.Done()
	var err error
	returned := false
	// Deferred, so that a panic or runtime.Goexit in run still ends the
	// stream properly instead of leaving subscribers waiting forever.
	defer func() {
		if !returned {
			if p := recover(); p != nil {
				r.opt.Logger.Error("job panicked", "job_id", j.id, "operation", j.op.Operation,
					"panic", p, "stack", string(debug.Stack()))
				err = wire.Errorf(wire.CodeInternal, "job panicked: %v", p)
			} else {
				err = wire.Errorf(wire.CodeInternal, "job stopped without returning")
			}
		}
		j.finish(err)
		if err != nil {
			r.opt.Logger.Debug("job failed", "job_id", j.id, "operation", j.op.Operation, "err", err)
		}
		r.mu.Lock()
		r.finished = append(r.finished, finishedJob{job: j, at: time.Now()})
		r.mu.Unlock()
	}()
	err = run(j)
	returned = true
}

// Get returns the job with the given id, if it is still kept.
func (r *Registry) Get(id string) (*Job, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	j, ok := r.jobs[id]
	return j, ok
}

// Len returns the number of jobs kept, running or finished.
func (r *Registry) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.jobs)
}

// Cancel cancels the job with the given id; its stream ends with a cancelled
// error event unless it had already ended. It reports whether the job exists.
func (r *Registry) Cancel(id string) bool {
	j, ok := r.Get(id)
	if ok {
		j.cancelWith(ErrCancelled)
	}
	return ok
}

// Close cancels every job, stops the janitor and waits up to
// Options.CloseTimeout for the run functions to return. Jobs created after
// Close fail. Streams of finished jobs can still be read.
func (r *Registry) Close() error {
	r.closeOnce.Do(func() {
		r.mu.Lock()
		r.closed = true
		all := make([]*Job, 0, len(r.jobs))
		for _, j := range r.jobs {
			all = append(all, j)
		}
		r.mu.Unlock()

		close(r.stop)
		for _, j := range all {
			j.cancelWith(ErrShutdown)
		}
		done := make(chan struct{})
		go func() {
			r.wg.Wait()
			close(done)
		}()
		t := time.NewTimer(r.opt.CloseTimeout)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
			r.closeErr = fmt.Errorf("jobs: some jobs did not stop within %s of being cancelled", r.opt.CloseTimeout)
		}
		<-r.janitorDone
	})
	return r.closeErr
}

func (r *Registry) janitor() {
	defer close(r.janitorDone)
	t := time.NewTicker(min(max(r.opt.Retain/4, 5*time.Millisecond), 30*time.Second))
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case now := <-t.C:
			r.expire(now)
		}
	}
}

func (r *Registry) expire(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for len(r.finished) > 0 && now.Sub(r.finished[0].at) >= r.opt.Retain {
		r.forgetOldestLocked()
	}
}

func (r *Registry) forgetOldestLocked() {
	j := r.finished[0].job
	r.finished[0] = finishedJob{}
	r.finished = r.finished[1:]
	delete(r.jobs, j.id)
}

func newJobID(prefix string) string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails since Go 1.24
	return prefix + hex.EncodeToString(b[:])
}
