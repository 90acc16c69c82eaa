package worker

import (
	"context"
	"log/slog"
	randv2 "math/rand/v2"
	"os"
	"time"

	"github.com/rbee/rbee/internal/jobs"
	"github.com/rbee/rbee/internal/wire"
)

const (
	maxBackoff       = 30 * time.Second
	heartbeatTimeout = 5 * time.Second
)

// heartbeats posts the worker's state to the queen every interval, and at
// once whenever the state changes. While the queen cannot be reached it
// backs off (with jitter) up to maxBackoff and keeps serving.
func (s *Server) heartbeats(ctx context.Context) {
	if s.cfg.QueenURL == "" {
		return
	}
	queen := &jobs.Client{BaseURL: s.cfg.QueenURL, Token: s.cfg.Token}
	wait := time.Duration(0)
	failures := 0
	for {
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			_ = s.sendHeartbeat(context.WithoutCancel(ctx), queen, wire.StateGone)
			return
		case <-s.kick:
			timer.Stop()
		case <-timer.C:
		}
		if err := s.sendHeartbeat(ctx, queen, ""); err != nil {
			failures++
			wait = min(s.cfg.HeartbeatInterval<<min(failures, 5), maxBackoff)
			wait += time.Duration(randv2.Int64N(int64(wait/4) + 1))
			if failures == 1 || failures%10 == 0 {
				slog.Warn("heartbeat failed; retrying", "queen", s.cfg.QueenURL, "failures", failures, "next_in", wait.Round(time.Millisecond), "err", err)
			}
			continue
		}
		if failures > 0 {
			slog.Info("heartbeat delivered again", "queen", s.cfg.QueenURL, "after_failures", failures)
		}
		failures = 0
		wait = s.cfg.HeartbeatInterval
	}
}

// sendHeartbeat posts one heartbeat; state overrides the current state when
// not empty (a worker going away says so).
func (s *Server) sendHeartbeat(ctx context.Context, queen *jobs.Client, state string) error {
	r := s.ready()
	if state != "" {
		r.State = state
	}
	ctx, cancel := context.WithTimeout(ctx, heartbeatTimeout)
	defer cancel()
	return queen.Heartbeat(ctx, wire.Heartbeat{
		WorkerID: s.cfg.WorkerID, HiveID: s.cfg.HiveID, Model: s.cfg.ModelName, URL: s.cfg.URL,
		State: r.State, Slots: r.Slots, Active: r.Active, QueueLen: r.QueueLen, Device: r.Device, PID: os.Getpid(),
		GPUUse: r.GPUUse, Cache: r.Cache,
	})
}
