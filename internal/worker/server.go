// Package worker is llm-worker-rbee: one loaded model behind simple HTTP.
// The queen posts an inference request, then streams its tokens as SSE; the
// worker heartbeats to the queen. It is no job server to the network: its
// jobs (a jobs.Registry, the one job store and stream loop of rbee) exist
// only to pair the POST with its stream.
package worker

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"github.com/rbee/rbee/internal/engine"
	"github.com/rbee/rbee/internal/httpapi"
	"github.com/rbee/rbee/internal/jobs"
	"github.com/rbee/rbee/internal/wire"
)

// Config configures a worker.
type Config struct {
	WorkerID  string
	HiveID    string
	ModelName string // the model's name in heartbeats and /v1/ready
	ModelSize int64  // bytes, for loading progress
	URL       string // where the queen reaches this worker
	QueenURL  string // heartbeats go here; empty: no heartbeats
	Token     string // when set, every endpoint but /health needs it as a bearer token
	Loopback  bool   // bound to loopback: refuse foreign Host headers

	Slots             int           // generations at once (default 1)
	QueueCap          int           // requests waiting for a slot (default 16)
	HeartbeatInterval time.Duration // default jobs.HeartbeatInterval (2 s)
	UnwatchedTimeout  time.Duration // a job nobody streams is cancelled after this (default 10 s)
	Retain            time.Duration // finished jobs stay readable this long (default 1 min)
	// PingInterval is how often a quiet stream gets a keep-alive comment
	// (default HeartbeatInterval): a reader gives a stream up after
	// jobs.StreamIdleTimeout of silence.
	PingInterval time.Duration
	// WriteTimeout bounds each write of a stream (default
	// jobs.WriteTimeout): a reader that stops reading is cut off, and its
	// generation cancelled.
	WriteTimeout time.Duration

	// Device is reported while the model loads (default "cpu"); once it
	// is loaded, the model's Info says where it runs.
	Device string

	// Load loads the model, reporting progress as a fraction.
	Load func(progress func(float32)) (engine.Model, error)
}

// streamEvents is how many events a job keeps for its stream: its tokens
// are at most its context, and a stream that attaches late (within
// UnwatchedTimeout) must still get every one of a long generation.
const streamEvents = 1 << 17

// Server is a worker.
type Server struct {
	cfg   Config
	load  loadState
	model atomic.Pointer[engine.Model]
	chat  atomic.Pointer[chat] // the loaded model's chat template
	jobs  *jobs.Registry
	gate  httpapi.Gate
	// slots holds a token per generation running; generations wait their
	// turn on it in arrival order.
	slots chan struct{}

	active  atomic.Int32
	waiting atomic.Int32
	kick    chan struct{} // asks the heartbeat loop to send now
}

// New returns a worker that has not started loading yet. Run (or Serve)
// must be called: it also releases what New started.
func New(cfg Config) *Server {
	if cfg.Slots <= 0 {
		cfg.Slots = 1
	}
	if cfg.QueueCap <= 0 {
		cfg.QueueCap = 16
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = jobs.HeartbeatInterval
	}
	if cfg.UnwatchedTimeout <= 0 {
		// The queen streams a job the moment it is created: only a client
		// that never will leaves it unwatched, holding a place for nothing.
		cfg.UnwatchedTimeout = 10 * time.Second
	}
	if cfg.Retain <= 0 {
		cfg.Retain = time.Minute
	}
	if cfg.PingInterval <= 0 {
		cfg.PingInterval = cfg.HeartbeatInterval
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = jobs.WriteTimeout
	}
	s := &Server{
		cfg: cfg,
		jobs: jobs.NewRegistry(jobs.Options{
			Actor:         "llm-worker-rbee",
			IDPrefix:      "inf-",
			Retain:        cfg.Retain,
			BufferEvents:  streamEvents,
			PingInterval:  cfg.PingInterval,
			WriteTimeout:  cfg.WriteTimeout,
			AttachTimeout: cfg.UnwatchedTimeout,
		}),
		// Workers listen on loopback or have a token (CheckBind): with no
		// token everyone who reaches the worker is from this machine.
		gate:  httpapi.Gate{Token: cfg.Token},
		slots: make(chan struct{}, cfg.Slots),
		kick:  make(chan struct{}, 1),
	}
	s.load = loadState{total: cfg.ModelSize, state: wire.StateLoading, changed: make(chan struct{})}
	return s
}

// Serve serves the worker's API on ln while it loads the model and
// generates, until ctx ends or the load fails (whose error it returns). It
// shuts down in httpapi.Daemon's order: open inference streams end (with
// an end event of stop_reason cancelled, then [DONE]), the listener closes,
// then the model is freed once no generation uses it.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ran := make(chan error, 1)
	go func() {
		ran <- s.Run(ctx)
		cancel() // a failed load ends serving too
	}()
	err := httpapi.Daemon{Handler: s.Handler(), EndStreams: s.endStreams}.Serve(ctx, ln)
	cancel()
	return errors.Join(<-ran, err)
}

// endStreams cancels every job and waits (briefly) for their terminal
// events, so that each open stream ends with them.
func (s *Server) endStreams() {
	if err := s.jobs.Close(); err != nil {
		slog.Warn("some generations did not stop at once", "err", err)
	}
}

// Run loads the model, then serves generations until ctx is done. It
// returns the load error, if any; on shutdown it cancels every job and waits
// for the generations to end before it frees the model.
func (s *Server) Run(ctx context.Context) error {
	hbDone := make(chan struct{})
	go func() { defer close(hbDone); s.heartbeats(ctx) }()
	defer func() { <-hbDone }()

	start := time.Now()
	m, err := s.cfg.Load(func(f float32) {
		s.load.set(int64(f*float32(s.cfg.ModelSize)), wire.StateLoading, "")
	})
	if err != nil {
		s.jobs.Close()
		s.load.set(0, wire.StateError, err.Error())
		s.nudge()
		return err
	}
	info := m.Info()
	slog.Info("model loaded", "in", time.Since(start).Round(time.Millisecond), "model", info.Description, "ctx", info.CtxSize, "slots", s.cfg.Slots)
	s.chat.Store(newChat(info))
	s.model.Store(&m)
	s.load.set(s.cfg.ModelSize, wire.StateReady, "")
	s.nudge()

	<-ctx.Done()
	s.endStreams()
	// Holding every slot proves that no generation uses the model any
	// more: a job that still waits for one sees its cancelled context.
	for range s.cfg.Slots {
		s.slots <- struct{}{}
	}
	return m.Close()
}

func (s *Server) ready() wire.Ready {
	_, _, state, errText, _ := s.load.get()
	r := wire.Ready{
		State:    state,
		WorkerID: s.cfg.WorkerID,
		Model:    s.cfg.ModelName,
		Slots:    s.cfg.Slots,
		Active:   int(s.active.Load()),
		QueueLen: int(s.waiting.Load()),
		QueueCap: s.cfg.QueueCap,
		Device:   cmp.Or(s.cfg.Device, "cpu"),
		Error:    errText,
	}
	if mp := s.model.Load(); mp != nil {
		info := (*mp).Info()
		r.CtxSize, r.Device = info.CtxSize, info.Device
		r.GPUUse = wire.GPUUse{DeviceName: info.DeviceName, GPULayers: info.GPULayers, DeviceMemoryBytes: info.DeviceMemoryBytes}
		r.Ready = state == wire.StateReady
		if c, ok := (*mp).(engine.CacheReporter); ok {
			if st := c.CacheStats(); st.Enabled {
				r.Cache = &wire.CacheStats{Sequences: st.Sequences, Tokens: st.Tokens, RAMBytes: st.RAMBytes,
					BudgetBytes: st.BudgetBytes, PromptTokens: st.PromptTokens, CachedTokens: st.CachedTokens}
			}
		}
		if r.Ready && r.Active >= r.Slots {
			r.State = wire.StateBusy
		}
	}
	return r
}

func (s *Server) nudge() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Ready reports what GET /v1/ready would answer.
func (s *Server) Ready() wire.Ready { return s.ready() }
