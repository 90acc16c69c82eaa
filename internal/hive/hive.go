// Package hive is rbee-hive, the daemon that manages one machine for the
// queen: it spawns, lists and stops llm-worker-rbee processes and keeps the
// machine's model catalog, all through the job protocol. It never runs
// inference: the queen sends that straight to the workers.
package hive

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/rbee/rbee/internal/catalog"
	"github.com/rbee/rbee/internal/config"
	"github.com/rbee/rbee/internal/hf"
	"github.com/rbee/rbee/internal/httpapi"
	"github.com/rbee/rbee/internal/jobs"
	"github.com/rbee/rbee/internal/wire"
)

// Actor is the narration actor of the hive's jobs.
const Actor = "rbee-hive"

// WorkerBinaryName is the worker program the hive looks for.
const WorkerBinaryName = "llm-worker-rbee"

// Config configures a hive. Zero fields take the documented defaults.
// Where it listens is not here: Serve takes a listener.
type Config struct {
	HiveID   string // this hive's id, passed to its workers; "localhost"
	QueenURL string // where workers send heartbeats; empty: nowhere
	// WorkerHost is the address workers listen on and advertise to the
	// queen; 127.0.0.1. A hive on another machine than its queen sets
	// the address the queen reaches this machine at; anything but
	// loopback needs the Token, from which each worker's credential is
	// derived.
	WorkerHost string
	// WorkerBinary is the llm-worker-rbee to run. Empty: the one next to
	// this executable, else the one on $PATH.
	WorkerBinary string
	// Token, when set, is required as "Authorization: Bearer" on every
	// endpoint but GET /health. A non-loopback listener needs one. Each
	// worker the hive spawns gets its own credential derived from it
	// (httpapi.WorkerToken), which it requires on its API and proves its
	// heartbeats to the queen with.
	Token   string
	DataDir string // catalog under DataDir/models; config.DataDir()
	LogDir  string // worker logs; config.LogDir()

	// HF is the Hugging Face hub hf: models come from; nil: the one
	// HF_ENDPOINT and HF_TOKEN name.
	HF *hf.Client

	Logger *slog.Logger

	StopGrace     time.Duration // SIGTERM to SIGKILL when stopping a worker; 10 s
	ListenTimeout time.Duration // for a new worker's "listening" line; 30 s
	LoadStall     time.Duration // a loading worker silent this long has failed; 5 min
}

func (c *Config) setDefaults() error {
	if c.HiveID == "" {
		c.HiveID = "localhost"
	}
	if c.WorkerHost == "" {
		c.WorkerHost = "127.0.0.1"
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.StopGrace <= 0 {
		c.StopGrace = 10 * time.Second
	}
	if c.ListenTimeout <= 0 {
		c.ListenTimeout = 30 * time.Second
	}
	if c.LoadStall <= 0 {
		c.LoadStall = 5 * time.Minute
	}
	var err error
	if c.DataDir == "" {
		if c.DataDir, err = config.DataDir(); err != nil {
			return err
		}
	}
	if c.LogDir == "" {
		if c.LogDir, err = config.LogDir(); err != nil {
			return err
		}
	} else if err := os.MkdirAll(c.LogDir, 0o700); err != nil {
		return err
	}
	if err := wire.CheckHiveID(c.HiveID); err != nil {
		return err
	}
	if !config.ValidHostName(c.WorkerHost) {
		return fmt.Errorf("worker host %q is not a host name or address", c.WorkerHost)
	}
	if err := httpapi.CheckBind(c.WorkerHost, c.Token != ""); err != nil {
		return fmt.Errorf("workers: %w (set RBEE_HIVE_TOKEN: the workers' credentials derive from it)", err)
	}
	if c.QueenURL != "" {
		if err := checkHTTPURL(c.QueenURL); err != nil {
			return fmt.Errorf("queen URL: %w", err)
		}
	}
	return nil
}

// checkHTTPURL accepts http(s)://host:port[/] and nothing else: the URL is
// handed to every worker as an argument.
func checkHTTPURL(s string) error {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return err
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("%q is not an http(s) URL", s)
	case u.Hostname() == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "":
		return fmt.Errorf("%q must be http(s)://host[:port]", s)
	case u.Path != "" && u.Path != "/":
		return fmt.Errorf("%q must have no path", s)
	}
	return nil
}

// Hive is the daemon's state: its catalog, its workers and its jobs.
type Hive struct {
	cfg     Config
	log     *slog.Logger
	cat     *catalog.Catalog
	reg     *jobs.Registry
	workers *table
	client  *http.Client // to workers; no timeout, streams are long
	hub     *hub         // Hugging Face downloads

	shutdownMu sync.Mutex
	shutdown   context.CancelFunc // set by Serve
}

// New builds a hive: it opens the catalog. Serve serves it.
func New(cfg Config) (*Hive, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	log := cfg.Logger.With("hive_id", cfg.HiveID)
	cat, err := catalog.Open(filepath.Join(cfg.DataDir, "models"), log)
	if err != nil {
		return nil, err
	}
	h := &Hive{
		cfg:     cfg,
		log:     log,
		cat:     cat,
		workers: newTable(),
		client:  jobs.NewHTTPClient(),
		hub:     newHub(cfg.HF, log),
	}
	h.reg = jobs.NewRegistry(jobs.Options{
		Actor:  Actor,
		Logger: log,
		// Jobs stopping their workers may each need the stop grace.
		CloseTimeout: cfg.StopGrace + 5*time.Second,
	})
	return h, nil
}

// workerToken is worker id's credential: what the hive hands it as
// RBEE_WORKER_TOKEN, and calls it with. "" when the hive has no token.
func (h *Hive) workerToken(id string) string { return httpapi.WorkerToken(h.cfg.Token, id) }

// Serve serves the hive on ln until ctx ends or POST /v1/shutdown, then
// stops in httpapi.Daemon's order: its jobs end (a spawn still loading
// stops its worker and says why), the listener closes, then every worker
// is stopped. A listener on anything but loopback needs the Token. A hive
// serves once; stopping is no error.
func (h *Hive) Serve(ctx context.Context, ln net.Listener) error {
	defer h.cat.Close()
	host := listenHost(ln)
	if err := httpapi.CheckBind(host, h.cfg.Token != ""); err != nil {
		ln.Close()
		_ = h.reg.Close() // no job ever ran
		return fmt.Errorf("%w (set RBEE_HIVE_TOKEN)", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	h.shutdownMu.Lock()
	h.shutdown = cancel
	h.shutdownMu.Unlock()

	h.log.Info("rbee-hive listening", "addr", "http://"+ln.Addr().String(), "data_dir", h.cfg.DataDir,
		"queen_url", h.cfg.QueenURL, "auth", h.cfg.Token != "")
	err := httpapi.Daemon{
		Handler: h.Handler(httpapi.IsLoopback(host)),
		EndStreams: func() {
			h.log.Info("rbee-hive stopping")
			if err := h.reg.Close(); err != nil {
				h.log.Warn("jobs did not stop in time", "err", err)
			}
		},
		StopChildren: func() error {
			h.stopAll()
			return nil
		},
	}.Serve(ctx, ln)
	h.log.Info("rbee-hive stopped")
	return err
}

func listenHost(ln net.Listener) string {
	host, _, err := net.SplitHostPort(ln.Addr().String())
	if err != nil {
		return ln.Addr().String()
	}
	return host
}

// Shutdown asks a running hive to stop, as POST /v1/shutdown does.
func (h *Hive) Shutdown() bool {
	h.shutdownMu.Lock()
	defer h.shutdownMu.Unlock()
	if h.shutdown == nil {
		return false
	}
	h.shutdown()
	return true
}

// Handler is the hive's HTTP API. loopback adds the Host-header check that
// stops DNS rebinding, for a hive bound to a loopback address.
func (h *Hive) Handler(loopback bool) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		httpapi.WriteJSON(w, http.StatusOK, wire.HiveHealth{Status: "ok", HiveID: h.cfg.HiveID})
	})
	mux.HandleFunc("GET /v1/capabilities", func(w http.ResponseWriter, r *http.Request) {
		httpapi.WriteJSON(w, http.StatusOK, capabilities(h.cfg.HiveID))
	})
	mux.Handle("POST /v1/shutdown", httpapi.Handler(func(w http.ResponseWriter, r *http.Request) error {
		if !h.Shutdown() {
			return wire.Errorf(wire.CodeUnavailable, "this hive is not running")
		}
		httpapi.WriteJSON(w, http.StatusAccepted, map[string]string{"status": "stopping"})
		return nil
	}))
	h.reg.Mount(mux, h.dispatch)
	mux.Handle("/", httpapi.Handler(func(w http.ResponseWriter, r *http.Request) error {
		return wire.NotFound("no such endpoint: %s %s", r.Method, r.URL.Path)
	}))

	var handler http.Handler = h.authorize(mux)
	if loopback {
		handler = httpapi.LoopbackHostOnly(handler)
	}
	return handler
}

// authorize requires the token, when there is one, on everything but
// GET /health, which only says the hive is alive.
func (h *Hive) authorize(next http.Handler) http.Handler {
	gate := &httpapi.Gate{
		Token: h.cfg.Token,
		Hint:  "rbee-hive takes its token from RBEE_HIVE_TOKEN; the queen sends the one in hive-tokens/ALIAS of its config directory.",
	}
	guarded := gate.Wrap(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.URL.Path == "/health" {
			next.ServeHTTP(w, r)
			return
		}
		guarded.ServeHTTP(w, r)
	})
}
