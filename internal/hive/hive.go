// Package hive is rbee-hive, the daemon that manages one machine for the
// queen: it spawns, lists and stops llm-worker-rbee processes and keeps the
// machine's model catalog, all through the job protocol. It never runs
// inference: the queen sends that straight to the workers.
package hive

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
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
type Config struct {
	Host     string // address to listen on; 127.0.0.1
	Port     int    // port to listen on; 0 picks a free one (see OnListen). rbee-hive's default is 7835.
	HiveID   string // this hive's id, passed to its workers; "localhost"
	QueenURL string // where workers send heartbeats; empty: nowhere
	// WorkerHost is the address workers listen on and advertise to the
	// queen; 127.0.0.1. A hive on another machine than its queen sets
	// the address the queen reaches this machine at; anything but
	// loopback needs RBEE_WORKER_TOKEN, which the workers then require.
	WorkerHost string
	// WorkerBinary is the llm-worker-rbee to run. Empty: the one next to
	// this executable, else the one on $PATH.
	WorkerBinary string
	// Token, when set, is required as "Authorization: Bearer" on every
	// endpoint but GET /health. A non-loopback Host needs one.
	Token   string
	DataDir string // catalog under DataDir/models; config.DataDir()
	LogDir  string // worker logs; config.LogDir()

	// HF is the Hugging Face hub hf: models come from; nil: the one
	// HF_ENDPOINT and HF_TOKEN name.
	HF *hf.Client

	// Listener, when set, is served instead of listening on Host:Port.
	Listener net.Listener
	// OnListen is called with the address once the hive serves it.
	OnListen func(addr net.Addr)
	Logger   *slog.Logger

	StopGrace     time.Duration // SIGTERM to SIGKILL when stopping a worker; 10 s
	ListenTimeout time.Duration // for a new worker's "listening" line; 30 s
	LoadStall     time.Duration // a loading worker silent this long has failed; 5 min
}

func (c *Config) setDefaults() error {
	if c.Host == "" {
		c.Host = "127.0.0.1"
	}
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
	switch {
	case !config.ValidAlias(c.HiveID):
		return fmt.Errorf("hive id %q must be 1 to 63 letters, digits, '.', '_' or '-'", c.HiveID)
	case c.Port < 0 || c.Port > 65535:
		return fmt.Errorf("port %d is out of range", c.Port)
	case !config.ValidHostName(c.WorkerHost):
		return fmt.Errorf("worker host %q is not a host name or address", c.WorkerHost)
	}
	if err := httpapi.CheckBind(c.WorkerHost, os.Getenv("RBEE_WORKER_TOKEN") != ""); err != nil {
		return fmt.Errorf("workers: %w (set RBEE_WORKER_TOKEN)", err)
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
	// workerToken is what the workers this hive starts require (they
	// inherit RBEE_WORKER_TOKEN); the hive's own calls to them carry it.
	workerToken string

	shutdownMu sync.Mutex
	shutdown   context.CancelFunc // set by Run
}

// New builds a hive: it opens the catalog. Run serves it.
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
		cfg:         cfg,
		log:         log,
		cat:         cat,
		workers:     newTable(),
		client:      &http.Client{},
		workerToken: os.Getenv("RBEE_WORKER_TOKEN"),
		hub:         newHub(cfg.HF, log),
	}
	h.reg = jobs.NewRegistry(jobs.Options{
		Actor:  Actor,
		Logger: log,
		// Jobs stopping their workers may each need the stop grace.
		CloseTimeout: cfg.StopGrace + 5*time.Second,
	})
	return h, nil
}

// Run serves the hive until ctx ends or POST /v1/shutdown, then stops
// every worker and returns. Stopping is no error.
func Run(ctx context.Context, cfg Config) error {
	ln := cfg.Listener
	if ln == nil {
		host := cfg.Host
		if host == "" {
			host = "127.0.0.1"
		}
		if err := httpapi.CheckBind(host, cfg.Token != ""); err != nil {
			return fmt.Errorf("%w (set RBEE_HIVE_TOKEN)", err)
		}
		if cfg.Port < 0 || cfg.Port > 65535 {
			return fmt.Errorf("port %d is out of range", cfg.Port)
		}
		var err error
		if ln, err = net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(cfg.Port))); err != nil {
			return err
		}
		cfg.Listener = ln
	} else if err := httpapi.CheckBind(listenHost(ln), cfg.Token != ""); err != nil {
		ln.Close()
		return err
	}
	h, err := New(cfg)
	if err != nil {
		ln.Close()
		return err
	}
	return h.serve(ctx, ln)
}

func listenHost(ln net.Listener) string {
	host, _, err := net.SplitHostPort(ln.Addr().String())
	if err != nil {
		return ln.Addr().String()
	}
	return host
}

func (h *Hive) serve(ctx context.Context, ln net.Listener) error {
	defer h.cat.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	h.shutdownMu.Lock()
	h.shutdown = cancel
	h.shutdownMu.Unlock()

	srv := httpapi.NewServer(h.Handler(httpapi.IsLoopback(listenHost(ln))))
	// The server outlives ctx: jobs still stream their last events while
	// the workers stop.
	srvCtx, stopServer := context.WithCancel(context.Background())
	defer stopServer()
	served := make(chan error, 1)
	go func() { served <- httpapi.Serve(srvCtx, srv, ln, 5*time.Second) }()
	h.log.Info("rbee-hive listening", "addr", "http://"+ln.Addr().String(), "data_dir", h.cfg.DataDir,
		"queen_url", h.cfg.QueenURL, "auth", h.cfg.Token != "")
	if h.cfg.OnListen != nil {
		h.cfg.OnListen(ln.Addr())
	}

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-served:
		served = nil
	}
	h.log.Info("rbee-hive stopping: stopping all workers")
	if err := h.reg.Close(); err != nil {
		h.log.Warn("jobs did not stop in time", "err", err)
	}
	h.stopAll()
	stopServer()
	if served != nil {
		serveErr = <-served
	}
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return serveErr
	}
	h.log.Info("rbee-hive stopped")
	return nil
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
	if h.cfg.Token == "" {
		return next
	}
	want := []byte("Bearer " + h.cfg.Token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.URL.Path == "/health" {
			next.ServeHTTP(w, r)
			return
		}
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			httpapi.WriteError(w, r, wire.Errorf(wire.CodeUnauthorized, "a valid bearer token is required"))
			return
		}
		next.ServeHTTP(w, r)
	})
}
