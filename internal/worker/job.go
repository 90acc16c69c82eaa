package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/rbee/rbee/internal/wire"

	"github.com/rbee/rbee/internal/generate"
)

// job is one inference request. Its events are kept until it is forgotten,
// so a stream that attaches late still gets every token.
type job struct {
	id      string
	req     generate.Request
	created time.Time
	ctx     context.Context
	cancel  context.CancelFunc

	mu       sync.Mutex
	events   []event
	done     bool
	changed  chan struct{} // closed and replaced whenever events or done change
	watchers int
	watched  bool // a stream has attached at least once
	started  bool // a slot took it
}

type event struct {
	typ  string
	data []byte
}

func newJob(id string, req generate.Request) *job {
	ctx, cancel := context.WithCancel(context.Background())
	return &job{id: id, req: req, created: time.Now(), ctx: ctx, cancel: cancel, changed: make(chan struct{})}
}

func (j *job) emit(typ string, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		panic(err) // our own event types always encode
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.done {
		return
	}
	j.events = append(j.events, event{typ, data})
	j.signal()
}

// finish emits the terminal event and marks the job done.
func (j *job) finish(typ string, v any) {
	j.emit(typ, v)
	j.mu.Lock()
	j.done = true
	j.signal()
	j.mu.Unlock()
	j.cancel()
}

func (j *job) signal() {
	close(j.changed)
	j.changed = make(chan struct{})
}

// next returns the events from index from on, whether the job is done, and
// a channel that is closed when there is more.
func (j *job) next(from int) ([]event, bool, <-chan struct{}) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.events[from:], j.done, j.changed
}

func (j *job) attach() {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.watchers++
	j.watched = true
}

// detach reports whether the last stream went away before the job ended.
func (j *job) detach() (abandoned bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.watchers--
	return j.watchers == 0 && !j.done
}

func (j *job) unwatched() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return !j.watched && !j.done
}

func (j *job) isDone() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.done
}

// start marks the job as taken by a slot; false when it already ended
// (cancelled, or its deadline passed while it waited).
func (j *job) start() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.done {
		return false
	}
	j.started = true
	return true
}

// expire ends a job that is still waiting for a slot.
func (j *job) expire(after time.Duration) {
	j.mu.Lock()
	waiting := !j.started && !j.done
	j.mu.Unlock()
	if waiting {
		j.finish(wire.TypeError, wire.NewError(wire.CodeDeadline, fmt.Sprintf("no slot became free within %s", after)))
	}
}
