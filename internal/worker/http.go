package worker

import (
	"net/http"
	"time"

	"github.com/rbee/rbee/internal/httpapi"
	"github.com/rbee/rbee/internal/sse"
	"github.com/rbee/rbee/internal/wire"
)

// Handler returns the worker's HTTP API.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		httpapi.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	api := http.NewServeMux()
	api.Handle("GET /v1/ready", httpapi.Handler(s.handleReady))
	api.Handle("GET /v1/loading/progress", httpapi.Handler(s.handleProgress))
	api.Handle("POST /v1/inference", httpapi.Handler(s.handleInference))
	api.Handle("GET /v1/inference/{id}/stream", httpapi.Handler(s.jobs.ServeStream))
	api.Handle("DELETE /v1/inference/{id}", httpapi.Handler(s.handleCancel))
	api.Handle("/", httpapi.Handler(func(w http.ResponseWriter, r *http.Request) error {
		return wire.NotFound("no such endpoint: %s %s", r.Method, r.URL.Path)
	}))
	mux.Handle("/", s.gate.Wrap(api))
	var h http.Handler = mux
	if s.cfg.Loopback {
		h = httpapi.LoopbackHostOnly(h)
	}
	return h
}

func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) error {
	httpapi.WriteJSON(w, http.StatusOK, s.ready())
	return nil
}

func (s *Server) handleProgress(w http.ResponseWriter, r *http.Request) error {
	sw := sse.NewWriter(w)
	ping := time.NewTicker(s.cfg.PingInterval)
	defer ping.Stop()
	var last int64 = -1
	for {
		// Each write gets a fresh deadline, as on every stream: a reader
		// that stopped reading is cut off.
		_ = sw.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
		done, total, state, errText, changed := s.load.get()
		switch state {
		case wire.StateError:
			_ = sw.Event(wire.NewError(wire.CodeLoadFailed, errText))
			return sw.Done()
		case wire.StateReady:
			_ = sw.Event(wire.NewProgress(total, total, "bytes"))
			_ = sw.Event(wire.NewResult(s.ready()))
			return sw.Done()
		}
		if done != last {
			if err := sw.Event(wire.NewProgress(done, total, "bytes")); err != nil {
				return nil
			}
			last = done
		}
		select {
		case <-changed:
		case <-ping.C:
			_ = sw.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
			if sw.Ping() != nil {
				return nil
			}
		case <-r.Context().Done():
			return nil
		}
	}
}

func (s *Server) handleInference(w http.ResponseWriter, r *http.Request) error {
	var req wire.InferenceRequest
	if err := httpapi.DecodeJSON(w, r, httpapi.MaxBody, &req); err != nil {
		return err
	}
	j, err := s.submit(req)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusCreated, wire.JobCreated{JobID: j.ID(), SSEURL: "/v1/inference/" + j.ID() + "/stream"})
	return nil
}

func (s *Server) handleCancel(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	j, running := s.cancel(id)
	if j == nil {
		return wire.NotFound("no inference job %q", id)
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"job_id": j.ID(), "cancelled": running})
	return nil
}
