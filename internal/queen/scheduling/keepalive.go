package scheduling

import (
	"context"
	"sync"
	"time"
)

// stopTimeout bounds the worker_stop of an idle worker.
const stopTimeout = 30 * time.Second

// idleWatch remembers since when each worker has had nothing to do, for
// keep_alive.
type idleWatch struct {
	mu       sync.Mutex
	since    map[string]time.Time // worker id: idle since
	stopping map[string]bool      // a worker_stop is under way or done
	retry    map[string]time.Time // a stop failed: not again before
}

// keepAlive stops the workers that had no request running on them and
// none waiting for them for Options.KeepAlive, through worker_stop on
// their hive. It runs until the queen closes.
func (s *Scheduler) keepAlive() {
	every := min(max(s.opt.KeepAlive/4, 50*time.Millisecond), 10*time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.closing:
			return
		case now := <-t.C:
			s.stopIdle(now)
		}
	}
}

// stopIdle looks at every worker once. A worker counts as busy while its
// heartbeats report requests running or queued on it, while the queen has
// requests in flight there, or while a request waits in the queue that it
// could serve. A worker is first seen idle when the queen first looks, so
// a new one gets the whole keep_alive.
func (s *Scheduler) stopIdle(now time.Time) {
	if s.opt.KeepAlive <= 0 {
		return // keep_alive 0: workers stay until stopped by hand
	}
	iw := &s.idle
	iw.mu.Lock()
	defer iw.mu.Unlock()
	if iw.since == nil {
		iw.since, iw.stopping, iw.retry = map[string]time.Time{}, map[string]bool{}, map[string]time.Time{}
	}
	seen := map[string]bool{}
	for _, w := range s.workers.List() {
		if !w.Available() || w.HiveID == "" {
			continue
		}
		id := w.WorkerID
		seen[id] = true
		since, ok := iw.since[id]
		if !ok || w.Active > 0 || w.QueueLen > 0 || w.InFlight > 0 || s.queue.wants(w) {
			iw.since[id] = now
			continue
		}
		if now.Sub(since) < s.opt.KeepAlive || iw.stopping[id] || now.Before(iw.retry[id]) {
			continue
		}
		if !s.queue.drain(id) {
			iw.since[id] = now // a request was just given to it
			continue
		}
		iw.stopping[id] = true
		s.log.Info("stopping an idle worker", "worker_id", id, "hive", w.HiveID, "model", w.Model, "idle", now.Sub(since).Round(time.Second), "keep_alive", s.opt.KeepAlive)
		s.loops.Go(func() { s.stopWorker(id, w.HiveID) })
	}
	// Workers that are gone (stopped, or died) are forgotten, and leave
	// the draining set.
	for id := range iw.since {
		if !seen[id] {
			delete(iw.since, id)
			delete(iw.stopping, id)
			delete(iw.retry, id)
			s.queue.undrain(id)
		}
	}
}

// stopWorker sends worker_stop for an idle worker to its hive. When that
// fails (a worker started by hand that no hive knows, a hive that does not
// answer), the worker is back in service and tried again after another
// keep_alive.
func (s *Scheduler) stopWorker(id, hiveID string) {
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	go func() {
		select {
		case <-s.closing:
			cancel()
		case <-ctx.Done():
		}
	}()
	err := s.opt.Stop(ctx, id, hiveID)
	if err == nil {
		s.log.Info("stopped an idle worker", "worker_id", id, "hive", hiveID)
		return
	}
	s.log.Warn("cannot stop an idle worker; trying again after keep_alive", "worker_id", id, "hive", hiveID, "err", err)
	iw := &s.idle
	iw.mu.Lock()
	delete(iw.stopping, id)
	iw.retry[id] = time.Now().Add(s.opt.KeepAlive)
	iw.mu.Unlock()
	s.queue.undrain(id)
}
