package e2e

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rbee/rbee/internal/wire"
)

// A worker killed in the middle of a generation: the CLI fails at once with
// one line, the queen marks the worker gone, and a new worker serves again.
func TestWorkerKilledMidStream(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	stories, victim := e.storiesWorker()

	s := e.startRbee("infer", "-m", stories, "--max-tokens", "2000", "Once upon a time")
	s.waitFirst(t)
	killed := time.Now()
	must(t, syscall.Kill(victim.PID, syscall.SIGKILL))
	// The broken stream itself fails the run, naming the worker: not a
	// timeout, which would not know which worker died.
	r := s.wait(t)
	if r.code != 1 || !strings.HasPrefix(r.lastErrLine(), "rbee: ") || !strings.Contains(r.lastErrLine(), victim.WorkerID) {
		t.Fatalf("after the kill: %s", r)
	}
	t.Logf("the CLI failed %s after the kill", time.Since(killed).Round(time.Millisecond))
	if r.stdout == "" || !strings.HasSuffix(r.stdout, "\n") {
		t.Errorf("text before the kill: %q", r.stdout)
	}

	gone := false
	for _, w := range e.status().Workers {
		if w.WorkerID == victim.WorkerID {
			gone = w.State == wire.StateGone
		}
	}
	if !gone {
		t.Errorf("status does not show %s gone: %s", victim.WorkerID, e.mustRbee("status"))
	}

	e.mustRbee("worker", "spawn", "-m", stories)
	r = e.mustRbee("infer", "-m", "stories260K", "--max-tokens", "8", "--temperature", "0", "Once upon a time")
	if !strings.HasPrefix(r.stdout, ", there was a little girl") {
		t.Errorf("infer on the new worker: %s", r)
	}
	e.mustRbee("queen", "stop")
	e.waitNoLeftovers()
}
