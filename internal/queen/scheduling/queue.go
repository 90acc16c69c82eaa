package scheduling

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rbee/rbee/internal/queen/workers"
	"github.com/rbee/rbee/internal/wire"
)

// queueRetryAfter is the Retry-After, in seconds, of a request refused
// because its model's queue is full.
const queueRetryAfter = 1

// queue holds the inference requests that wait for a worker slot: one
// bounded first-in-first-out line per model. Whenever something changes (a
// request arrives or ends, a heartbeat comes in) it hands the requests at
// the front to workers with a free slot, as the Policy picks them. Requests
// of one model with different constraints (a hive, a worker) wait in the
// same line; one that cannot start does not hold back those behind it that
// can, but never one with the same constraints, so each kind is served in
// order.
type queue struct {
	reg    *workers.Registry
	policy Policy
	limit  int // requests per model

	mu     sync.Mutex
	lines  map[string][]*ticket // by model
	seq    uint64
	closed bool
	// refused holds the workers that turned a request away although the
	// queen counted a free slot (others use them too, or heartbeats
	// lagged), with the heartbeat they were judged by: they get no more
	// until a newer one.
	refused map[string]time.Time
	// draining holds the workers being stopped for idleness: they get
	// nothing more.
	draining map[string]bool
	// affinity sends a request where its prompt's prefix was run, before
	// the policy is asked; nil: off.
	affinity     *affinity
	hits, routed atomic.Int64 // AffinityStats
}

// ticket is one request's place in its model's line.
type ticket struct {
	seq    uint64
	model  string
	req    *Request
	filter workers.Filter
	kind   string // requests of one kind (same constraints) start in order
	state  ticketState
	grant  chan grant    // holds at most one grant
	nudge  chan struct{} // no worker takes requests for it: look why
	prefix *prefix       // its prompt's keys, for the affinity; nil: none
}

type ticketState int

const (
	waiting ticketState = iota
	granted
	left
)

// grant is a slot of a worker given to a request. release gives it back.
type grant struct {
	w       workers.Worker
	release func()
}

func newQueue(reg *workers.Registry, p Policy, limit int) *queue {
	return &queue{reg: reg, policy: p, limit: limit, lines: make(map[string][]*ticket),
		refused: make(map[string]time.Time), draining: make(map[string]bool)}
}

func newTicket(r *Request, f workers.Filter) *ticket {
	return &ticket{
		model: f.Models[0], req: r, filter: f,
		kind:  strings.Join(f.Models, "\x00") + "\x00" + f.HiveID + "\x00" + f.WorkerID,
		grant: make(chan grant, 1), nudge: make(chan struct{}, 1),
	}
}

// add puts t at the end of its model's line, or refuses it with
// queue_full when the line is full. A request that can start at once is
// granted before add returns.
func (q *queue) add(t *ticket) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return errShuttingDown()
	}
	line := q.lines[t.model]
	if len(line) >= q.limit {
		e := wire.Errorf(wire.CodeQueueFull,
			"%d requests for model %s are waiting for a worker already (max_queue %d); retry in %d s, or start another worker: rbee worker spawn -m %s",
			len(line), t.req.Model, q.limit, queueRetryAfter, t.req.Model)
		e.RetryAfter = queueRetryAfter
		return e
	}
	q.seq++
	t.seq = q.seq
	t.state = waiting
	q.lines[t.model] = append(line, t)
	q.pumpLocked()
	return nil
}

// requeue puts t back in its place after the worker it was given turned
// it away.
func (q *queue) requeue(t *ticket) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if t.state == left {
		return
	}
	line := q.lines[t.model]
	i, _ := slices.BinarySearchFunc(line, t.seq, func(u *ticket, seq uint64) int { return cmp.Compare(u.seq, seq) })
	q.lines[t.model] = slices.Insert(line, i, t)
	t.state = waiting
	q.pumpLocked()
}

// leave takes t out of the queue: the request ended, whatever way. A slot
// granted to it but not taken is given back.
func (q *queue) leave(t *ticket) {
	q.mu.Lock()
	var release func()
	switch t.state {
	case waiting:
		q.removeLocked(t)
	case granted:
		select {
		case g := <-t.grant:
			release = g.release
		default: // taken: its taker gives it back
		}
	}
	t.state = left
	q.mu.Unlock()
	if release != nil {
		release()
	}
}

func (q *queue) removeLocked(t *ticket) {
	line := q.lines[t.model]
	if i := slices.Index(line, t); i >= 0 {
		line = slices.Delete(line, i, i+1)
	}
	if len(line) == 0 {
		delete(q.lines, t.model)
	} else {
		q.lines[t.model] = line
	}
}

// refuse notes that worker id turned a request away: it gets none until a
// heartbeat newer than the last one arrives. Notes of workers the registry
// has forgotten go at the same time.
func (q *queue) refuse(id string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for other := range q.refused {
		if _, ok := q.reg.Get(other); !ok {
			delete(q.refused, other)
		}
	}
	if w, ok := q.reg.Get(id); ok {
		q.refused[id] = w.LastSeen
	}
}

// pump hands out free slots. It is called whenever one may have opened.
func (q *queue) pump() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.lines) > 0 {
		q.pumpLocked()
	}
}

func (q *queue) pumpLocked() {
	for model, line := range q.lines {
		stuck := map[string]bool{} // kinds that cannot start now
		for i := 0; i < len(line); {
			t := line[i]
			if stuck[t.kind] {
				i++
				continue
			}
			w, ok := q.pickLocked(t)
			if !ok {
				stuck[t.kind] = true
				i++
				continue
			}
			line = slices.Delete(line, i, i+1)
			release := q.reg.Acquire(w.WorkerID)
			t.state = granted
			t.grant <- grant{w: w, release: sync.OnceFunc(func() {
				release()
				q.pump() // the slot is free for the next request
			})}
		}
		if len(line) == 0 {
			delete(q.lines, model)
		} else {
			q.lines[model] = line
		}
	}
}

// pickLocked finds a worker for t among those with a free slot: the one
// that ran the longest prefix of its prompt, if the affinity knows one
// long enough, else the policy's pick. When no worker of t's model takes
// requests at all, t is nudged: whether to wait for one that loads, start
// one or give up is for its request to decide.
func (q *queue) pickLocked(t *ticket) (workers.Worker, bool) {
	ready, _ := q.reg.Pick(t.filter)
	if len(ready) == 0 {
		select {
		case t.nudge <- struct{}{}:
		default:
		}
		return workers.Worker{}, false
	}
	cands := ready[:0]
	for _, w := range ready {
		if w.Free() > 0 && !q.draining[w.WorkerID] && !q.refusedLocked(w) {
			cands = append(cands, w)
		}
	}
	if len(cands) == 0 {
		return workers.Worker{}, false
	}
	if q.affinity != nil && t.prefix != nil {
		if w, ok := q.affinity.choose(t.prefix, cands, q.reg); ok {
			q.hits.Add(1)
			q.routed.Add(1)
			return w, true
		}
	}
	w, ok := q.policy.Pick(t.req, cands)
	if !ok || !slices.ContainsFunc(cands, func(c workers.Worker) bool { return c.WorkerID == w.WorkerID }) {
		return workers.Worker{}, false
	}
	q.routed.Add(1)
	return w, true
}

func (q *queue) refusedLocked(w workers.Worker) bool {
	at, ok := q.refused[w.WorkerID]
	if ok && w.LastSeen.After(at) {
		delete(q.refused, w.WorkerID)
		return false
	}
	return ok
}

// watch pumps at every change of the registry until stop is closed.
func (q *queue) watch(stop <-chan struct{}) {
	for {
		changed := q.reg.Changed()
		select {
		case <-stop:
			return
		case <-changed:
			q.pump()
		}
	}
}

// close refuses new requests and wakes the waiting ones, which see that
// the queen is shutting down.
func (q *queue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	for _, line := range q.lines {
		for _, t := range line {
			select {
			case t.nudge <- struct{}{}:
			default:
			}
		}
	}
}

// status lists the models with requests waiting, by model.
func (q *queue) status() []wire.QueueStatus {
	q.mu.Lock()
	out := make([]wire.QueueStatus, 0, len(q.lines))
	for model, line := range q.lines {
		out = append(out, wire.QueueStatus{Model: model, Waiting: len(line), Max: q.limit})
	}
	q.mu.Unlock()
	slices.SortFunc(out, func(a, b wire.QueueStatus) int { return cmp.Compare(a.Model, b.Model) })
	return out
}

// position is how many requests wait before t in its line.
func (q *queue) position(t *ticket) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return slices.Index(q.lines[t.model], t)
}

// wants reports whether a request waits that w could serve.
func (q *queue) wants(w workers.Worker) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, line := range q.lines {
		for _, t := range line {
			if t.filter.Matches(w) {
				return true
			}
		}
	}
	return false
}

// drain takes w out of service if nothing runs on it; false if something
// does or was just given to it.
func (q *queue) drain(id string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if w, ok := q.reg.Get(id); !ok || w.InFlight > 0 {
		return false
	}
	q.draining[id] = true
	return true
}

// undrain puts w back in service, or forgets it.
func (q *queue) undrain(id string) {
	q.mu.Lock()
	delete(q.draining, id)
	q.mu.Unlock()
}

func errShuttingDown() error {
	e := wire.Errorf(wire.CodeUnavailable, "the queen is shutting down")
	e.RetryAfter = 1
	return e
}

// errDeadline is what a request that could not start within its
// timeout_ms gets: a 503, since the service was too busy for it, and
// deadline_exceeded in an error event of the job protocol.
func errDeadline(r *Request, why string) error {
	e := wire.Errorf(wire.CodeDeadline,
		"the request for model %s could not start within its timeout_ms (%s): %s",
		r.Model, r.Deadline.Sub(r.Queued).Round(time.Millisecond), why)
	e.RetryAfter = 1
	return e
}

// inQueueNote tells a person why their request waits.
func inQueueNote(r *Request, ahead, workers int) string {
	who := fmt.Sprintf("All %d workers for %s are", workers, r.Model)
	if workers == 1 {
		who = "The worker for " + r.Model + " is"
	}
	return fmt.Sprintf("%s busy; waiting in the queen's queue with %d requests ahead", who, max(ahead, 0))
}
