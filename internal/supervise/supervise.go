// Package supervise starts child processes and stops them cleanly. Each
// child gets its own process group (so a stop reaches its children too), a
// parent-death signal (so it does not outlive a parent that was killed), and
// exactly one reaper goroutine that waits for it.
package supervise

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// Spec describes a child.
type Spec struct {
	Path   string
	Args   []string
	Env    []string // nil: the parent's environment
	Dir    string
	Stdout io.Writer // nil: discarded
	Stderr io.Writer // nil: discarded
	// Grace is how long Stop waits after SIGTERM before it kills the
	// process group (default 5 s).
	Grace time.Duration
}

// Process is a running child.
type Process struct {
	cmd   *exec.Cmd
	grace time.Duration
	done  chan struct{}
	err   error // set before done is closed

	stopOnce sync.Once
}

// Start starts the child and its reaper.
func Start(spec Spec) (*Process, error) {
	cmd := exec.Command(spec.Path, spec.Args...)
	cmd.Env = spec.Env
	cmd.Dir = spec.Dir
	cmd.Stdout = spec.Stdout
	cmd.Stderr = spec.Stderr
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &Process{cmd: cmd, grace: spec.Grace, done: make(chan struct{})}
	if p.grace <= 0 {
		p.grace = 5 * time.Second
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// PID is the child's process id (and its process group id).
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Done is closed when the child has exited and been reaped.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err is the child's exit error (nil for status 0). Call it after Done.
func (p *Process) Err() error {
	<-p.done
	return p.err
}

// Exited reports whether the child has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM to the child's process group, waits up to the grace
// period, then sends SIGKILL to the group. It returns once the child is
// reaped. A child that already exited is no error.
func (p *Process) Stop() error {
	p.stopOnce.Do(func() {
		if p.Exited() {
			return
		}
		_ = signalGroup(p.PID(), syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(p.grace):
			_ = signalGroup(p.PID(), syscall.SIGKILL)
			<-p.done
		}
		// Grandchildren that ignored SIGTERM die with the group.
		_ = signalGroup(p.PID(), syscall.SIGKILL)
	})
	<-p.done
	var exit *exec.ExitError
	if errors.As(p.err, &exit) {
		return nil // killed by our signal or exited non-zero on the way out
	}
	return p.err
}

// Kill kills the child's process group at once and waits for the reaper.
func (p *Process) Kill() {
	_ = signalGroup(p.PID(), syscall.SIGKILL)
	<-p.done
}

func signalGroup(pid int, sig syscall.Signal) error {
	if pid <= 0 {
		return fmt.Errorf("bad pid %d", pid)
	}
	return syscall.Kill(-pid, sig)
}

// Detach starts a daemon that outlives this process: a new session, no
// parent-death signal, output to logPath, and no reaper (the caller exits
// and init adopts it). It returns the daemon's pid.
func Detach(path string, args []string, env []string, logPath string) (int, error) {
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return 0, err
	}
	defer log.Close()
	cmd := exec.Command(path, args...)
	cmd.Env = env
	cmd.Stdout = log
	cmd.Stderr = log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	pid := cmd.Process.Pid
	// Release, not Wait: the daemon is init's child once we exit.
	return pid, cmd.Process.Release()
}
