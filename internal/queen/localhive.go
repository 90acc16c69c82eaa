package queen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
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

// hiveProgram is the hive's executable name.
const hiveProgram = "rbee-hive"

// Bounds of starting and stopping the local hive.
const (
	hiveGrace    = 10 * time.Second // SIGTERM to SIGKILL: the hive stops its workers meanwhile
	stopWait     = 30 * time.Second // an adopted hive asked to shut down
	pollInterval = 100 * time.Millisecond
)

// localHive is the rbee-hive process on this machine: started by this queen
// (and then stopped with it), or adopted when one already answered.
type localHive struct {
	s *Server

	mu      sync.Mutex // one start or stop at a time
	proc    *supervise.Process
	stopped bool // proc is being stopped on purpose
}

// binary finds rbee-hive: beside this executable, which is how the four
// programs are installed, else on $PATH.
func (l *localHive) binary() (string, error) {
	if l.s.opt.HiveBinary != "" {
		return l.s.opt.HiveBinary, nil
	}
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), hiveProgram)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	p, err := exec.LookPath(hiveProgram)
	if err != nil {
		return "", wire.Errorf(wire.CodeNotFound, "cannot find %s next to queen-rbee or on $PATH; run make build", hiveProgram)
	}
	return p, nil
}

func (l *localHive) logPath(h config.Hive) (string, error) {
	if l.s.opt.HiveLog != "" {
		return l.s.opt.HiveLog, nil
	}
	dir, err := config.LogDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, hiveProgram+"-"+h.Alias+".log"), nil
}

// start starts the local hive, or adopts the one already answering on its
// port, and returns once it answers /health.
func (l *localHive) start(ctx context.Context, j *jobs.Job, h config.Hive) (wire.HiveStatus, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch st := l.s.probe(ctx, h); {
	case st.State == wire.HiveOnline:
		how := "already running; adopted it"
		if l.running() {
			how = fmt.Sprintf("already running (pid %d)", l.proc.PID())
		}
		j.Narrate("start", fmt.Sprintf("Hive %s at %s is %s", h.Alias, st.URL, how))
		return st, nil
	case l.running():
		return wire.HiveStatus{}, wire.Errorf(wire.CodeHiveUnreachable, "the %s this queen started (pid %d) runs but does not answer at %s (%s); stop it with: rbee hive stop", hiveProgram, l.proc.PID(), st.URL, st.Error)
	}
	path, err := l.binary()
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
	args := []string{"--port", strconv.Itoa(h.HivePort), "--hive-id", h.Alias, "--queen-url", l.s.opt.LocalURL}
	p, err := supervise.Start(supervise.Spec{Path: path, Args: args, Env: l.env(), Stdout: logf, Stderr: logf, Grace: hiveGrace})
	logf.Close() // the child has its own descriptor now
	if err != nil {
		return wire.HiveStatus{}, fmt.Errorf("starting %s: %w", path, err)
	}
	j.Narrate("start", fmt.Sprintf("Started %s (pid %d); waiting for it at %s; its log is %s", hiveProgram, p.PID(), hiveURL(h), logPath))

	deadline := time.NewTimer(l.s.opt.HiveStartTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		select {
		case <-p.Done():
			return wire.HiveStatus{}, wire.Errorf(wire.CodeInternal, "%s exited before it answered (%v): %s (log: %s)", hiveProgram, p.Err(), lastLine(logPath, from), logPath)
		case <-ctx.Done():
			_ = p.Stop()
			return wire.HiveStatus{}, context.Cause(ctx)
		case <-deadline.C:
			_ = p.Stop()
			return wire.HiveStatus{}, wire.Errorf(wire.CodeHiveUnreachable, "%s did not answer at %s within %s; its last words: %s (log: %s)", hiveProgram, hiveURL(h), l.s.opt.HiveStartTimeout, lastLine(logPath, from), logPath)
		case <-tick.C:
		}
		if st := l.s.probe(ctx, h); st.State == wire.HiveOnline {
			l.proc, l.stopped = p, false
			go l.watch(p, logPath, from)
			j.Narrate("start", fmt.Sprintf("Hive %s is up at %s", h.Alias, st.URL))
			return st, nil
		}
	}
}

// env is this process's environment with the tokens of the queen's own
// choosing: the hive requires RBEE_HIVE_TOKEN from the queen, and passes
// RBEE_WORKER_TOKEN to its workers, which send it with their heartbeats and
// require it from the queen. Tokens inherited from a shell would lock the
// queen out of its own hive.
func (l *localHive) env() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RBEE_HIVE_TOKEN=") && !strings.HasPrefix(kv, "RBEE_WORKER_TOKEN=") {
			env = append(env, kv)
		}
	}
	if l.s.opt.Token != "" {
		env = append(env, "RBEE_HIVE_TOKEN="+l.s.opt.Token, "RBEE_WORKER_TOKEN="+l.s.opt.Token)
	}
	return env
}

// watch logs a hive that dies on its own, with its last line of output.
func (l *localHive) watch(p *supervise.Process, logPath string, from int64) {
	<-p.Done()
	l.mu.Lock()
	expected := l.stopped || l.proc != p
	l.mu.Unlock()
	if !expected {
		l.s.log.Warn("the local hive exited", "pid", p.PID(), "err", p.Err(), "last_line", lastLine(logPath, from), "log", logPath)
	}
}

func (l *localHive) running() bool { return l.proc != nil && !l.proc.Exited() }

// stop stops the local hive: the process this queen started, or an adopted
// one by asking it to shut down.
func (l *localHive) stop(ctx context.Context, j *jobs.Job, h config.Hive) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.running() {
		j.Narrate("stop", fmt.Sprintf("Stopping %s (pid %d) and its workers", hiveProgram, l.proc.PID()))
		return l.stopProcLocked()
	}
	st := l.s.probe(ctx, h)
	if st.State != wire.HiveOnline {
		j.Narrate("stop", fmt.Sprintf("Hive %s is not running", h.Alias))
		return nil
	}
	j.Narrate("stop", fmt.Sprintf("Asking hive %s at %s to shut down", h.Alias, st.URL))
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, st.URL+"/v1/shutdown", http.NoBody)
	if err != nil {
		return err
	}
	if err := l.s.do(req, nil); err != nil {
		return wire.Errorf(wire.CodeHiveUnreachable, "hive %s did not take the shutdown request: %v", h.Alias, err)
	}
	deadline := time.Now().Add(stopWait)
	for time.Now().Before(deadline) {
		if l.s.probe(ctx, h).State != wire.HiveOnline {
			j.Narrate("stop", fmt.Sprintf("Hive %s stopped", h.Alias))
			return nil
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(pollInterval):
		}
	}
	return wire.Errorf(wire.CodeInternal, "hive %s still answers %s after it was asked to shut down", h.Alias, stopWait)
}

// stopOwned stops the hive if this queen started it; an adopted hive is
// someone else's and keeps running. It is bounded by the stop grace.
func (l *localHive) stopOwned() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.running() {
		return nil
	}
	return l.stopProcLocked()
}

func (l *localHive) stopProcLocked() error {
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
