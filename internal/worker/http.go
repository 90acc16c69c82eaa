package worker

import (
	"net/http"
	"time"

	"github.com/rbee/rbee/internal/httpapi"
	"github.com/rbee/rbee/internal/sse"
	"github.com/rbee/rbee/internal/wire"
)

// writeTimeout bounds each write to a stream, so a reader that stopped
// reading is dropped (and its generation cancelled) instead of pinning it.
const writeTimeout = 30 * time.Second

// Handler returns the worker's HTTP API.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		httpapi.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.Handle("GET /v1/ready", s.auth(s.handleReady))
	mux.Handle("GET /v1/loading/progress", s.auth(s.handleProgress))
	mux.Handle("POST /v1/inference", s.auth(s.handleInference))
	mux.Handle("GET /v1/inference/{id}/stream", s.auth(s.handleStream))
	mux.Handle("DELETE /v1/inference/{id}", s.auth(s.handleCancel))
	mux.Handle("/", httpapi.Handler(func(w http.ResponseWriter, r *http.Request) error {
		return wire.NotFound("no such endpoint: %s %s", r.Method, r.URL.Path)
	}))
	var h http.Handler = mux
	if s.cfg.Loopback {
		h = httpapi.LoopbackHostOnly(h)
	}
	return h
}

func (s *Server) auth(h httpapi.Handler) http.Handler {
	return httpapi.Handler(func(w http.ResponseWriter, r *http.Request) error {
		if !s.authorized(r) {
			return wire.Errorf(wire.CodeUnauthorized, "a valid bearer token is required")
		}
		return h(w, r)
	})
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
		done, total, state, errText, changed := s.load.get()
		switch state {
		case wire.StateError:
			_ = sw.Event(wire.NewError("load_failed", errText))
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
	httpapi.WriteJSON(w, http.StatusCreated, wire.JobCreated{JobID: j.id, SSEURL: "/v1/inference/" + j.id + "/stream"})
	return nil
}

func (s *Server) handleStream(w http.ResponseWriter, r *http.Request) error {
	j := s.job(r.PathValue("id"))
	if j == nil {
		return wire.NotFound("no inference job %q", r.PathValue("id"))
	}
	j.attach()
	defer func() {
		// A stream that goes away before the end stops the generation.
		if j.detach() {
			j.cancel()
		}
	}()
	sw := sse.NewWriter(w)
	ping := time.NewTicker(s.cfg.PingInterval)
	defer ping.Stop()
	pos := 0
	for {
		evs, done, changed := j.next(pos)
		if len(evs) > 0 {
			_ = sw.SetWriteDeadline(time.Now().Add(writeTimeout))
			for _, e := range evs {
				if sw.Queue(e.typ, e.data) != nil {
					return nil
				}
			}
			// One flush for all that piled up since the last one.
			if sw.Flush() != nil {
				return nil
			}
		}
		pos += len(evs)
		if done && len(evs) == 0 {
			return sw.Done()
		}
		if len(evs) > 0 {
			continue
		}
		select {
		case <-changed:
		case <-ping.C:
			if sw.Ping() != nil {
				return nil
			}
		case <-r.Context().Done():
			return nil
		}
	}
}

func (s *Server) handleCancel(w http.ResponseWriter, r *http.Request) error {
	j := s.job(r.PathValue("id"))
	if j == nil {
		return wire.NotFound("no inference job %q", r.PathValue("id"))
	}
	j.cancel()
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"job_id": j.id, "cancelled": !j.isDone()})
	return nil
}
