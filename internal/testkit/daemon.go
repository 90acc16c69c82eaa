package testkit

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Daemon is a program started by a test that printed "listening URL" on its
// stdout: rbee's daemons do, so that --port 0 is never a race.
type Daemon struct {
	Cmd *exec.Cmd
	URL string // what the daemon printed, e.g. "http://127.0.0.1:40123"
	// Done is closed when the process has exited; Err is then its exit error.
	Done chan struct{}
	Err  error
}

// StartDaemon starts cmd (whose Args should ask for port 0), copies its
// stdout after the listening line and its stderr to log (nil: discarded),
// and returns once it printed where it listens. It fails the test when the
// program exits first or does not say within Patience. The test's cleanup
// sends SIGTERM and waits for the exit.
func StartDaemon(t testing.TB, cmd *exec.Cmd, log io.Writer) *Daemon {
	t.Helper()
	if log == nil {
		log = io.Discard
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = log
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", cmd.Path, err)
	}
	d := &Daemon{Cmd: cmd, Done: make(chan struct{})}
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		found := false
		for sc.Scan() {
			line := sc.Text()
			if u, ok := strings.CutPrefix(line, "listening "); ok && !found {
				found = true
				urls <- strings.TrimSpace(u)
				continue
			}
			fmt.Fprintln(log, line)
		}
		_, _ = io.Copy(log, out)
		d.Err = cmd.Wait()
		close(d.Done)
	}()
	t.Cleanup(func() { d.Stop(t) })
	select {
	case d.URL = <-urls:
		return d
	case <-d.Done:
		t.Fatalf("%s exited before it listened: %v", cmd.Path, d.Err)
	case <-time.After(Patience):
		_ = cmd.Process.Kill()
		t.Fatalf("%s did not say where it listens within %s", cmd.Path, Patience)
	}
	return nil
}

// Stop sends SIGTERM and waits for the exit (SIGKILL after Patience).
func (d *Daemon) Stop(t testing.TB) {
	select {
	case <-d.Done:
		return
	default:
	}
	_ = d.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.Done:
	case <-time.After(Patience):
		_ = d.Cmd.Process.Kill()
		<-d.Done
		t.Errorf("%s did not stop within %s of SIGTERM", d.Cmd.Path, Patience)
	}
}

// Command is exec.CommandContext with the test's context, for StartDaemon.
// The test's context ends before its cleanups run: the program then gets
// SIGTERM, not SIGKILL, so that a daemon stops its children too.
func Command(t testing.TB, prog string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(t.Context(), prog, args...)
	cmd.Env = os.Environ()
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = Patience
	return cmd
}
