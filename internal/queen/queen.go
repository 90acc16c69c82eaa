// Package queen is queen-rbee: the orchestrator. It serves the job protocol
// to the keeper, keeps the worker registry from heartbeats, routes inference
// straight to workers (never through a hive), forwards worker and model
// operations to the hive they concern, and runs the local hive process.
package queen

import (
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/rbee/rbee/internal/config"
	"github.com/rbee/rbee/internal/jobs"
	"github.com/rbee/rbee/internal/openai"
	"github.com/rbee/rbee/internal/queen/workers"
	"github.com/rbee/rbee/internal/sshx"
)

// Actor is the narration actor of the queen's jobs.
const Actor = "queen-rbee"

// Options configures a Server. Zero fields take the documented defaults.
type Options struct {
	// URL is where clients reach the queen, reported by status.
	URL string
	// LocalURL is where processes on this machine (the local hive and its
	// workers) reach the queen; URL when empty.
	LocalURL string
	// Token, when set, is required as a bearer token on every endpoint but
	// GET /health, heartbeats included; it is also sent to hives and workers.
	Token string
	// Loopback refuses requests whose Host header is not a loopback name,
	// against DNS rebinding; set it when bound to loopback.
	Loopback bool
	// APIKeys checks the keys of the OpenAI-compatible API (rbee key
	// create); nil: no key store. Once it holds a key, every API request
	// needs one. Keys grant the API only, never the job protocol.
	APIKeys openai.KeyChecker

	// WorkerTimeout is the heartbeat silence after which a worker is gone; 8 s.
	WorkerTimeout time.Duration
	// Hives lists the configured hives; config.LoadHives. It is called for
	// each operation, so edits of hives.conf need no restart.
	Hives func() ([]config.Hive, error)
	// HiveBinary is the rbee-hive program for the local hive; empty: the one
	// next to this executable, else $PATH.
	HiveBinary string
	// HiveLog is where the local hive's output goes; empty:
	// config.LogDir()/rbee-hive-localhost.log.
	HiveLog string
	// HealthTimeout bounds each hive /health probe of list and status; 1.5 s.
	HealthTimeout time.Duration
	// HiveStartTimeout bounds waiting for a started hive to answer; 30 s.
	HiveStartTimeout time.Duration
	// LoadWait bounds how long infer waits for a loading worker; 5 min.
	LoadWait time.Duration
	// MaxQueue is how many requests for one model may wait for a free
	// slot before new ones get queue_full; config.DefaultMaxQueue.
	MaxQueue int
	// KeepAlive is how long a worker may sit idle before the queen stops
	// it through its hive; config.DefaultKeepAlive; negative: never.
	KeepAlive time.Duration
	// Policy picks the worker for each queued request; MostFreeSlots.
	Policy Policy
	// Shutdown is called by POST /v1/shutdown; the daemon then stops.
	Shutdown func()
	// BindHost and Port are where the queen listens; with AdvertiseURL
	// they decide the queen URL that hives on other machines (and their
	// workers) are given (see queenURLFor). Empty: taken from URL.
	BindHost string
	Port     int
	// AdvertiseURL is queen_advertise_url of config.toml.
	AdvertiseURL string
	// HiveTokenDir holds the token of each remote hive; empty:
	// config.ConfigDir()/hive-tokens.
	HiveTokenDir string
	// SSH configures the logins to remote hives' hosts; zero: ssh's
	// defaults (~/.ssh keys and known_hosts, $SSH_AUTH_SOCK).
	SSH sshx.Options
	// SSHConfigHive looks up hive aliases that Hives lacks;
	// config.SSHConfigHive (~/.ssh/config).
	SSHConfigHive func(alias string) (config.Hive, bool, error)
	// WorkerBinary is the llm-worker-rbee that hive_install copies; empty:
	// the one beside the rbee-hive it copies.
	WorkerBinary string
	// HTTP is the client for hives and workers; nil: http.DefaultClient.
	HTTP   *http.Client
	Logger *slog.Logger // slog.Default()
	Jobs   jobs.Options // Actor is set to Actor
}

// Server is the queen.
type Server struct {
	opt     Options
	log     *slog.Logger
	jobs    *jobs.Registry
	workers *workers.Registry
	local   *localHive
	spawns  spawnGroup // workers started for requests
	tokens  hiveTokens // of remote hives
	queue   *queue     // requests waiting for a worker slot
	idle    idleWatch  // workers without work, for keep_alive
	closing chan struct{}
	loops   sync.WaitGroup // the queue's and keep_alive's

	closeOnce sync.Once
	closeErr  error
}

// New returns a queen. Close releases it.
func New(opt Options) *Server {
	if opt.LocalURL == "" {
		opt.LocalURL = opt.URL
	}
	if opt.Hives == nil {
		opt.Hives = config.LoadHives
	}
	if opt.HealthTimeout <= 0 {
		opt.HealthTimeout = 1500 * time.Millisecond
	}
	if opt.HiveStartTimeout <= 0 {
		opt.HiveStartTimeout = 30 * time.Second
	}
	if opt.LoadWait <= 0 {
		opt.LoadWait = 5 * time.Minute
	}
	if opt.MaxQueue <= 0 {
		opt.MaxQueue = config.DefaultMaxQueue
	}
	if opt.KeepAlive == 0 {
		opt.KeepAlive = config.DefaultKeepAlive
	}
	if opt.Policy == nil {
		opt.Policy = MostFreeSlots{}
	}
	if opt.HTTP == nil {
		opt.HTTP = defaultHTTP
	}
	if opt.SSHConfigHive == nil {
		opt.SSHConfigHive = config.SSHConfigHive
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	opt.Jobs.Actor = Actor
	if opt.Jobs.Logger == nil {
		opt.Jobs.Logger = opt.Logger
	}
	s := &Server{
		opt:     opt,
		log:     opt.Logger,
		jobs:    jobs.NewRegistry(opt.Jobs),
		workers: workers.New(workers.Options{GoneAfter: opt.WorkerTimeout}),
		tokens:  hiveTokens{dir: opt.HiveTokenDir},
		closing: make(chan struct{}),
	}
	s.local = &localHive{s: s}
	s.queue = newQueue(s.workers, opt.Policy, opt.MaxQueue)
	s.loops.Go(func() { s.queue.watch(s.closing) })
	if opt.KeepAlive > 0 {
		s.loops.Go(s.keepAlive)
	}
	return s
}

// defaultHTTP is the client for hives and workers: the default transport
// keeps two idle connections per host, and a worker serving many streams
// would open and close one for nearly every request.
var defaultHTTP = &http.Client{Transport: func() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 256
	t.MaxIdleConns = 4096
	return t
}()}

// Workers is the worker registry.
func (s *Server) Workers() *workers.Registry { return s.workers }

// Close cancels every job, then stops the local hive if this queen started
// it (which stops its workers). It is safe to call more than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		close(s.closing)
		s.queue.close()
		jerr := s.jobs.Close()
		herr := s.local.stopOwned()
		s.loops.Wait()
		s.closeErr = errors.Join(jerr, herr)
	})
	return s.closeErr
}
