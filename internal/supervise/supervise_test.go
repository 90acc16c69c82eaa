package supervise

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rbee/rbee/internal/testkit"
)

func TestMain(m *testing.M) { os.Exit(testkit.CheckLeaks(m)) }

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

// exitSignal is the signal that ended a reaped child; 0 when none did.
func exitSignal(p *Process) syscall.Signal {
	var exit *exec.ExitError
	if !errors.As(p.Err(), &exit) {
		return 0
	}
	if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return ws.Signal()
	}
	return 0
}

func TestStopGraceful(t *testing.T) {
	// A grace longer than any test: the SIGTERM alone must end sleep.
	p, err := Start(Spec{Path: "sleep", Args: []string{"30"}, Grace: testkit.Patience})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	if sig := exitSignal(p); sig != syscall.SIGTERM {
		t.Fatalf("sleep ended by %v, want SIGTERM", sig)
	}
	if alive(p.PID()) {
		t.Fatal("still alive")
	}
}

func TestStopKillsGroupAfterGrace(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "grandchild")
	// The child ignores SIGTERM and has a grandchild that does too.
	script := `trap '' TERM; sh -c 'trap "" TERM; echo $$ > ` + pidFile + `; sleep 30' & sleep 30`
	p, err := Start(Spec{Path: "sh", Args: []string{"-c", script}, Grace: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var grandchild int
	testkit.WaitFor(t, "the grandchild to start", func() bool {
		b, err := os.ReadFile(pidFile)
		if err != nil || !strings.HasSuffix(string(b), "\n") {
			return false
		}
		grandchild, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		return grandchild > 0
	})
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	if sig := exitSignal(p); sig != syscall.SIGKILL {
		t.Fatalf("the child that ignores SIGTERM ended by %v, want SIGKILL", sig)
	}
	// The grandchild is not ours to reap: it dies, then init reaps it.
	testkit.WaitFor(t, "the grandchild to die with the group", func() bool { return !alive(grandchild) })
}

func TestExitIsReaped(t *testing.T) {
	p, err := Start(Spec{Path: "sh", Args: []string{"-c", "exit 3"}})
	if err != nil {
		t.Fatal(err)
	}
	<-p.Done()
	if err := p.Err(); err == nil || !strings.Contains(err.Error(), "exit status 3") {
		t.Fatalf("err %v", err)
	}
	if err := p.Stop(); err != nil {
		t.Fatalf("Stop after exit: %v", err)
	}
}
