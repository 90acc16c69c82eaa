package scheduling

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rbee/rbee/internal/jobs"
	"github.com/rbee/rbee/internal/queen/workers"
	"github.com/rbee/rbee/internal/testkit"
	"github.com/rbee/rbee/internal/wire"
)

// stopper is a fake Options.Stop that records the workers it stopped.
type stopper struct {
	mu      sync.Mutex
	stopped []string
	err     error
}

func (s *stopper) stop(_ context.Context, id, _ string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	s.stopped = append(s.stopped, id)
	return nil
}

func (s *stopper) list() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.stopped)
}

// newScheduler is a scheduler whose keep-alive the test drives by calling
// stopIdle with chosen times; its own loop, with a keep_alive of an hour,
// stays out of the way.
func newScheduler(t *testing.T, keepAlive time.Duration, st *stopper) (*Scheduler, *workers.Registry) {
	t.Helper()
	reg := workers.New(workers.Options{})
	jr := jobs.NewRegistry(jobs.Options{Actor: "queen-rbee"})
	s := New(Options{
		Workers: reg, Jobs: jr, Policy: MostFreeSlots{}, MaxQueue: 8,
		LoadWait: time.Minute, KeepAlive: keepAlive, Actor: "queen-rbee",
		Start:       func(context.Context, *jobs.Job, string, string, func(wire.Event)) error { return ErrNowhere },
		Stop:        st.stop,
		WorkerToken: func(string, string) string { return "" },
		Logger:      slog.New(slog.DiscardHandler),
	})
	t.Cleanup(func() {
		s.Close()
		jr.Close()
	})
	return s, reg
}

func beat(t *testing.T, reg *workers.Registry, id, state string, active int) {
	t.Helper()
	hb := wire.Heartbeat{WorkerID: id, HiveID: "h", Model: "m", URL: "http://127.0.0.1:9", State: state, Slots: 1, Active: active}
	if err := reg.Heartbeat(hb); err != nil {
		t.Fatal(err)
	}
}

func (s *Scheduler) draining(id string) bool {
	s.queue.mu.Lock()
	defer s.queue.mu.Unlock()
	return s.queue.draining[id]
}

// A worker with nothing to do for keep_alive is stopped through its hive;
// one that is busy is not.
func TestKeepAliveStopsIdleWorker(t *testing.T) {
	st := &stopper{}
	s, reg := newScheduler(t, time.Hour, st)
	beat(t, reg, "idle", wire.StateReady, 0)
	beat(t, reg, "busy", wire.StateBusy, 1)

	t0 := time.Now()
	s.stopIdle(t0) // first seen: idle from now on
	s.stopIdle(t0.Add(59 * time.Minute))
	if len(st.list()) != 0 {
		t.Fatalf("stopped before keep_alive: %v", st.list())
	}
	s.stopIdle(t0.Add(61 * time.Minute))
	testkit.WaitFor(t, "worker_stop of the idle worker", func() bool { return len(st.list()) == 1 })
	if got := st.list(); got[0] != "idle" {
		t.Fatalf("stopped %v", got)
	}
	// While it stops, nothing is given to it.
	if !s.draining("idle") {
		t.Fatal("the stopping worker still takes requests")
	}
	s.stopIdle(t0.Add(3 * time.Hour))
	if got := st.list(); !slices.Equal(got, []string{"idle"}) {
		t.Fatalf("stopped %v", got)
	}
}

// Requests in flight on a worker, or waiting in the queue for its model,
// keep it alive; the keep_alive counts from when they are gone.
func TestKeepAliveCountsFromLastWork(t *testing.T) {
	st := &stopper{}
	s, reg := newScheduler(t, time.Hour, st)
	beat(t, reg, "w", wire.StateReady, 0)

	t0 := time.Now()
	s.stopIdle(t0)
	running := reg.Acquire("w") // its one slot is taken
	waiting := newTicket(&Request{Model: "m"}, workers.Filter{Models: []string{"m"}})
	if err := s.queue.add(waiting); err != nil {
		t.Fatal(err)
	}
	s.stopIdle(t0.Add(2 * time.Hour)) // busy: idle from here on
	running()                         // the slot goes to the waiting request...
	s.queue.leave(waiting)            // ...which leaves at once
	testkit.WaitFor(t, "nothing in flight", func() bool {
		w, _ := reg.Get("w")
		return w.InFlight == 0
	})
	s.stopIdle(t0.Add(2*time.Hour + 59*time.Minute))
	if len(st.list()) != 0 {
		t.Fatalf("stopped %v an hour after it was busy", st.list())
	}
	s.stopIdle(t0.Add(3*time.Hour + time.Minute))
	testkit.WaitFor(t, "worker_stop", func() bool { return len(st.list()) == 1 })
}

// A worker no hive can stop (started by hand) is back in service, and
// left alone until another keep_alive has passed.
func TestKeepAliveStopFails(t *testing.T) {
	st := &stopper{err: errors.New("no such hive")}
	s, reg := newScheduler(t, time.Hour, st)
	beat(t, reg, "byhand", wire.StateReady, 0)
	t0 := time.Now()
	s.stopIdle(t0)
	s.stopIdle(t0.Add(2 * time.Hour))
	testkit.WaitFor(t, "the failed stop to be noted", func() bool {
		s.idle.mu.Lock()
		defer s.idle.mu.Unlock()
		return !s.idle.retry["byhand"].IsZero() && !s.idle.stopping["byhand"]
	})
	if s.draining("byhand") {
		t.Fatal("a worker that could not be stopped is out of service")
	}
	s.idle.mu.Lock()
	retry := s.idle.retry["byhand"]
	s.idle.mu.Unlock()
	st.mu.Lock()
	st.err = nil
	st.mu.Unlock()
	s.stopIdle(retry.Add(-time.Minute))
	s.stopIdle(retry.Add(time.Minute))
	testkit.WaitFor(t, "the second try", func() bool { return len(st.list()) == 1 })
}

// keep_alive 0 in config.toml keeps workers: the queen gets a negative
// KeepAlive and stops none, however long they idle.
func TestKeepAliveOff(t *testing.T) {
	st := &stopper{}
	s, reg := newScheduler(t, -1, st)
	beat(t, reg, "w", wire.StateReady, 0)
	t0 := time.Now()
	s.stopIdle(t0)
	s.stopIdle(t0.Add(1000 * time.Hour))
	// stopIdle decides (and marks) a stop before it returns.
	s.idle.mu.Lock()
	defer s.idle.mu.Unlock()
	if len(s.idle.stopping) != 0 || len(st.list()) != 0 {
		t.Fatalf("stopping %v, stopped %v", s.idle.stopping, st.list())
	}
}
