package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/rbee/rbee/internal/cli/term"
	"github.com/rbee/rbee/internal/config"
	"github.com/rbee/rbee/internal/supervise"
)

const (
	// queenStartTimeout bounds the wait for a started queen's /health.
	queenStartTimeout = 10 * time.Second
	// queenGrace is how long a queen may take to stop its hive and the
	// hive's workers after SIGTERM before its group is killed.
	queenGrace = 20 * time.Second
)

// queenProcess is a queen child this command started; *supervise.Process
// is one.
type queenProcess interface {
	Done() <-chan struct{}
	Err() error
	Stop() error
}

// args are the queen-rbee flags for listening at a.
func (a queenAddr) args() []string {
	args := []string{"--port", a.port}
	if a.host != "" {
		args = append(args, "--host", a.host)
	}
	return args
}

// findBinary finds a program of rbee next to the rbee executable, else on
// $PATH, so that ./bin/rbee runs the ./bin daemons it was built with.
func (a *App) findBinary(name string) (string, error) {
	if a.BinDir != "" {
		p := filepath.Join(a.BinDir, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("cannot find %s next to rbee (in %s) or on $PATH; build it with `make build`", name, a.BinDir)
	}
	return p, nil
}

func (a *App) startQueenProcess(_ context.Context, addr queenAddr, log io.Writer) (queenProcess, error) {
	path, err := a.findBinary("queen-rbee")
	if err != nil {
		return nil, err
	}
	p, err := supervise.Start(supervise.Spec{Path: path, Args: addr.args(), Stdout: log, Stderr: log, Grace: queenGrace})
	if err != nil {
		return nil, fmt.Errorf("starting %s: %w", path, err)
	}
	return p, nil
}

// startedQueen is a queen this command started for itself and stops when
// it is done.
type startedQueen struct {
	proc queenProcess
	log  *childLog
}

// launchQueen starts a queen as a child of this process and waits until it
// answers. The child dies with us: supervise gives it a parent-death signal.
func (a *App) launchQueen(ctx context.Context, qc *queenConn) (*startedQueen, error) {
	addr, err := qc.localAddr()
	if err != nil {
		return nil, err
	}
	log, err := openLog("queen-rbee")
	if err != nil {
		return nil, err
	}
	start := a.startQueen
	if start == nil {
		start = a.startQueenProcess
	}
	proc, err := start(ctx, addr, log.f)
	if err != nil {
		log.close()
		return nil, err
	}
	sq := &startedQueen{proc: proc, log: log}
	if err := waitQueen(ctx, qc, proc.Done(), log); err != nil {
		_ = sq.stop()
		return nil, err
	}
	return sq, nil
}

// stop stops the queen, which stops the hive it started, which stops its
// workers.
func (sq *startedQueen) stop() error {
	err := sq.proc.Stop()
	sq.log.close()
	return err
}

// waitQueen polls the queen's /health until it answers, the process exits
// (done), ctx ends or queenStartTimeout passes.
func waitQueen(ctx context.Context, qc *queenConn, done <-chan struct{}, log *childLog) error {
	deadline := time.NewTimer(queenStartTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		err := qc.health(ctx)
		var nq *noQueenError
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			return context.Cause(ctx)
		case !errors.As(err, &nq):
			return err
		}
		select {
		case <-done:
			return fmt.Errorf("queen-rbee exited before it answered at %s: %s", qc.url, log.lastLine())
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-deadline.C:
			return fmt.Errorf("queen-rbee did not answer at %s within %s; see %s", qc.url, queenStartTimeout, log.path)
		case <-tick.C:
		}
	}
}

// childLog is the log file of a daemon this command starts, appended to so
// that a person can read why something died. The child writes to the file
// itself: a pipe would keep Wait waiting for any grandchild holding it.
type childLog struct {
	path  string
	f     *os.File
	start int64 // where this run's output begins
}

func openLog(name string) (*childLog, error) {
	dir, err := config.LogDir()
	if err != nil {
		return nil, fmt.Errorf("log directory: %w", err)
	}
	path := filepath.Join(dir, name+".log")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &childLog{path: path, f: f, start: st.Size()}, nil
}

func (l *childLog) close() {
	if l.f != nil {
		_ = l.f.Close()
		l.f = nil
	}
}

// lastLine is the last line the child wrote, which for a daemon that failed
// to start says why; it points at the log when there is none.
func (l *childLog) lastLine() string {
	const tail = 4 << 10
	f, err := os.Open(l.path)
	if err != nil {
		return "see " + l.path
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "see " + l.path
	}
	from := max(l.start, st.Size()-tail)
	buf := make([]byte, st.Size()-from)
	n, _ := f.ReadAt(buf, from)
	lines := strings.Split(strings.TrimSpace(string(buf[:n])), "\n")
	if last := term.OneLine(lines[len(lines)-1]); last != "" {
		return last + " (log: " + l.path + ")"
	}
	return "it wrote nothing; see " + l.path
}
