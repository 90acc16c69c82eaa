package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rbee/rbee/internal/sse"
	"github.com/rbee/rbee/internal/wire"
)

// Causes of a job's cancellation, as context.Cause reports them on
// Job.Context(), so a run function can tell why it is being stopped.
var (
	ErrCancelled = errors.New("job cancelled by request")
	ErrShutdown  = errors.New("job cancelled: the daemon is shutting down")
	ErrUnwatched = errors.New("job cancelled: no client is watching its stream")
)

// maxEventBytes keeps every event within what sse.Reader accepts on one
// line ("data: " + JSON + "\n"), so an oversized event fails loudly in the
// job instead of breaking every client that reads it.
const maxEventBytes = sse.MaxLine - 64

// Emitter is the part of a job that reporting code needs, so helpers can
// report progress without depending on *Job.
type Emitter interface {
	Emit(ev wire.StreamEvent)
	Narrate(action, human string)
}

// RunFunc is the body of a job. It is an alias so that plain func literals
// and dispatch functions need no conversion.
type RunFunc = func(*Job) error

// Job is one running or finished operation and the events it emitted.
type Job struct {
	id       string
	op       wire.Operation
	reg      *Registry
	created  time.Time
	ctx      context.Context
	cancel   context.CancelCauseFunc
	finished chan struct{} // closed when the run function has returned

	mu        sync.RWMutex // read-locked by subscribers, so thousands can copy at once
	log       *eventLog
	sealed    bool          // a terminal event is logged; nothing more is
	notify    chan struct{} // closed (and replaced unless sealed) on every change
	subs      int
	attached  bool // at least one subscriber ever attached
	unwatched bool // cancel once nobody watches
	quiet     bool // CreateOptions.QuietCancel
	timer     *time.Timer
}

var _ Emitter = (*Job)(nil)

// ID returns the job's id ("job-<hex>").
func (j *Job) ID() string { return j.id }

// Op returns the operation the job was created for.
func (j *Job) Op() wire.Operation { return j.op }

// Context is cancelled when the job is cancelled (DELETE, shutdown, or
// nobody watching) and after the run function returns; context.Cause says
// which.
func (j *Job) Context() context.Context { return j.ctx }

// Finished is closed once the run function has returned.
func (j *Job) Finished() <-chan struct{} { return j.finished }

// Narration returns a narration event with the registry's actor and this
// job's id filled in, for callers that add hive or worker ids before Emit.
func (j *Job) Narration(action, human string) wire.Narration {
	n := wire.NewNarration(j.reg.opt.Actor, action, human)
	n.JobID = j.id
	return n
}

// Narrate emits a narration event.
func (j *Job) Narrate(action, human string) {
	j.reg.opt.Logger.Debug(human, "job_id", j.id, "actor", j.reg.opt.Actor, "action", action)
	j.Emit(j.Narration(action, human))
}

// Emit appends an event to the job's stream. A result, end or error event
// ends the stream: later events are dropped. Emit never blocks on
// subscribers. An event that cannot be encoded ends the job with an internal
// error, because silently dropping it (say, a result) would let the stream
// claim a success that never happened.
func (j *Job) Emit(ev wire.StreamEvent) {
	typ := ev.EventType()
	data, err := json.Marshal(ev)
	switch {
	case err != nil:
		j.fail(wire.CodeInternal, fmt.Sprintf("cannot encode a %s event: %v", typ, err))
	case !validType(typ):
		// Only a relayed wire.Event brings a type from elsewhere.
		j.fail(wire.CodeInternal, fmt.Sprintf("invalid event type %q", typ))
	case len(data) > maxEventBytes:
		j.fail(wire.CodeInternal, fmt.Sprintf("a %s event of %d bytes exceeds the stream limit of %d bytes", typ, len(data), maxEventBytes))
	default:
		j.append(typ, data)
	}
}

// CancelWhenUnwatched makes the job cancel itself once its last subscriber
// goes away, or when nobody attaches within Options.AttachTimeout of its
// creation. A run function created through Mount calls it first thing (for
// infer, where a dropped stream must stop generation); Create does it for
// CreateOptions.CancelWhenUnwatched.
func (j *Job) CancelWhenUnwatched() {
	j.mu.Lock()
	if j.unwatched || j.sealed {
		j.mu.Unlock()
		return
	}
	j.unwatched = true
	gone := j.attached && j.subs == 0
	if !j.attached {
		wait := j.reg.opt.AttachTimeout - time.Since(j.created)
		j.timer = time.AfterFunc(max(wait, 0), j.checkAttached)
	}
	j.mu.Unlock()
	if gone {
		j.cancelWith(ErrUnwatched)
	}
}

func (j *Job) checkAttached() {
	j.mu.Lock()
	idle := !j.attached && !j.sealed
	j.mu.Unlock()
	if idle {
		j.cancelWith(ErrUnwatched)
	}
}

// append logs one encoded event and wakes the subscribers. It reports false
// when the stream was already sealed.
func (j *Job) append(typ string, data []byte) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.sealed {
		return false
	}
	j.log.push(event{typ: typ, data: data})
	j.sealed = typ == wire.TypeResult || typ == wire.TypeEnd || typ == wire.TypeError
	close(j.notify)
	if !j.sealed {
		j.notify = make(chan struct{})
	}
	return true
}

func (j *Job) fail(code, message string) {
	data, _ := json.Marshal(wire.NewError(code, message))
	j.append(wire.TypeError, data)
}

// cancelWith ends the stream with a cancelled error event at once, rather
// than when the run function gets round to returning, so the client learns
// promptly; then it cancels the context. On a sealed stream, or a quiet
// job's, only the context is cancelled.
func (j *Job) cancelWith(cause error) {
	if !j.quiet {
		j.fail(wire.CodeCancelled, cause.Error())
	}
	j.cancel(cause)
}

// finish seals the stream after the run function returned, so that every
// stream ends with a terminal event even when the run function forgot one.
func (j *Job) finish(err error) {
	if err == nil {
		data, _ := json.Marshal(wire.NewResult(nil))
		j.append(wire.TypeResult, data)
	} else {
		ev := wire.ErrorEventOf(err)
		j.fail(ev.Code, ev.Message)
	}
	j.mu.Lock()
	if j.timer != nil {
		j.timer.Stop()
	}
	j.mu.Unlock()
	j.cancel(context.Canceled)
	close(j.finished)
}

// read copies up to limit events from pos on. done means the stream is sealed
// and pos is at its end; wait is closed when there may be more to read.
func (j *Job) read(pos int64, dst []event, limit int) (out []event, next, lost int64, done bool, wait <-chan struct{}) {
	j.mu.RLock()
	defer j.mu.RUnlock()
	out, next, lost = j.log.read(pos, dst, limit)
	return out, next, lost, j.sealed && next == j.log.next, j.notify
}

func (j *Job) attach() {
	j.mu.Lock()
	j.subs++
	j.attached = true
	j.mu.Unlock()
}

func (j *Job) detach() {
	j.mu.Lock()
	j.subs--
	gone := j.unwatched && j.subs == 0 && !j.sealed
	j.mu.Unlock()
	if gone {
		j.cancelWith(ErrUnwatched)
	}
}

func (j *Job) subscribers() int {
	j.mu.RLock()
	defer j.mu.RUnlock()
	return j.subs
}

// validType keeps the type to the characters of the wire's type names, since
// it is written verbatim into the stream's "event:" line.
func validType(typ string) bool {
	if typ == "" || len(typ) > 64 {
		return false
	}
	for _, c := range typ {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}
