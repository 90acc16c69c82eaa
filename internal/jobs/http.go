package jobs

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/rbee/rbee/internal/httpapi"
	"github.com/rbee/rbee/internal/sse"
	"github.com/rbee/rbee/internal/wire"
)

// MaxOperationBody bounds the body of POST /v1/jobs.
const MaxOperationBody = 1 << 20

// readBatch bounds how many events a subscriber copies per lock, so that
// thousands of subscribers catching up do not starve the publisher.
const readBatch = 64

// Dispatch validates an operation and returns the function that runs it. It
// returns an error (ideally a *wire.Error) for an unknown or
// malformed operation; no job is created then.
type Dispatch = func(op wire.Operation) (run RunFunc, err error)

// Mount registers the job protocol's endpoints on mux:
// POST /v1/jobs, GET /v1/jobs/{id}/stream and DELETE /v1/jobs/{id}.
func (r *Registry) Mount(mux *http.ServeMux, dispatch Dispatch) {
	mux.Handle("POST /v1/jobs", httpapi.Handler(func(w http.ResponseWriter, req *http.Request) error {
		return r.serveCreate(w, req, dispatch)
	}))
	mux.Handle("GET /v1/jobs/{id}/stream", httpapi.Handler(r.ServeStream))
	mux.Handle("DELETE /v1/jobs/{id}", httpapi.Handler(r.serveCancel))
}

func (r *Registry) serveCreate(w http.ResponseWriter, req *http.Request, dispatch Dispatch) error {
	var op wire.Operation
	if err := httpapi.DecodeJSON(w, req, MaxOperationBody, &op); err != nil {
		return err
	}
	run, err := dispatch(op)
	if err != nil {
		return rejection(err)
	}
	if run == nil {
		return wire.Errorf(wire.CodeInternal, "operation %q has no handler", op.Operation)
	}
	j, err := r.Create(op, run)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusCreated, wire.JobCreated{JobID: j.ID(), SSEURL: "/v1/jobs/" + j.ID() + "/stream"})
	return nil
}

// rejection turns a dispatch error into an HTTP error. Dispatch only
// validates, so an untyped error is the client's fault (400), not a 500.
func rejection(err error) error {
	if e, ok := wire.AsError(err); ok {
		return e
	}
	return wire.BadRequest("%s", err.Error())
}

func (r *Registry) serveCancel(w http.ResponseWriter, req *http.Request) error {
	id := req.PathValue("id")
	if !r.Cancel(id) {
		return wire.NotFound("no job %q", id)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// ServeStream serves the event stream of the job that the request's {id}
// path value names, from its first kept event to [DONE]: the one stream
// loop of every daemon (the job protocol's GET /v1/jobs/{id}/stream, the
// worker's GET /v1/inference/{id}/stream). Events that piled up are written
// with one flush; a reader that stalls a write past WriteTimeout is dropped,
// and one that fell behind the job's buffer gets a slow_reader error.
func (r *Registry) ServeStream(w http.ResponseWriter, req *http.Request) error {
	id := req.PathValue("id")
	j, ok := r.Get(id)
	if !ok {
		return wire.NotFound("no job %q", id)
	}
	j.attach()
	defer j.detach()

	sw := sse.NewWriter(w)
	// Every write gets a fresh deadline: a reader that stops reading fills the
	// TCP buffers (small on a daemon's connections: httpapi.SendBuffer),
	// the write times out and this subscriber is dropped, which cancels a
	// CancelWhenUnwatched job when it was the last. The
	// deadline is left set on return so that finishing the response is
	// bounded too; net/http clears it before reusing the connection.
	deadline := func() { _ = sw.SetWriteDeadline(time.Now().Add(r.opt.WriteTimeout)) }
	ping := time.NewTimer(r.opt.PingInterval)
	defer ping.Stop()

	var (
		pos   int64
		batch = make([]event, 0, 16)
	)
	for {
		var (
			lost int64
			done bool
			wait <-chan struct{}
		)
		batch, pos, lost, done, wait = j.read(pos, batch[:0], readBatch)
		if lost > 0 {
			deadline()
			ev := wire.NewError(wire.CodeSlowReader, "the stream fell behind: events were dropped from the job's buffer before they were sent")
			if data, err := json.Marshal(ev); err == nil && sw.Raw(wire.TypeError, data) == nil {
				_ = sw.Done()
			}
			return nil
		}
		if len(batch) > 0 {
			deadline()
			for i, e := range batch {
				if sw.Queue(e.typ, e.data) != nil {
					return nil
				}
				batch[i] = event{} // do not pin dropped events until the next read
			}
			// One flush for the whole batch: a reader that fell behind
			// catches up in one write instead of one per event.
			if sw.Flush() != nil {
				return nil
			}
			ping.Reset(r.opt.PingInterval)
			continue
		}
		if done {
			deadline()
			_ = sw.Done()
			return nil
		}
		select {
		case <-wait:
		case <-ping.C:
			deadline()
			if sw.Ping() != nil {
				return nil
			}
			ping.Reset(r.opt.PingInterval)
		case <-req.Context().Done():
			return nil
		}
	}
}
