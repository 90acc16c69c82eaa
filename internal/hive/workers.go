package hive

import (
	"context"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rbee/rbee/internal/supervise"
	"github.com/rbee/rbee/internal/wire"
	"github.com/rbee/rbee/internal/workerclient"
)

// worker is one llm-worker-rbee process of this hive.
type worker struct {
	id     string
	proc   *supervise.Process
	stderr *tail
	log    *os.File // closed by the reaper
	// firstLine gets the first line of its stdout: where it listens.
	firstLine <-chan string
	gone      chan struct{} // closed by the reaper once the worker left the table

	// Guarded by table.mu.
	info     wire.WorkerInfo
	stopping bool // stopped on purpose, so its exit is no surprise
}

// table is the hive's workers. A worker is in it from the moment its
// process starts until its reaper saw it exit.
type table struct {
	mu     sync.Mutex
	m      map[string]*worker
	closed bool // the hive is stopping: no new workers
}

func newTable() *table { return &table{m: make(map[string]*worker)} }

// add registers w, unless the hive is stopping.
func (t *table) add(w *worker) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.m[w.id] = w
	return true
}

func (t *table) remove(w *worker) (info wire.WorkerInfo, stopping bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.m, w.id)
	w.info.State = wire.StateGone
	return w.info, w.stopping
}

func (t *table) get(id string) (*worker, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	w, ok := t.m[id]
	return w, ok
}

func (t *table) infoOf(w *worker) wire.WorkerInfo {
	t.mu.Lock()
	defer t.mu.Unlock()
	return w.info
}

func (t *table) update(w *worker, fn func(*wire.WorkerInfo)) wire.WorkerInfo {
	t.mu.Lock()
	defer t.mu.Unlock()
	fn(&w.info)
	return w.info
}

func (t *table) markStopping(w *worker) {
	t.mu.Lock()
	w.stopping = true
	t.mu.Unlock()
}

// all returns the workers, oldest first.
func (t *table) all() []*worker {
	t.mu.Lock()
	defer t.mu.Unlock()
	ws := make([]*worker, 0, len(t.m))
	for _, w := range t.m {
		ws = append(ws, w)
	}
	slices.SortFunc(ws, func(a, b *worker) int {
		if c := a.info.StartedAt.Compare(b.info.StartedAt); c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	})
	return ws
}

// usingModel returns the workers that serve the model id.
func (t *table) usingModel(id string) []*worker {
	var out []*worker
	for _, w := range t.all() {
		if t.infoOf(w).Model == id {
			out = append(out, w)
		}
	}
	return out
}

// close refuses new workers and returns those left.
func (t *table) close() []*worker {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	return t.all()
}

// reap is the one goroutine that waits for a worker's exit: it takes the
// worker out of the table, so a worker that died (or was killed) on its own
// disappears from worker_list, and says why in the hive's log.
func (h *Hive) reap(w *worker) {
	<-w.proc.Done()
	err := w.proc.Err()
	info, stopping := h.workers.remove(w)
	// The process is reaped, so its output has been copied: the log is
	// complete.
	_ = w.log.Close()
	log := h.log.With("worker_id", w.id, "pid", info.PID, "model", info.Model)
	switch {
	case stopping:
		log.Info("worker stopped")
	default:
		log.Warn("worker exited on its own", "exit", exitText(err), "last_stderr", w.stderr.lastLine())
	}
	close(w.gone)
}

// stop stops a worker gracefully (SIGTERM, grace, SIGKILL of its process
// group) and waits until it has left the table.
func (h *Hive) stop(w *worker) wire.WorkerInfo {
	h.workers.markStopping(w)
	_ = w.proc.Stop()
	<-w.gone
	return h.workers.infoOf(w)
}

// stopMany stops workers in parallel, so n workers take one grace period,
// not n.
func (h *Hive) stopMany(ws []*worker) []wire.WorkerInfo {
	out := make([]wire.WorkerInfo, len(ws))
	var wg sync.WaitGroup
	for i, w := range ws {
		wg.Go(func() { out[i] = h.stop(w) })
	}
	wg.Wait()
	return out
}

// stopAll stops every worker for good: the hive is exiting.
func (h *Hive) stopAll() {
	ws := h.workers.close()
	if len(ws) > 0 {
		h.log.Info("stopping workers", "count", len(ws))
	}
	h.stopMany(ws)
}

// refresh asks a listening worker its state (ready, busy, error), so that
// worker_list shows what the worker says now rather than what it said when
// it became ready. A worker that does not answer keeps its last state.
func (h *Hive) refresh(ctx context.Context, w *worker) wire.WorkerInfo {
	info := h.workers.infoOf(w)
	if info.URL == "" || info.State == wire.StateLoading {
		return info
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	wc := workerclient.Client{BaseURL: info.URL, HTTP: h.client, Token: h.workerToken(w.id)}
	r, err := wc.Ready(ctx)
	if err != nil || r.State == "" {
		return info
	}
	return h.workers.update(w, func(i *wire.WorkerInfo) {
		if i.State != wire.StateGone {
			i.State = r.State
		}
	})
}

// listInfo refreshes and returns every worker's info, oldest first; never
// nil, so the JSON is [] rather than null.
func (h *Hive) listInfo(ctx context.Context) []wire.WorkerInfo {
	ws := h.workers.all()
	out := make([]wire.WorkerInfo, len(ws))
	var wg sync.WaitGroup
	for i, w := range ws {
		wg.Go(func() { out[i] = h.refresh(ctx, w) })
	}
	wg.Wait()
	return out
}
