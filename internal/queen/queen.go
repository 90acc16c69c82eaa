// Package queen is queen-rbee: the orchestrator. It serves the job protocol
// to the keeper, keeps the worker registry from heartbeats, and wires its
// parts: scheduling routes inference straight to workers (never through a
// hive), placement decides where a worker starts, fleet forwards worker and
// model operations to the hive they concern and runs the local hive, and
// remote installs and starts hives on other machines over SSH.
package queen

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/rbee/rbee/internal/config"
	"github.com/rbee/rbee/internal/httpapi"
	"github.com/rbee/rbee/internal/jobs"
	"github.com/rbee/rbee/internal/openai"
	"github.com/rbee/rbee/internal/queen/fleet"
	"github.com/rbee/rbee/internal/queen/placement"
	"github.com/rbee/rbee/internal/queen/remote"
	"github.com/rbee/rbee/internal/queen/scheduling"
	"github.com/rbee/rbee/internal/queen/workers"
	"github.com/rbee/rbee/internal/sshx"
	"github.com/rbee/rbee/internal/wire"
)

// Actor is the narration actor of the queen's jobs.
const Actor = "queen-rbee"

// Policy chooses the worker that runs a queued request (Options.Policy).
type Policy = scheduling.Policy

// Request is what a Policy knows of a queued request.
type Request = scheduling.Request

// MostFreeSlots is the default Policy.
type MostFreeSlots = scheduling.MostFreeSlots

// Options configures a Server. Zero fields take the documented defaults.
type Options struct {
	// URL is where clients reach the queen, reported by status.
	URL string
	// LocalURL is where processes on this machine (the local hive and its
	// workers) reach the queen; URL when empty.
	LocalURL string
	// Token, when set, is required as a bearer token on every endpoint but
	// GET /health and heartbeats (which need the worker's own credential,
	// derived from its hive's token). It never leaves the queen: hives are
	// sent their own token, workers their credential. It must pass
	// httpapi.CheckToken, or Serve refuses to start.
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
	// NoCacheRouting turns off cache-aware routing: without it the next
	// turn of a conversation goes to the worker that holds its prompt
	// cache while that worker has a free slot.
	NoCacheRouting bool
	// Policy picks the worker for each queued request; MostFreeSlots.
	Policy Policy
	// Shutdown is called by POST /v1/shutdown; the daemon then stops.
	Shutdown func()
	// BindHost and Port are where the queen listens; with AdvertiseURL
	// they decide the queen URL that hives on other machines (and their
	// workers) are given. Empty: taken from URL.
	BindHost string
	Port     int
	// AdvertiseURL is queen_advertise_url of config.toml.
	AdvertiseURL string
	// HiveTokenDir holds the token of each hive; empty:
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
	// HTTP is the client for hives and workers; nil: one that keeps many
	// idle connections per worker.
	HTTP   *http.Client
	Logger *slog.Logger // slog.Default()
	Jobs   jobs.Options // Actor is set to Actor
}

// Server is the queen: the wiring of its parts, and its HTTP API.
type Server struct {
	opt     Options
	log     *slog.Logger
	jobs    *jobs.Registry
	workers *workers.Registry
	fleet   *fleet.Fleet
	remote  *remote.Lifecycle
	placer  *placement.Placer
	sched   *scheduling.Scheduler

	endOnce, stopOnce sync.Once
	endErr, stopErr   error
}

// New returns a queen. Close releases it.
func New(opt Options) *Server {
	opt = withDefaults(opt)
	s := &Server{
		opt:     opt,
		log:     opt.Logger,
		jobs:    jobs.NewRegistry(opt.Jobs),
		workers: workers.New(workers.Options{GoneAfter: opt.WorkerTimeout}),
	}
	s.fleet = fleet.New(fleet.Options{
		Hives: opt.Hives, SSHConfigHive: opt.SSHConfigHive, TokenDir: opt.HiveTokenDir,
		HTTP: opt.HTTP, HealthTimeout: opt.HealthTimeout, HiveStartTimeout: opt.HiveStartTimeout,
		HiveBinary: opt.HiveBinary, HiveLog: opt.HiveLog, QueenURL: opt.LocalURL,
		Logger: opt.Logger,
	})
	s.remote = remote.New(remote.Options{
		Fleet: s.fleet, SSH: opt.SSH, HiveStartTimeout: opt.HiveStartTimeout, WorkerBinary: opt.WorkerBinary,
		URL: opt.URL, BindHost: opt.BindHost, Port: opt.Port, AdvertiseURL: opt.AdvertiseURL,
	})
	s.placer = placement.New(placement.Options{Fleet: s.fleet, StartedNote: scheduling.KeepAliveNote(opt.KeepAlive), Logger: opt.Logger})
	s.sched = scheduling.New(scheduling.Options{
		Workers: s.workers, Jobs: s.jobs, Policy: opt.Policy,
		MaxQueue: opt.MaxQueue, LoadWait: opt.LoadWait, KeepAlive: opt.KeepAlive, Actor: Actor,
		NoCacheRouting: opt.NoCacheRouting,
		Start:          s.startWorker,
		Stop:           s.stopWorker,
		WorkerToken:    s.workerToken,
		HTTP:           opt.HTTP, Logger: opt.Logger,
	})
	return s
}

func withDefaults(opt Options) Options {
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
	return opt
}

// defaultHTTP is the client for hives and workers: the one rbee processes
// call each other with (connect and response-header timeouts, many idle
// connections per worker).
var defaultHTTP = jobs.NewHTTPClient()

// startWorker is the scheduler's way to start a worker: placement's.
func (s *Server) startWorker(ctx context.Context, j *jobs.Job, model, hive string, emit func(wire.Event)) error {
	err := s.placer.Start(ctx, j, model, hive, emit)
	if errors.Is(err, placement.ErrNowhere) {
		return scheduling.ErrNowhere
	}
	return err
}

// stopWorker is the keep-alive's way to stop a worker: worker_stop on its
// hive.
func (s *Server) stopWorker(ctx context.Context, workerID, hiveID string) error {
	h, err := s.fleet.Find(hiveID, "hive_id")
	if err != nil {
		return err
	}
	_, err = s.fleet.Run(ctx, h, wire.Operation{Operation: wire.OpWorkerStop, WorkerID: workerID}, nil)
	return err
}

// workerToken is the credential the queen calls worker workerID of hive
// hiveID with, derived from that hive's token: the one the hive handed the
// worker, which the worker requires.
func (s *Server) workerToken(hiveID, workerID string) string {
	return httpapi.WorkerToken(s.fleet.Token(hiveID), workerID)
}

// Workers is the worker registry.
func (s *Server) Workers() *workers.Registry { return s.workers }

// Serve serves the queen on ln until ctx ends, then shuts down in
// httpapi.Daemon's order: the queue refuses new requests and every job
// ends (their streams with them), the listener closes, then the local hive
// this queen started stops (which stops its workers).
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if s.opt.Token != "" {
		if err := httpapi.CheckToken(s.opt.Token); err != nil {
			ln.Close()
			return fmt.Errorf("queen_token of config.toml: %w", err)
		}
	}
	if err := s.fleet.EnsureLocalToken(); err != nil {
		ln.Close()
		return err
	}
	return httpapi.Daemon{
		Handler:      s.Handler(),
		EndStreams:   func() { s.warn(s.endStreams()) },
		StopChildren: func() error { s.warn(s.stopChildren()); return nil },
	}.Serve(ctx, ln)
}

// warn logs what went wrong in a shutdown: a job that outlives its
// cancellation or a hive that fails to stop is worth a line in the log,
// not a failed exit, since the queen did stop.
func (s *Server) warn(err error) {
	if err != nil {
		s.log.Warn("shutdown was not clean", "err", err)
	}
}

// endStreams fails the requests that wait, cancels every job and waits
// for the scheduler's loops.
func (s *Server) endStreams() error {
	s.endOnce.Do(func() {
		s.sched.Close()
		s.endErr = s.jobs.Close()
	})
	return s.endErr
}

func (s *Server) stopChildren() error {
	s.stopOnce.Do(func() { s.stopErr = s.fleet.Close() })
	return s.stopErr
}

// Close ends every job, then stops the local hive if this queen started
// it. It is safe to call more than once, and after Serve.
func (s *Server) Close() error {
	return errors.Join(s.endStreams(), s.stopChildren())
}
