package scheduling

import (
	"cmp"
	"time"

	"github.com/rbee/rbee/internal/queen/workers"
	"github.com/rbee/rbee/internal/wire"
)

// Policy chooses the worker that runs a queued request. The queue asks it
// whenever the request is at the front of its model's queue (first in,
// first out) and at least one worker could start it now; Options.Policy
// swaps it. A policy must be quick and must not block: the queue holds its
// lock while asking.
type Policy interface {
	// Pick chooses among candidates: the ready workers that serve the
	// request's model (on its hive, or the one worker it names) and have
	// a free slot, never none. Returning false leaves the request and the
	// ones behind it with the same constraints in the queue until the
	// next change (a heartbeat, or a request that ends).
	Pick(r *Request, candidates []workers.Worker) (workers.Worker, bool)
}

// Request is what a policy knows of a queued request.
type Request struct {
	Model    string // as the client named it: catalog id, path or hf: reference
	HiveID   string // only workers of this hive; empty: any
	WorkerID string // only this worker; empty: any
	Queued   time.Time
	Deadline time.Time // when the request must have started; zero: none
	// Inference is what the worker will be sent (its timeout_ms is set
	// from Deadline when the request leaves the queue).
	Inference wire.InferenceRequest
}

// MostFreeSlots is the default policy: the worker with the most free slots
// (workers.Worker.Free: its slots less what it runs and queues by its
// heartbeats, or less the requests the queen has in flight there when that
// is more, since heartbeats lag), so load spreads evenly and a worker with
// more slots takes more. Among equals it takes the one heard from most
// recently, whose numbers are freshest, then the lowest id, so the choice
// is the same for the same registry.
type MostFreeSlots struct{}

// Pick implements Policy.
func (MostFreeSlots) Pick(_ *Request, candidates []workers.Worker) (workers.Worker, bool) {
	best := candidates[0]
	for _, w := range candidates[1:] {
		if cmp.Or(cmp.Compare(w.Free(), best.Free()), w.LastSeen.Compare(best.LastSeen), cmp.Compare(best.WorkerID, w.WorkerID)) > 0 {
			best = w
		}
	}
	return best, true
}
