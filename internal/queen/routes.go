package queen

import (
	"errors"
	"net/http"

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
	// Heartbeats carry the worker's own credential: checkWorkerCredential.
	mux.Handle("POST /v1/workers/heartbeat", httpapi.Handler(s.handleHeartbeat))
	api.Handle("POST /v1/shutdown", httpapi.Handler(s.handleShutdown))
	api.Handle("/", httpapi.Handler(func(w http.ResponseWriter, r *http.Request) error {
		return wire.NotFound("no such endpoint: %s %s", r.Method, r.URL.Path)
	}))
	mux.Handle("/", s.gate().Wrap(api))
	// The OpenAI API has its own access rule (API keys) and error shape.
	s.openAI().Mount(mux)

	var h http.Handler = mux
	if s.opt.Loopback {
		h = httpapi.LoopbackHostOnly(h)
	}
	return h
}

// gate guards the job protocol: the queen's token when one is set. Without
// one, a queen listening beyond loopback does so only for the OpenAI API,
// which API keys guard; the job protocol stays on this machine.
func (s *Server) gate() *httpapi.Gate {
	return &httpapi.Gate{
		Token:      s.opt.Token,
		LocalOnly:  !s.opt.Loopback,
		Hint:       "Use queen_token of config.toml.",
		RemoteHint: "the job protocol is served only to this machine unless queen_token is set in config.toml (API keys grant the OpenAI API alone)",
	}
}

// checkWorkerCredential takes a heartbeat only from the worker it names:
// its bearer must be that worker's credential, derived from the token of
// the hive it claims (httpapi.WorkerToken). A hive hands it to each worker
// it spawns, and a worker started by hand derives it from the hive's token
// file on its machine; so a heartbeat can claim neither another hive nor
// another worker id, whatever machine it comes from. The queen's token
// registers nothing.
func (s *Server) checkWorkerCredential(r *http.Request, hb wire.Heartbeat) error {
	hiveTok, err := s.fleet.TokenOf(hb.HiveID)
	if err != nil {
		return wire.Errorf(wire.CodeInternal, "reading the token of hive %s: %v", hb.HiveID, err)
	}
	if hiveTok == "" {
		return wire.Errorf(wire.CodeUnauthorized,
			"hive %s has no token at this queen, so no worker can register in its name: a hive's workers get their credential from the hive "+
				"(rbee hive install -a %s for another machine; rbee hive start for this one, or a worker started by hand here reads hive-tokens/%s of the queen's config directory)",
			hb.HiveID, hb.HiveID, hb.HiveID)
	}
	g := &httpapi.Gate{Hint: "A heartbeat needs the worker's own credential (RBEE_WORKER_TOKEN), which its hive " + hb.HiveID + " hands it."}
	return g.Check(r, httpapi.WorkerToken(hiveTok, hb.WorkerID))
}

func (s *Server) handleHeartbeat(w http.ResponseWriter, r *http.Request) error {
	var hb wire.Heartbeat
	if err := httpapi.DecodeJSON(w, r, maxHeartbeat, &hb); err != nil {
		return err
	}
	if err := workers.Validate(hb); err != nil {
		return wire.BadRequest("heartbeat: %v", err)
	}
	if err := s.checkWorkerCredential(r, hb); err != nil {
		return err
	}
	if err := checkWorkerHost(r, hb.URL, s.fleet.OnThisMachine(hb.HiveID)); err != nil {
		return err
	}
	if err := s.workers.Heartbeat(hb); err != nil {
		switch {
		case errors.Is(err, workers.ErrFull):
			e := wire.Errorf(wire.CodeUnavailable, "%v: too many workers", err)
			e.RetryAfter = 10
			return e
		case errors.Is(err, workers.ErrExists):
			return wire.Errorf(wire.CodeWorkerExists, "%v", err)
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
