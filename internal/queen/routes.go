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
	// Heartbeats carry a hive's token or the queen's: heartbeatGate.
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

// heartbeatGate decides whether a heartbeat in the name of hive hiveID may
// be taken. A hive with its own token must send it (the queen's token also
// does, as it authorises the queen's callers); any other hive's workers
// need the queen's token when there is one, and otherwise must be on this
// machine unless the queen listens on loopback only.
func (s *Server) heartbeatGate(hiveID string) (*httpapi.Gate, string, error) {
	hiveTok, err := s.fleet.TokenOf(hiveID)
	if err != nil {
		return nil, "", wire.Errorf(wire.CodeInternal, "reading the token of hive %s: %v", hiveID, err)
	}
	g := s.gate()
	if hiveTok != "" {
		g.Hint = "A heartbeat for hive " + hiveID + " needs that hive's token."
	}
	g.RemoteHint = "heartbeats from other machines need their hive's token: install that hive with rbee hive install"
	return g, hiveTok, nil
}

func (s *Server) handleHeartbeat(w http.ResponseWriter, r *http.Request) error {
	var hb wire.Heartbeat
	if err := httpapi.DecodeJSON(w, r, maxHeartbeat, &hb); err != nil {
		return err
	}
	if err := workers.Validate(hb); err != nil {
		return wire.BadRequest("heartbeat: %v", err)
	}
	g, hiveTok, err := s.heartbeatGate(hb.HiveID)
	if err != nil {
		return err
	}
	if err := g.Check(r, hiveTok); err != nil {
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
