package queen

import (
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"

	"github.com/rbee/rbee/internal/httpapi"
	"github.com/rbee/rbee/internal/queen/workers"
	"github.com/rbee/rbee/internal/wire"
)

// maxHeartbeat bounds a heartbeat body.
const maxHeartbeat = 1 << 20

// Handler returns the queen's HTTP API.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		httpapi.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	api := http.NewServeMux()
	s.jobs.Mount(api, s.dispatch)
	// Heartbeats carry a hive's token or the queen's: authHeartbeat.
	mux.Handle("POST /v1/workers/heartbeat", httpapi.Handler(s.handleHeartbeat))
	api.Handle("POST /v1/shutdown", httpapi.Handler(s.handleShutdown))
	api.Handle("/", httpapi.Handler(func(w http.ResponseWriter, r *http.Request) error {
		return wire.NotFound("no such endpoint: %s %s", r.Method, r.URL.Path)
	}))
	mux.Handle("/", s.auth(api))
	// The OpenAI API has its own access rule (API keys) and error shape.
	s.openAI().Mount(mux)

	var h http.Handler = mux
	if s.opt.Loopback {
		h = httpapi.LoopbackHostOnly(h)
	}
	return h
}

// auth requires the token, when one is configured, as a bearer token. The
// comparison takes the same time whatever the guess.
func (s *Server) auth(next http.Handler) http.Handler {
	if s.opt.Token == "" && !s.opt.Loopback {
		// Without a token the queen listens beyond loopback only for the
		// OpenAI API, which API keys guard; the job protocol stays local.
		return thisMachineOnly(next)
	}
	if s.opt.Token == "" {
		return next
	}
	want := []byte(s.opt.Token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), want) != 1 {
			httpapi.WriteError(w, r, wire.Errorf(wire.CodeUnauthorized, "a valid bearer token is required (queen_token in config.toml)"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) handleHeartbeat(w http.ResponseWriter, r *http.Request) error {
	var hb wire.Heartbeat
	if err := httpapi.DecodeJSON(w, r, maxHeartbeat, &hb); err != nil {
		return err
	}
	if err := workers.Validate(hb); err != nil {
		return wire.BadRequest("heartbeat: %v", err)
	}
	if err := s.authHeartbeat(r, hb.HiveID); err != nil {
		return err
	}
	if err := checkWorkerHost(r, hb.URL); err != nil {
		return err
	}
	if err := s.workers.Heartbeat(hb); err != nil {
		if errors.Is(err, workers.ErrFull) {
			e := wire.Errorf(wire.CodeUnavailable, "%v: too many workers", err)
			e.RetryAfter = 10
			return e
		}
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}

// handleShutdown answers first and stops afterwards, so the caller learns
// that the request was taken rather than seeing its connection drop.
func (s *Server) handleShutdown(w http.ResponseWriter, r *http.Request) error {
	if s.opt.Shutdown == nil {
		return wire.Errorf(wire.CodeNotImplemented, "this queen cannot be shut down over HTTP")
	}
	httpapi.WriteJSON(w, http.StatusAccepted, map[string]string{"status": "shutting down"})
	_ = http.NewResponseController(w).Flush()
	s.opt.Shutdown()
	return nil
}

// thisMachineOnly refuses requests from other machines.
func thisMachineOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !httpapi.FromThisMachine(r) {
			httpapi.WriteError(w, r, wire.Errorf(wire.CodeForbidden, "the job protocol is served only to this machine unless queen_token is set in config.toml (API keys grant the OpenAI API alone)"))
			return
		}
		next.ServeHTTP(w, r)
	})
}
