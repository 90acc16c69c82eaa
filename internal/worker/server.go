// Package worker is llm-worker-rbee: one loaded model behind simple HTTP.
// The queen posts an inference request, then streams its tokens as SSE; the
// worker heartbeats to the queen. It is no job server to the network: its
// jobs exist only to pair the POST with its stream.
package worker

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"log/slog"
	randv2 "math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rbee/rbee/internal/engine"
	"github.com/rbee/rbee/internal/generate"
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
	HeartbeatInterval time.Duration // default 2 s
	UnwatchedTimeout  time.Duration // a job nobody streams is cancelled after this (default 30 s)
	Retain            time.Duration // finished jobs stay readable this long (default 1 min)
	PingInterval      time.Duration // keep-alive comments on quiet streams (default 10 s)

	// Device is reported while the model loads (default "cpu"); once it
	// is loaded, the model's Info says where it runs.
	Device string

	// Load loads the model, reporting progress as a fraction.
	Load func(progress func(float32)) (engine.Model, error)
}

// Server is a worker.
type Server struct {
	cfg   Config
	load  loadState
	model atomic.Pointer[engine.Model]
	queue chan *job

	mu   sync.Mutex
	jobs map[string]*job

	active  atomic.Int32
	waiting atomic.Int32
	kick    chan struct{} // asks the heartbeat loop to send now
}

// New returns a worker that has not started loading yet.
func New(cfg Config) *Server {
	if cfg.Slots <= 0 {
		cfg.Slots = 1
	}
	if cfg.QueueCap <= 0 {
		cfg.QueueCap = 16
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = 2 * time.Second
	}
	if cfg.UnwatchedTimeout <= 0 {
		cfg.UnwatchedTimeout = 30 * time.Second
	}
	if cfg.Retain <= 0 {
		cfg.Retain = time.Minute
	}
	if cfg.PingInterval <= 0 {
		cfg.PingInterval = 10 * time.Second
	}
	s := &Server{
		cfg:   cfg,
		queue: make(chan *job, cfg.QueueCap),
		jobs:  make(map[string]*job),
		kick:  make(chan struct{}, 1),
	}
	s.load = loadState{total: cfg.ModelSize, state: wire.StateLoading, changed: make(chan struct{})}
	return s
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
		s.load.set(0, wire.StateError, err.Error())
		s.nudge()
		return err
	}
	s.model.Store(&m)
	s.load.set(s.cfg.ModelSize, wire.StateReady, "")
	info := m.Info()
	slog.Info("model loaded", "in", time.Since(start).Round(time.Millisecond), "model", info.Description, "ctx", info.CtxSize, "slots", s.cfg.Slots)
	s.nudge()

	var wg sync.WaitGroup
	for range s.cfg.Slots {
		wg.Go(func() { s.runner(ctx, m) })
	}
	<-ctx.Done()
	s.cancelAll()
	wg.Wait()
	s.drain()
	return m.Close()
}

func (s *Server) runner(ctx context.Context, m engine.Model) {
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-s.queue:
			s.waiting.Add(-1)
			s.generate(m, j)
		}
	}
}

// drain ends the jobs still queued at shutdown.
func (s *Server) drain() {
	for {
		select {
		case j := <-s.queue:
			s.waiting.Add(-1)
			j.finish(wire.TypeEnd, wire.End{Type: wire.TypeEnd, StopReason: wire.StopCancelled, TokensIn: len(j.req.Prompt)})
		default:
			return
		}
	}
}

func (s *Server) generate(m engine.Model, j *job) {
	queued := time.Since(j.created)
	if !j.start() {
		return // it ended while it waited: deadline or cancelled and drained
	}
	if j.ctx.Err() != nil {
		j.finish(wire.TypeEnd, wire.End{Type: wire.TypeEnd, StopReason: wire.StopCancelled, TokensIn: len(j.req.Prompt)})
		return
	}
	s.active.Add(1)
	s.nudge()
	defer func() {
		s.active.Add(-1)
		s.nudge()
	}()
	i := 0
	res, err := generate.Run(j.ctx, m, j.req, func(text string) error {
		j.emit(wire.TypeToken, wire.NewToken(text, i))
		i++
		return nil
	})
	if err != nil {
		j.finish(wire.TypeError, wire.NewError("inference_failed", err.Error()))
		return
	}
	t := res.Timings
	t.QueueMs = float64(queued.Microseconds()) / 1000
	if t.TTFTMs > 0 {
		t.TTFTMs += t.QueueMs
	}
	t.TotalMs += t.QueueMs
	j.finish(wire.TypeEnd, wire.End{Type: wire.TypeEnd, StopReason: res.StopReason, TokensIn: res.TokensIn, TokensOut: res.TokensOut, Timings: t})
}

func (s *Server) cancelAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, j := range s.jobs {
		j.cancel()
	}
}

// submit validates and queues a request.
func (s *Server) submit(req wire.InferenceRequest) (*job, error) {
	mp := s.model.Load()
	if mp == nil {
		_, _, state, _, _ := s.load.get()
		return nil, &wire.Error{Code: wire.CodeNotReady,
			Message: "the model is not loaded (state " + state + ")", RetryAfter: 1}
	}
	greq, err := prepare(*mp, req, randv2.Uint32)
	if err != nil {
		return nil, err
	}
	j := newJob(newID("inf-"), greq)
	// Count the job as waiting before it can be taken, so the count never
	// goes below zero.
	s.waiting.Add(1)
	select {
	case s.queue <- j:
	default:
		s.waiting.Add(-1)
		j.cancel()
		return nil, &wire.Error{Code: wire.CodeQueueFull,
			Message: "the worker's queue is full; retry later", RetryAfter: 1}
	}
	s.mu.Lock()
	s.jobs[j.id] = j
	s.mu.Unlock()
	context.AfterFunc(j.ctx, func() {
		// Whatever ended the job, forget it once late readers had their time.
		time.AfterFunc(s.cfg.Retain, func() { s.forget(j.id) })
	})
	if req.TimeoutMs != nil {
		after := time.Duration(*req.TimeoutMs) * time.Millisecond
		time.AfterFunc(after, func() { j.expire(after) })
	}
	time.AfterFunc(s.cfg.UnwatchedTimeout, func() {
		if j.unwatched() {
			j.cancel()
		}
	})
	s.nudge()
	return j, nil
}

func (s *Server) forget(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.jobs, id)
}

func (s *Server) job(id string) *job {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.jobs[id]
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
		if r.Active >= r.Slots {
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

func newID(prefix string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// authorized checks the bearer token in constant time.
func (s *Server) authorized(r *http.Request) bool {
	if s.cfg.Token == "" {
		return true
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(got), []byte(s.cfg.Token)) == 1
}

// Ready reports what GET /v1/ready would answer.
func (s *Server) Ready() wire.Ready { return s.ready() }
