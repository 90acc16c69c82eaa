package worker

import (
	"errors"
	randv2 "math/rand/v2"
	"time"

	"github.com/rbee/rbee/internal/engine"
	"github.com/rbee/rbee/internal/generate"
	"github.com/rbee/rbee/internal/jobs"
	"github.com/rbee/rbee/internal/wire"
)

var inferOp = wire.Operation{Operation: wire.OpInfer}

// submit validates a request and queues it as a job whose stream the
// client reads next.
func (s *Server) submit(req wire.InferenceRequest) (*jobs.Job, error) {
	mp := s.model.Load()
	if _, _, state, errText, _ := s.load.get(); mp == nil || state != wire.StateReady {
		if state == wire.StateError {
			return nil, wire.Errorf(wire.CodeWorkerFailed, "the worker failed and must be restarted: %s", errText)
		}
		return nil, &wire.Error{Code: wire.CodeNotReady,
			Message: "the model is not loaded (state " + state + ")", RetryAfter: 1}
	}
	greq, parse, err := prepare(*mp, s.chat.Load(), req, randv2.Uint32)
	if err != nil {
		return nil, err
	}
	if !s.enqueue() {
		return nil, &wire.Error{Code: wire.CodeQueueFull,
			Message: "the worker's queue is full; retry later", RetryAfter: 1}
	}
	var timeout time.Duration
	if req.TimeoutMs != nil {
		timeout = time.Duration(*req.TimeoutMs) * time.Millisecond
	}
	created := time.Now()
	j, err := s.jobs.Create(inferOp, func(j *jobs.Job) error {
		return s.infer(j, *mp, greq, parse, created, timeout)
	}, jobs.CreateOptions{CancelWhenUnwatched: true, QuietCancel: true})
	if err != nil {
		s.waiting.Add(-1)
		return nil, err
	}
	s.nudge()
	return j, nil
}

// enqueue counts a request as waiting unless QueueCap already are.
func (s *Server) enqueue() bool {
	for {
		n := s.waiting.Load()
		if int(n) >= s.cfg.QueueCap {
			return false
		}
		if s.waiting.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// infer is the run function of an inference job: it waits for a slot (at
// most timeout, when set), then generates. Every way it ends is the job's
// terminal event: end (stop_reason cancelled when the job was cancelled,
// by DELETE, a dropped stream or shutdown), or an error.
func (s *Server) infer(j *jobs.Job, m engine.Model, req generate.Request, parse *parsing, created time.Time, timeout time.Duration) error {
	ctx := j.Context()
	var expired <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		expired = t.C
	}
	got := false
	select {
	case s.slots <- struct{}{}:
		got = true
	case <-ctx.Done():
	case <-expired:
		s.waiting.Add(-1)
		return wire.Errorf(wire.CodeDeadline, "no slot became free within %s", timeout)
	}
	s.waiting.Add(-1)
	if ctx.Err() != nil {
		// Cancelled while it waited (or just as it got its slot).
		if got {
			s.release()
		}
		j.Emit(wire.NewEnd(wire.StopCancelled, len(req.Prompt), 0, wire.Timings{}))
		return nil
	}
	queued := time.Since(created)
	s.active.Add(1)
	s.nudge()
	defer func() {
		s.active.Add(-1)
		s.release()
		s.nudge()
	}()
	out := newOutput(j, parse)
	res, err := generate.Run(ctx, m, req, out.piece)
	if err != nil {
		return s.failure(err)
	}
	if out.finish() && res.StopReason == wire.StopEOS {
		res.StopReason = wire.StopToolCalls
	}
	t := res.Timings
	t.QueueMs = float64(queued.Microseconds()) / 1000
	if t.TTFTMs > 0 {
		t.TTFTMs += t.QueueMs
	}
	t.TotalMs += t.QueueMs
	end := wire.NewEnd(res.StopReason, res.TokensIn, res.TokensOut, t)
	end.TokensCached = res.TokensCached
	j.Emit(end)
	return nil
}

func (s *Server) release() { <-s.slots }

// failure is the error a failed generation ends its stream with. A model
// that can no longer be trusted puts the worker in the error state, which
// the next heartbeat (sent at once) tells the queen, and refuses new
// requests.
func (s *Server) failure(err error) error {
	var se *engine.SamplingError
	switch {
	case errors.As(err, &se):
		return wire.BadRequest("%v", se)
	case errors.Is(err, engine.ErrContextFull):
		return wire.Errorf(wire.CodeContextLength, "%v", err)
	case errors.Is(err, engine.ErrModelFailed):
		s.load.set(s.cfg.ModelSize, wire.StateError, err.Error())
		s.nudge()
		return wire.Errorf(wire.CodeWorkerFailed, "%v", err)
	default:
		return wire.Errorf(wire.CodeInternal, "%v", err)
	}
}

// cancel cancels a job; it reports whether the job was still running.
func (s *Server) cancel(id string) (j *jobs.Job, running bool) {
	j, ok := s.jobs.Get(id)
	if !ok {
		return nil, false
	}
	select {
	case <-j.Finished():
	default:
		running = true
	}
	s.jobs.Cancel(id)
	return j, running
}
