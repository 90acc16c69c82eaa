package e2e

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/rbee/rbee/internal/wire"
)

// With a queen started by `rbee queen start`: hives, workers and models are
// managed by the CLI, infer reuses the worker and leaves the queen up, and
// `rbee queen stop` stops everything.
func TestWithRunningQueen(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.mustRbee("queen", "start")
	if !strings.Contains(r.stdout, e.queenURL) {
		t.Errorf("queen start: %s", r)
	}
	if r := e.mustRbee("queen", "start"); !strings.Contains(r.stderr, "already running") {
		t.Errorf("second queen start: %s", r)
	}
	e.mustRbee("hive", "start")
	if r := e.mustRbee("hive", "list"); !strings.Contains(r.stdout, "online") {
		t.Errorf("hive list: %s", r)
	}

	r = e.mustRbee("worker", "spawn", "--json", "-m", e.alphabet)
	var w wire.WorkerInfo
	if err := json.Unmarshal([]byte(r.stdout), &w); err != nil || w.WorkerID == "" || w.State != wire.StateReady {
		t.Fatalf("worker spawn: %v %s", err, r)
	}
	r = e.mustRbee("status")
	if !strings.Contains(r.stdout, w.WorkerID) || !strings.Contains(r.stdout, "ready") || !strings.Contains(r.stdout, "alpha") {
		t.Errorf("status table lacks the ready worker:\n%s", r.stdout)
	}

	for _, prompt := range []string{"abc", "uvw"} {
		r = e.mustRbee("infer", "-m", e.alphabet, prompt)
		want := map[string]string{"abc": "defghijklmnopqrstuvwxyz\n", "uvw": "xyz\n"}[prompt]
		if r.stdout != want || !strings.Contains(r.stderr, "Running on worker "+w.WorkerID) {
			t.Errorf("infer %q: %s", prompt, r)
		}
	}
	// By catalog id too, and with the flags after the prompt.
	if r = e.mustRbee("infer", "x", "-m", "alpha", "--max-tokens", "1"); r.stdout != "y\n" {
		t.Errorf("infer by id: %s", r)
	}
	if ws := e.workers(); len(ws) != 1 || ws[0].WorkerID != w.WorkerID {
		t.Errorf("workers after two infers: %+v", ws)
	}
	if r := e.mustRbee("queen", "status"); !strings.Contains(r.stdout, "is running") {
		t.Errorf("queen after infer: %s", r)
	}

	if r = e.mustRbee("worker", "get", w.WorkerID); !strings.Contains(r.stdout, "state:") || !strings.Contains(r.stdout, "ready") {
		t.Errorf("worker get: %s", r)
	}
	if r = e.mustRbee("model", "list"); !strings.Contains(r.stdout, "alpha") {
		t.Errorf("model list: %s", r)
	}
	if r = e.mustRbee("model", "get", "alpha"); !strings.Contains(r.stdout, e.alphabet) {
		t.Errorf("model get: %s", r)
	}
	e.mustRbee("worker", "stop", w.WorkerID)
	for _, s := range e.status().Workers {
		if s.WorkerID == w.WorkerID && s.State != wire.StateGone {
			t.Errorf("stopped worker is %s in status", s.State)
		}
	}

	// No worker for the model: infer starts one and leaves it running.
	r = e.mustRbee("infer", "-m", e.alphabet, "x")
	if r.stdout != "yz\n" || !strings.Contains(r.stderr, "stays running") {
		t.Errorf("infer without a worker: %s", r)
	}
	var ready int
	for _, s := range e.status().Workers {
		if s.State == wire.StateReady {
			ready++
		}
	}
	if ready != 1 {
		t.Errorf("%d ready workers after infer started one", ready)
	}

	if r = e.mustRbee("queen", "stop"); !strings.Contains(r.stdout, "stopped") {
		t.Errorf("queen stop: %s", r)
	}
	e.waitNoLeftovers()
	if answers(e.queenURL) || answers(e.hiveURL) {
		t.Error("a daemon still answers after queen stop")
	}
}
