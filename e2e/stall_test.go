package e2e

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rbee/rbee/internal/wire"
)

// A worker that is stopped (SIGSTOP: a hung process, a swapped-out
// machine) keeps its connections open and answers nothing. A request sent
// to it before its first token fails over to a new worker; one stopped
// mid-stream ends with a clear error naming it. Neither hangs.
func TestStoppedWorker(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	stories, stopped := e.storiesWorker()

	// Stopped while idle, just after a heartbeat: the queen still counts it
	// ready, sends it the request, and must give it up for another worker.
	must(t, syscall.Kill(stopped.PID, syscall.SIGSTOP))
	t.Cleanup(func() { _ = syscall.Kill(stopped.PID, syscall.SIGCONT) })
	began := time.Now()
	r := e.mustRbee("infer", "-m", "stories260K", "--max-tokens", "8", "--temperature", "0", "Once upon a time")
	t.Logf("served %s after the stop", time.Since(began).Round(time.Millisecond))
	if !strings.HasPrefix(r.stdout, ", there was a little girl") {
		t.Errorf("infer with a stopped worker: %s", r)
	}
	var serving wire.WorkerStatus
	for _, w := range e.status().Workers {
		switch {
		case w.WorkerID == stopped.WorkerID && w.State != wire.StateGone:
			t.Errorf("the stopped worker is %s", w.State)
		case w.WorkerID != stopped.WorkerID && w.State != wire.StateGone:
			serving = w
		}
	}
	if serving.PID == 0 {
		t.Fatalf("no other worker serves: %+v", e.status().Workers)
	}
	must(t, syscall.Kill(stopped.PID, syscall.SIGCONT))

	// Stopped mid-stream: the run ends (the generation may have finished
	// first on a fast machine; if not, with an error naming the worker).
	s := e.startRbee("infer", "-m", stories, "--max-tokens", "2000", "Once upon a time")
	s.waitFirst(t)
	must(t, syscall.Kill(serving.PID, syscall.SIGSTOP))
	t.Cleanup(func() { _ = syscall.Kill(serving.PID, syscall.SIGCONT) })
	stoppedAt := time.Now()
	r = s.wait(t)
	t.Logf("the run ended %s after the stop: exit %d", time.Since(stoppedAt).Round(time.Millisecond), r.code)
	if r.code != 0 && (!strings.HasPrefix(r.lastErrLine(), "rbee: ") || !strings.Contains(r.lastErrLine(), serving.WorkerID)) {
		t.Fatalf("after the stop mid-stream: %s", r)
	}
	must(t, syscall.Kill(serving.PID, syscall.SIGCONT))
	e.mustRbee("queen", "stop")
	e.waitNoLeftovers()
}
