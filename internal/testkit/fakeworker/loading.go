package fakeworker

import (
	"net/http"

	"github.com/rbee/rbee/internal/sse"
	"github.com/rbee/rbee/internal/wire"
)

// defaultLoadTotal is what a load counts to until SetProgress says
// otherwise, so that a progress event never reads "0 of 0", which looks done.
const defaultLoadTotal = 100

// load is the loading phase's progress, under Worker.mu; its state is
// Worker.state. changed is closed and replaced at each change, so that
// every progress stream wakes.
type load struct {
	done, total int64
	err         string // why the load failed, in state "error"
	changed     chan struct{}
}

// SetProgress sets how far the load has come: the progress streams send
// it as a progress event of done of total bytes.
func (w *Worker) SetProgress(done, total int64) {
	w.setLoad(func() { w.load.done, w.load.total = done, total })
}

// FailLoad ends the load as failed, as a worker that cannot load its model
// does: the state turns "error", /v1/ready says message, and the progress
// streams end with a load_failed error event carrying it. The worker stays
// up, as the real one does until it is stopped.
func (w *Worker) FailLoad(message string) {
	w.setLoad(func() { w.state, w.load.err = wire.StateError, message })
}

// setLoad changes the load under the lock and tells everyone who follows
// it: the progress streams and the heartbeats.
func (w *Worker) setLoad(change func()) {
	w.mu.Lock()
	change()
	close(w.load.changed)
	w.load.changed = make(chan struct{})
	w.mu.Unlock()
	w.setActive(0) // a change the queen hears at once
}

// progress serves GET /v1/loading/progress as llm-worker-rbee does: a
// progress event at each change while loading, then either a last
// progress event and a result event with the /v1/ready answer, or a
// load_failed error event; then [DONE]. A loaded worker answers at once.
// Unlike the real worker it sends no pings, so that a reader's stall
// timer sees the silence of a load that stopped moving.
func (w *Worker) progress(rw http.ResponseWriter, r *http.Request) error {
	sw := sse.NewWriter(rw)
	last := int64(-1)
	for {
		w.mu.Lock()
		state, ld := w.state, w.load
		w.mu.Unlock()
		switch state {
		case wire.StateError:
			_ = sw.Event(wire.NewError(wire.CodeLoadFailed, ld.err))
			return sw.Done()
		case wire.StateLoading:
		default:
			_ = sw.Event(wire.NewProgress(ld.total, ld.total, "bytes"))
			_ = sw.Event(wire.NewResult(w.Ready()))
			return sw.Done()
		}
		if ld.done != last {
			if sw.Event(wire.NewProgress(ld.done, ld.total, "bytes")) != nil {
				return nil
			}
			last = ld.done
		}
		select {
		case <-ld.changed:
		case <-r.Context().Done():
			return nil
		case <-w.done:
			return nil
		}
	}
}
