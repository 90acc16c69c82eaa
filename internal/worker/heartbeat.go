package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	randv2 "math/rand/v2"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/rbee/rbee/internal/wire"
)

const maxBackoff = 30 * time.Second

// heartbeats posts the worker's state to the queen every interval, and at
// once whenever the state changes. While the queen cannot be reached it
// backs off (with jitter) up to maxBackoff and keeps serving.
func (s *Server) heartbeats(ctx context.Context) {
	if s.cfg.QueenURL == "" {
		return
	}
	client := &http.Client{Timeout: 5 * time.Second}
	url := strings.TrimSuffix(s.cfg.QueenURL, "/") + "/v1/workers/heartbeat"
	wait := time.Duration(0)
	failures := 0
	for {
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			s.sendHeartbeat(context.Background(), client, url, wire.StateGone)
			return
		case <-s.kick:
			timer.Stop()
		case <-timer.C:
		}
		if err := s.sendHeartbeat(ctx, client, url, ""); err != nil {
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
func (s *Server) sendHeartbeat(ctx context.Context, client *http.Client, url, state string) error {
	r := s.ready()
	if state != "" {
		r.State = state
	}
	hb := wire.Heartbeat{
		WorkerID: s.cfg.WorkerID, HiveID: s.cfg.HiveID, Model: s.cfg.ModelName, URL: s.cfg.URL,
		State: r.State, Slots: r.Slots, Active: r.Active, QueueLen: r.QueueLen, Device: r.Device, PID: os.Getpid(),
		GPUUse: r.GPUUse,
	}
	body, _ := json.Marshal(hb)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if s.cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+s.cfg.Token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("queen answered %s", resp.Status)
	}
	return nil
}
