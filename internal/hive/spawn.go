package hive

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/rbee/rbee/internal/httpapi"
	"github.com/rbee/rbee/internal/jobs"
	"github.com/rbee/rbee/internal/supervise"
	"github.com/rbee/rbee/internal/wire"
)

// progressEvery throttles the loading progress relayed into a spawn job:
// llama.cpp reports many times a second, a person needs a few.
const progressEvery = 200 * time.Millisecond

// Causes of a spawn's loading phase ending early.
var (
	errWorkerExited = errors.New("the worker exited")
	errLoadStalled  = errors.New("loading stalled")
)

// spawn starts a worker for model and relays its start into the job: the
// narration, the loading progress, then the WorkerInfo as the result once
// the worker is ready. Whatever goes wrong on the way, the worker is
// stopped and the error says what the worker said last.
func (h *Hive) spawn(j *jobs.Job, model wire.ModelInfo, device string) error {
	bin, err := h.workerBinary()
	if err != nil {
		return wire.Errorf(wire.CodeWorkerFailed, "%v", err)
	}
	id := newWorkerID()
	w, err := h.startWorker(bin, id, model, device)
	if err != nil {
		return err
	}
	go h.reap(w)
	info := h.workers.infoOf(w)
	h.narrate(j, id, "worker_start", fmt.Sprintf("started worker %s (pid %d) for model %s on %s", id, info.PID, model.ID, device))

	ready := false
	defer func() {
		if !ready {
			h.stop(w)
		}
	}()
	url, err := h.awaitListening(j.Context(), w)
	if err != nil {
		return err
	}
	h.workers.update(w, func(i *wire.WorkerInfo) { i.URL = url })
	h.narrate(j, id, "worker_load", fmt.Sprintf("worker %s listens at %s; loading %s", id, url, model.Path))
	if err := h.awaitLoaded(j, w, url); err != nil {
		return err
	}
	info = h.workers.update(w, func(i *wire.WorkerInfo) { i.State = wire.StateReady })
	if err := h.cat.Touch(model.ID); err != nil {
		h.log.Warn("cannot record the model's use", "model", model.ID, "err", err)
	}
	ready = true
	h.narrate(j, id, "worker_ready", fmt.Sprintf("worker %s is ready at %s", id, url))
	j.Emit(wire.NewResult(info))
	return nil
}

// startWorker starts the process and puts it in the table.
func (h *Hive) startWorker(bin, id string, model wire.ModelInfo, device string) (*worker, error) {
	logPath := h.workerLog(id)
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, wire.Errorf(wire.CodeWorkerFailed, "cannot open the worker log: %v", err)
	}
	args := []string{
		"--model", model.Path, "--model-id", model.ID,
		"--port", "0", "--host", h.cfg.WorkerHost,
		"--worker-id", id, "--hive-id", h.cfg.HiveID, "--device", device,
	}
	if h.cfg.QueenURL != "" {
		args = append(args, "--queen-url", h.cfg.QueenURL)
	}
	fmt.Fprintf(logf, "--- %s rbee-hive starts %s %s\n", time.Now().Format(time.RFC3339), bin, strings.Join(args, " "))
	stderr := newTail(8 << 10)
	stdout := newFirstLine(logf)
	proc, err := supervise.Start(supervise.Spec{
		Path:   bin,
		Args:   args,
		Env:    workerEnv(h.workerToken(id)),
		Stdout: stdout,
		Stderr: io.MultiWriter(logf, stderr),
		Grace:  h.cfg.StopGrace,
	})
	if err != nil {
		logf.Close()
		return nil, wire.Errorf(wire.CodeWorkerFailed, "cannot start %s: %v", bin, err)
	}
	w := &worker{
		id:     id,
		proc:   proc,
		stderr: stderr,
		log:    logf,
		gone:   make(chan struct{}),
		info: wire.WorkerInfo{
			WorkerID:  id,
			HiveID:    h.cfg.HiveID,
			Model:     model.ID,
			PID:       proc.PID(),
			Device:    device,
			State:     wire.StateLoading,
			StartedAt: time.Now().UTC(),
		},
	}
	w.firstLine = stdout.lines
	if !h.workers.add(w) {
		_ = proc.Stop()
		logf.Close()
		return nil, wire.Errorf(wire.CodeUnavailable, "the hive is shutting down")
	}
	h.log.Info("worker started", "worker_id", id, "pid", proc.PID(), "model", model.ID, "log", logPath)
	return w, nil
}

// awaitListening waits for the worker's first stdout line and returns the
// URL it names.
func (h *Hive) awaitListening(ctx context.Context, w *worker) (string, error) {
	t := time.NewTimer(h.cfg.ListenTimeout)
	defer t.Stop()
	select {
	case line := <-w.firstLine:
		url, err := parseListeningOn(line, !httpapi.IsLoopback(h.cfg.WorkerHost))
		if err != nil {
			return "", wire.Errorf(wire.CodeWorkerFailed, "worker %s did not start properly: %v", w.id, err)
		}
		return url, nil
	case <-w.proc.Done():
		return "", wire.Errorf(wire.CodeWorkerFailed, "worker %s exited (%s) before it listened; %s",
			w.id, exitText(w.proc.Err()), w.stderr.said())
	case <-t.C:
		return "", wire.Errorf(wire.CodeSpawnTimeout, "worker %s did not say where it listens within %s; %s",
			w.id, h.cfg.ListenTimeout, w.stderr.said())
	case <-ctx.Done():
		return "", context.Cause(ctx)
	}
}

// awaitLoaded follows the worker's /v1/loading/progress stream until the
// model is loaded, relaying progress into the job. The worker dying, the
// load failing, or the stream going silent for LoadStall all end it.
func (h *Hive) awaitLoaded(j *jobs.Job, w *worker, url string) error {
	ctx, cancel := context.WithCancelCause(j.Context())
	defer cancel(nil)
	go func() {
		select {
		case <-w.proc.Done():
			cancel(errWorkerExited)
		case <-ctx.Done():
		}
	}()
	stall := time.AfterFunc(h.cfg.LoadStall, func() { cancel(errLoadStalled) })
	defer stall.Stop()

	var last time.Time
	c := jobs.Client{BaseURL: url, HTTP: h.client, Token: h.workerToken(w.id)}
	_, err := c.StreamPath(ctx, "/v1/loading/progress", func(ev wire.Event) error {
		stall.Reset(h.cfg.LoadStall)
		if ev.Type == wire.TypeProgress && (time.Since(last) >= progressEvery || ev.Done >= ev.Total) {
			last = time.Now()
			j.Emit(ev)
		}
		return nil
	})
	if err == nil {
		return nil // the result event: loaded
	}
	if j.Context().Err() != nil {
		return context.Cause(j.Context())
	}
	var remote *wire.Error
	if errors.As(err, &remote) && remote.Status == 0 {
		// The worker said why; it exits on its own or is stopped by spawn.
		return wire.Errorf(wire.CodeLoadFailed, "worker %s could not load its model: %s", w.id, remote.Message)
	}
	if errors.Is(context.Cause(ctx), errLoadStalled) {
		return wire.Errorf(wire.CodeSpawnTimeout, "worker %s reported no loading progress for %s; %s",
			w.id, h.cfg.LoadStall, w.stderr.said())
	}
	// A worker that dies breaks the stream a moment before it is reaped.
	select {
	case <-w.proc.Done():
		return wire.Errorf(wire.CodeWorkerFailed, "worker %s exited (%s) while loading its model; %s",
			w.id, exitText(w.proc.Err()), w.stderr.said())
	case <-time.After(time.Second):
	}
	return wire.Errorf(wire.CodeWorkerFailed, "lost worker %s while it loaded: %v; %s", w.id, err, w.stderr.said())
}

// workerBinary finds llm-worker-rbee: the configured one, else the one
// installed next to this executable, else the one on $PATH.
func (h *Hive) workerBinary() (string, error) {
	if p := h.cfg.WorkerBinary; p != "" {
		if !isExecutable(p) {
			return "", fmt.Errorf("worker binary %s is not an executable file", p)
		}
		return p, nil
	}
	if exe, err := os.Executable(); err == nil {
		if p := filepath.Join(filepath.Dir(exe), WorkerBinaryName); isExecutable(p) {
			return p, nil
		}
	}
	p, err := exec.LookPath(WorkerBinaryName)
	if err != nil {
		return "", fmt.Errorf("cannot find %s next to rbee-hive or on $PATH (or pass --worker-binary)", WorkerBinaryName)
	}
	return p, nil
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0
}

// workerEnv is the hive's environment without its own secret, which the
// worker must not hold (it would let it speak for every worker of the
// hive), and with the worker's own credential instead, when there is one.
func workerEnv(credential string) []string {
	env := os.Environ()
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, "RBEE_HIVE_TOKEN=") && !strings.HasPrefix(kv, "RBEE_WORKER_TOKEN=") {
			out = append(out, kv)
		}
	}
	if credential != "" {
		out = append(out, "RBEE_WORKER_TOKEN="+credential)
	}
	return out
}

// workerLog is where a worker's output goes: LogDir/<id>.log, that is
// worker-<hex>.log.
func (h *Hive) workerLog(id string) string { return filepath.Join(h.cfg.LogDir, id+".log") }

func newWorkerID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "worker-" + hex.EncodeToString(b[:])
}
