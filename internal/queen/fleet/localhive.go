package fleet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rbee/rbee/internal/config"
	"github.com/rbee/rbee/internal/jobs"
	"github.com/rbee/rbee/internal/supervise"
	"github.com/rbee/rbee/internal/wire"
)

// Bounds of starting and stopping the local hive.
const (
	hiveGrace = 10 * time.Second // SIGTERM to SIGKILL: the hive stops its workers meanwhile
	stopWait  = 30 * time.Second // an adopted hive asked to shut down
)

// LocalHive is the rbee-hive process on this machine: started by this queen
// (and then stopped with it), or adopted when one already answered.
type LocalHive struct {
	f *Fleet

	mu      sync.Mutex // one start or stop at a time
	proc    *supervise.Process
	stopped bool // proc is being stopped on purpose
}

// Binary finds rbee-hive: beside this executable, which is how the four
// programs are installed, else on $PATH.
func (l *LocalHive) Binary() (string, error) {
	if l.f.opt.HiveBinary != "" {
		return l.f.opt.HiveBinary, nil
	}
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), HiveProgram)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	p, err := exec.LookPath(HiveProgram)
	if err != nil {
		return "", wire.Errorf(wire.CodeNotFound, "cannot find %s next to queen-rbee or on $PATH; run make build", HiveProgram)
	}
	return p, nil
}

// PID is the process id of the hive this queen started and that runs; 0
// when there is none.
func (l *LocalHive) PID() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.running() {
		return 0
	}
	return l.proc.PID()
}

func (l *LocalHive) logPath(h config.Hive) (string, error) {
	if l.f.opt.HiveLog != "" {
		return l.f.opt.HiveLog, nil
	}
	dir, err := config.LogDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, HiveProgram+"-"+h.Alias+".log"), nil
}

// Start starts the local hive, or adopts the one already answering on its
// port, and returns once it answers /health.
func (l *LocalHive) Start(ctx context.Context, j *jobs.Job, h config.Hive) (wire.HiveStatus, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	// A hive started by hand reads this same token, so the one adopted
	// here and its workers use it too.
	if err := l.f.EnsureLocalToken(); err != nil {
		return wire.HiveStatus{}, err
	}
	switch st := l.f.Probe(ctx, h); {
	case st.State == wire.HiveOnline:
		how := "already running; adopted it"
		if l.running() {
			how = fmt.Sprintf("already running (pid %d)", l.proc.PID())
		}
		j.Narrate("start", fmt.Sprintf("Hive %s at %s is %s", h.Alias, st.URL, how))
		return st, nil
	case l.running():
		return wire.HiveStatus{}, wire.Errorf(wire.CodeHiveUnreachable, "the %s this queen started (pid %d) runs but does not answer at %s (%s); stop it with: rbee hive stop", HiveProgram, l.proc.PID(), st.URL, st.Error)
	}
	path, err := l.Binary()
	if err != nil {
		return wire.HiveStatus{}, err
	}
	env, err := l.env()
	if err != nil {
		return wire.HiveStatus{}, err
	}
	logPath, err := l.logPath(h)
	if err != nil {
		return wire.HiveStatus{}, err
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return wire.HiveStatus{}, err
	}
	// The child writes to the file itself (no pipe for us to drain), and
	// what it wrote since this offset is where its last words are.
	from, _ := logf.Seek(0, io.SeekEnd)
	args := []string{"--port", strconv.Itoa(h.HivePort), "--hive-id", h.Alias, "--queen-url", l.f.opt.QueenURL}
	p, err := supervise.Start(supervise.Spec{Path: path, Args: args, Env: env, Stdout: logf, Stderr: logf, Grace: hiveGrace})
	logf.Close() // the child has its own descriptor now
	if err != nil {
		return wire.HiveStatus{}, fmt.Errorf("starting %s: %w", path, err)
	}
	j.Narrate("start", fmt.Sprintf("Started %s (pid %d); waiting for it at %s; its log is %s", HiveProgram, p.PID(), URL(h), logPath))
	st, err := l.awaitUp(ctx, h, p, logPath, from)
	if err != nil {
		_ = p.Stop()
		return wire.HiveStatus{}, err
	}
	l.proc, l.stopped = p, false
	go l.watch(p, logPath, from)
	j.Narrate("start", fmt.Sprintf("Hive %s is up at %s", h.Alias, st.URL))
	return st, nil
}

// awaitUp polls the started hive until it answers /health, exits, or the
// start timeout passes.
func (l *LocalHive) awaitUp(ctx context.Context, h config.Hive, p *supervise.Process, logPath string, from int64) (wire.HiveStatus, error) {
	deadline := time.NewTimer(l.f.opt.HiveStartTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		select {
		case <-p.Done():
			return wire.HiveStatus{}, wire.Errorf(wire.CodeInternal, "%s exited before it answered (%v): %s (log: %s)", HiveProgram, p.Err(), lastLine(logPath, from), logPath)
		case <-ctx.Done():
			return wire.HiveStatus{}, context.Cause(ctx)
		case <-deadline.C:
			return wire.HiveStatus{}, wire.Errorf(wire.CodeHiveUnreachable, "%s did not answer at %s within %s; its last words: %s (log: %s)", HiveProgram, URL(h), l.f.opt.HiveStartTimeout, lastLine(logPath, from), logPath)
		case <-tick.C:
		}
		if st := l.f.Probe(ctx, h); st.State == wire.HiveOnline {
			return st, nil
		}
	}
}

// env is this process's environment with the token of the queen's own
// choosing: the hive requires RBEE_HIVE_TOKEN, the local hive's own token
// (hive-tokens/localhost, never the queen's), and derives each worker's
// credential from it. Tokens inherited from a shell would lock the queen
// out of its own hive.
func (l *LocalHive) env() ([]string, error) {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RBEE_HIVE_TOKEN=") && !strings.HasPrefix(kv, "RBEE_WORKER_TOKEN=") {
			env = append(env, kv)
		}
	}
	tok, _, err := l.f.Tokens.Ensure(LocalAlias)
	if err != nil {
		return nil, fmt.Errorf("making the local hive's token: %w", err)
	}
	return append(env, "RBEE_HIVE_TOKEN="+tok), nil
}

// watch logs a hive that dies on its own, with its last line of output.
func (l *LocalHive) watch(p *supervise.Process, logPath string, from int64) {
	<-p.Done()
	l.mu.Lock()
	expected := l.stopped || l.proc != p
	l.mu.Unlock()
	if !expected {
		l.f.log.Warn("the local hive exited", "pid", p.PID(), "err", p.Err(), "last_line", lastLine(logPath, from), "log", logPath)
	}
}

func (l *LocalHive) running() bool { return l.proc != nil && !l.proc.Exited() }

// Stop stops the local hive: the process this queen started, or an adopted
// one by asking it to shut down.
func (l *LocalHive) Stop(ctx context.Context, j *jobs.Job, h config.Hive) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.running() {
		j.Narrate("stop", fmt.Sprintf("Stopping %s (pid %d) and its workers", HiveProgram, l.proc.PID()))
		return l.stopProcLocked()
	}
	st := l.f.Probe(ctx, h)
	if st.State != wire.HiveOnline {
		j.Narrate("stop", fmt.Sprintf("Hive %s is not running", h.Alias))
		return nil
	}
	j.Narrate("stop", fmt.Sprintf("Asking hive %s at %s to shut down", h.Alias, st.URL))
	if err := l.f.Shutdown(ctx, h, stopWait); err != nil {
		return err
	}
	j.Narrate("stop", fmt.Sprintf("Hive %s stopped", h.Alias))
	return nil
}

// StopOwned stops the hive if this queen started it; an adopted hive is
// someone else's and keeps running. It is bounded by the stop grace.
func (l *LocalHive) StopOwned() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.running() {
		return nil
	}
	return l.stopProcLocked()
}

func (l *LocalHive) stopProcLocked() error {
	p := l.proc
	l.stopped = true
	err := p.Stop()
	l.proc = nil
	return err
}

// lastLine returns the last non-empty line a child wrote to its log since
// offset from: usually why it died.
func lastLine(path string, from int64) string {
	f, err := os.Open(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	defer f.Close()
	end, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return "(unreadable log)"
	}
	start := max(from, end-8<<10)
	buf := make([]byte, end-start)
	if _, err := f.ReadAt(buf, start); err != nil && !errors.Is(err, io.EOF) {
		return "(unreadable log)"
	}
	lines := bytes.Split(bytes.TrimSpace(buf), []byte("\n"))
	last := string(bytes.TrimSpace(lines[len(lines)-1]))
	if last == "" {
		return "(it wrote nothing)"
	}
	if len(last) > 300 {
		last = last[:300] + "..."
	}
	return last
}
