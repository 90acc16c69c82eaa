package e2e

import (
	"strings"
	"syscall"
	"testing"

	"github.com/rbee/rbee/internal/testkit"
)

// With nothing running, `rbee infer` starts a queen, the local hive and a
// worker, prints only the text, and stops everything it started.
func TestInferStartsAndStopsEverything(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.rbee("infer", "-m", "./alpha.gguf", "abc") // relative: the CLI makes it absolute
	if r.code != 0 || r.stdout != "defghijklmnopqrstuvwxyz\n" {
		t.Fatalf("%s\nqueen log:\n%s", r, e.log("queen-rbee.log"))
	}
	for _, want := range []string{"[rbee] No queen", "[queen-rbee]", "[rbee-hive]", "Stopping queen-rbee"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	e.waitNoLeftovers()
	for _, u := range []string{e.queenURL, e.hiveURL} {
		if answers(u) {
			t.Errorf("%s still answers", u)
		}
	}
}

// Ctrl-C in the middle of a generation cancels it, stops what the CLI
// started and exits 130.
func TestInterruptStopsEverything(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	stories := storiesModel(t)
	s := e.startRbee("infer", "-m", stories, "--max-tokens", "2000", "Once upon a time")
	s.waitFirst(t)
	must(t, s.cmd.Process.Signal(syscall.SIGINT))
	r := s.wait(t)
	if r.code != 130 || r.lastErrLine() != "rbee: interrupted by interrupt" {
		t.Fatalf("%s", r)
	}
	e.waitNoLeftovers()
}

// Failures are one line on stderr and exit 1, and leave nothing running.
func TestInferFailures(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.rbee("infer", "-m", "no-such-model", "abc")
	if r.code != 1 || r.stdout != "" || !strings.HasPrefix(r.lastErrLine(), "rbee: ") || !strings.Contains(r.lastErrLine(), "no-such-model") {
		t.Errorf("unknown model: %s", r)
	}
	e.waitNoLeftovers()

	r = e.rbee("status", "--queen-url", "http://127.0.0.1:"+testkit.ReservePortT(t).String())
	if r.code != 1 || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, "rbee queen start") {
		t.Errorf("no queen: %s", r)
	}
	r = e.rbee("infer", "-m", "./missing.gguf", "abc")
	if r.code != 1 || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, "does not exist") {
		t.Errorf("missing model file: %s", r)
	}
	r = e.rbee("infer", "--bogus", "-m", "alpha", "abc")
	if r.code != 2 || !strings.Contains(r.stderr, "usage: rbee infer") {
		t.Errorf("unknown flag: %s", r)
	}
	e.waitNoLeftovers()
}

// kill -9 of the CLI cannot run its cleanup; the queen it started still
// goes, through its parent-death signal, and takes the hive and worker along.
func TestKilledCLILeavesNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := e.startRbee("infer", "-m", storiesModel(t), "--max-tokens", "2000", "Once upon a time")
	s.waitFirst(t)
	must(t, s.cmd.Process.Signal(syscall.SIGKILL))
	s.wait(t)
	e.waitNoLeftovers()
}

// A queen that runs without a hive: infer starts the hive and a worker,
// and leaves both (and the queen) running for the next request.
func TestInferStartsHiveOnRunningQueen(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustRbee("queen", "start")
	t.Cleanup(func() { e.rbee("queen", "stop") })
	r := e.mustRbee("infer", "-m", e.alphabet, "rst")
	if r.stdout != "uvwxyz\n" || !strings.Contains(r.stderr, "stays running") {
		t.Fatalf("%s", r)
	}
	if r := e.mustRbee("hive", "status"); !strings.Contains(r.stdout, "online") {
		t.Errorf("hive after infer: %s", r)
	}
	if r := e.mustRbee("infer", "-m", "alpha", "w"); r.stdout != "xyz\n" || strings.Contains(r.stderr, "stays running") {
		t.Errorf("second infer: %s", r)
	}
	e.mustRbee("queen", "stop")
	e.waitNoLeftovers()
}
