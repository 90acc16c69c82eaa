package queen

import (
	"slices"
	"testing"
	"time"

	"github.com/rbee/rbee/internal/config"
	"github.com/rbee/rbee/internal/wire"
)

// The keep-alive is driven here by calling stopIdle with chosen times; the
// queen's own loop, with a keep_alive of an hour, stays out of the way.
func keepAliveQueen(t *testing.T, hives ...config.Hive) *testQueen {
	t.Helper()
	return newQueen(t, hives, func(o *Options) { o.KeepAlive = time.Hour })
}

// A worker with nothing to do for keep_alive is stopped through its hive;
// one that is busy is not.
func TestKeepAliveStopsIdleWorker(t *testing.T) {
	var q *testQueen
	h := newPlaceHive(t, &q, "h", nil, wire.HiveCapabilities{}, "")
	q = keepAliveQueen(t, h.hive)
	idle := newFakeWorker(t, "idle", "x")
	busy := newFakeWorker(t, "busy", "x")
	hb := idle.heartbeat("m", wire.StateReady, 0)
	hb.HiveID = "h"
	q.beat(t, hb)
	hb = busy.heartbeat("m", wire.StateBusy, 1)
	hb.HiveID = "h"
	q.beat(t, hb)

	t0 := time.Now()
	q.stopIdle(t0) // first seen: idle from now on
	q.stopIdle(t0.Add(59 * time.Minute))
	if len(h.stopped()) != 0 {
		t.Fatalf("stopped before keep_alive: %v", h.stopped())
	}
	q.stopIdle(t0.Add(61 * time.Minute))
	waitFor(t, "worker_stop of the idle worker", func() bool { return len(h.stopped()) == 1 })
	if got := h.stopped(); got[0] != "idle" {
		t.Fatalf("stopped %v", got)
	}
	// While it stops, nothing is given to it.
	q.queue.mu.Lock()
	draining := q.queue.draining["idle"]
	q.queue.mu.Unlock()
	if !draining {
		t.Fatal("the stopping worker still takes requests")
	}
	q.stopIdle(t0.Add(3 * time.Hour))
	if got := h.stopped(); !slices.Equal(got, []string{"idle"}) {
		t.Fatalf("stopped %v", got)
	}
}

// Requests in flight on a worker, or waiting in the queue for its model,
// keep it alive; the keep_alive counts from when they are gone.
func TestKeepAliveCountsFromLastWork(t *testing.T) {
	var q *testQueen
	h := newPlaceHive(t, &q, "h", nil, wire.HiveCapabilities{}, "")
	q = keepAliveQueen(t, h.hive)
	w := newFakeWorker(t, "w", "x")
	w.gate = make(chan struct{})
	hb := w.heartbeat("m", wire.StateReady, 0)
	hb.HiveID = "h"
	q.beat(t, hb)

	t0 := time.Now()
	q.stopIdle(t0)
	running := q.start(t, inferOp("m", "1"))
	waitFor(t, "a request to run", func() bool { return w.requestCount() == 1 })
	queued := q.start(t, inferOp("m", "2"))
	waitFor(t, "a request to queue", func() bool { return q.queued("m") == 1 })
	q.stopIdle(t0.Add(2 * time.Hour)) // busy: idle from here on
	w.gate <- struct{}{}
	if err := <-running; err != nil {
		t.Fatal(err)
	}
	w.gate <- struct{}{}
	if err := <-queued; err != nil {
		t.Fatal(err)
	}
	waitFor(t, "nothing in flight", func() bool {
		wk, _ := q.Workers().Get("w")
		return wk.InFlight == 0
	})
	q.stopIdle(t0.Add(2*time.Hour + 59*time.Minute))
	if len(h.stopped()) != 0 {
		t.Fatalf("stopped %v an hour after it was busy", h.stopped())
	}
	q.stopIdle(t0.Add(3*time.Hour + time.Minute))
	waitFor(t, "worker_stop", func() bool { return len(h.stopped()) == 1 })
}

// A worker no configured hive knows (started by hand) is left alone until
// another keep_alive has passed.
func TestKeepAliveUnknownHive(t *testing.T) {
	q := keepAliveQueen(t)
	w := newFakeWorker(t, "byhand", "x")
	hb := w.heartbeat("m", wire.StateReady, 0)
	hb.HiveID = "nowhere"
	q.beat(t, hb)
	t0 := time.Now()
	q.stopIdle(t0)
	q.stopIdle(t0.Add(2 * time.Hour))
	waitFor(t, "the failed stop to be noted", func() bool {
		q.idle.mu.Lock()
		defer q.idle.mu.Unlock()
		return !q.idle.retry["byhand"].IsZero() && !q.idle.stopping["byhand"]
	})
	q.queue.mu.Lock()
	draining := q.queue.draining["byhand"]
	q.queue.mu.Unlock()
	if draining {
		t.Fatal("a worker that could not be stopped is out of service")
	}
	if _, err := q.run(t, inferOp("m", "p")); err != nil {
		t.Fatalf("the worker no longer serves: %v", err)
	}
}

// keep_alive 0 in config.toml keeps workers: the queen gets a negative
// KeepAlive and stops none, however long they idle.
func TestKeepAliveOff(t *testing.T) {
	var q *testQueen
	h := newPlaceHive(t, &q, "h", nil, wire.HiveCapabilities{}, "")
	q = newQueen(t, []config.Hive{h.hive}, func(o *Options) { o.KeepAlive = -1 })
	w := newFakeWorker(t, "w", "x")
	hb := w.heartbeat("m", wire.StateReady, 0)
	hb.HiveID = "h"
	q.beat(t, hb)
	t0 := time.Now()
	q.stopIdle(t0)
	q.stopIdle(t0.Add(1000 * time.Hour))
	// stopIdle decides (and marks) a stop before it returns.
	q.idle.mu.Lock()
	defer q.idle.mu.Unlock()
	if len(q.idle.stopping) != 0 || len(h.stopped()) != 0 {
		t.Fatalf("stopping %v, stopped %v", q.idle.stopping, h.stopped())
	}
}
