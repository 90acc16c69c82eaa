package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rbee/rbee/internal/testkit"
	"github.com/rbee/rbee/internal/testmodel"
	"github.com/rbee/rbee/internal/wire"
)

// env is one test's world: its own HOME and XDG directories, its own queen
// and hive ports, and the alphabet model, so tests can run side by side.
//
// The daemons a test starts itself listen on port 0 and say where
// (startDaemon). config.toml and hives.conf still name a queen port and a
// local hive port: the CLI starts the queen on queen_port (`rbee queen
// start`, and infer with no queen), and the queen starts the local hive on
// its HivePort, so those two are held by testkit.ReservePortT until the
// program they are given to binds them.
type env struct {
	t        *testing.T
	home     string
	environ  []string
	queenURL string
	hiveURL  string
	alphabet string // path of the alphabet model
	// bin, when set, holds the programs this test runs instead of binDir.
	bin string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	if _, err := os.Stat("/proc/self/exe"); err != nil {
		t.Skip("needs /proc to find leftover processes")
	}
	home := t.TempDir()
	qport, hport := testkit.ReservePortT(t).Port, testkit.ReservePortT(t).Port
	cfgDir := filepath.Join(home, "config", "rbee")
	must(t, os.MkdirAll(cfgDir, 0o700))
	must(t, os.WriteFile(filepath.Join(cfgDir, "config.toml"), fmt.Appendf(nil, "queen_port = %d\n", qport), 0o600))
	must(t, os.WriteFile(filepath.Join(cfgDir, "hives.conf"), fmt.Appendf(nil, "Host localhost\n  HivePort %d\n", hport), 0o600))
	e := &env{
		t:        t,
		home:     home,
		queenURL: fmt.Sprintf("http://127.0.0.1:%d", qport),
		hiveURL:  fmt.Sprintf("http://127.0.0.1:%d", hport),
		alphabet: filepath.Join(home, "alpha.gguf"),
	}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k == "HOME" || strings.HasPrefix(k, "XDG_") || strings.HasPrefix(k, "RBEE_") {
			continue
		}
		e.environ = append(e.environ, kv)
	}
	e.environ = append(e.environ, "HOME="+home,
		"XDG_CONFIG_HOME="+filepath.Join(home, "config"),
		"XDG_DATA_HOME="+filepath.Join(home, "data"),
		"XDG_CACHE_HOME="+filepath.Join(home, "cache"))
	must(t, testmodel.WriteAlphabet(e.alphabet))
	t.Cleanup(e.killLeftovers)
	return e
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// storiesModel is the shared tiny trained model, whose long generations
// give a test time to act mid-stream.
func storiesModel(t *testing.T) string {
	p, err := filepath.Abs("../../shared/models/stories260K.gguf")
	if err == nil {
		_, err = os.Stat(p)
	}
	if err != nil {
		t.Skip("stories260K.gguf is not in ../../shared/models")
	}
	return p
}

type result struct {
	code           int
	stdout, stderr string
	took           time.Duration
}

func (r result) String() string {
	return fmt.Sprintf("exit %d after %s\n--- stdout\n%s--- stderr\n%s", r.code, r.took.Round(time.Millisecond), r.stdout, r.stderr)
}

func (r result) lastErrLine() string {
	lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
	return lines[len(lines)-1]
}

// rbee runs the CLI to the end.
func (e *env) rbee(args ...string) result {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := e.command(ctx, "rbee", args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	r := result{code: cmd.ProcessState.ExitCode(), stdout: out.String(), stderr: errb.String(), took: time.Since(start)}
	if err != nil && cmd.ProcessState == nil {
		e.t.Fatalf("rbee %q: %v", args, err)
	}
	return r
}

// mustRbee runs the CLI and fails the test unless it succeeds.
func (e *env) mustRbee(args ...string) result {
	e.t.Helper()
	r := e.rbee(args...)
	if r.code != 0 {
		e.t.Fatalf("rbee %s: %s", strings.Join(args, " "), r)
	}
	return r
}

func (e *env) command(ctx context.Context, prog string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(e.binDir(), prog), args...)
	cmd.Env = e.environ
	cmd.Dir = e.home
	return cmd
}

// streamingRbee is a CLI run in the background whose stdout the test
// watches as it comes.
type streamingRbee struct {
	cmd     *exec.Cmd
	started time.Time
	first   chan struct{} // closed at the first byte on stdout
	done    chan struct{} // closed when it has exited; then res is set

	mu  sync.Mutex
	out bytes.Buffer
	res result
}

func (e *env) startRbee(args ...string) *streamingRbee {
	e.t.Helper()
	s := &streamingRbee{cmd: e.command(context.Background(), "rbee", args...), first: make(chan struct{}), done: make(chan struct{})}
	var errb bytes.Buffer
	s.cmd.Stderr = &errb
	pipe, err := s.cmd.StdoutPipe()
	must(e.t, err)
	s.started = time.Now()
	must(e.t, s.cmd.Start())
	e.t.Cleanup(func() {
		_ = s.cmd.Process.Kill()
		<-s.done
	})
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := pipe.Read(buf)
			if n > 0 {
				s.mu.Lock()
				if s.out.Len() == 0 {
					close(s.first)
				}
				s.out.Write(buf[:n])
				s.mu.Unlock()
			}
			if err != nil {
				break
			}
		}
		_ = s.cmd.Wait()
		s.mu.Lock()
		s.res = result{code: s.cmd.ProcessState.ExitCode(), stdout: s.out.String(), stderr: errb.String(), took: time.Since(s.started)}
		s.mu.Unlock()
		close(s.done)
	}()
	return s
}

// waitFirst waits for the first byte of text.
func (s *streamingRbee) waitFirst(t *testing.T) {
	t.Helper()
	select {
	case <-s.first:
	case <-s.done:
		t.Fatalf("rbee ended before it printed anything: %s", s.res)
	case <-time.After(testkit.Patience):
		t.Fatalf("rbee printed nothing within %s", testkit.Patience)
	}
}

// wait waits for the end of the run.
func (s *streamingRbee) wait(t *testing.T) result {
	t.Helper()
	select {
	case <-s.done:
		return s.res
	case <-time.After(testkit.Patience):
		t.Fatalf("rbee still runs %s later", testkit.Patience)
		return result{}
	}
}

// startDaemon starts one of the daemons directly with --port 0 first among
// args, logging to <home>/<logName>.out, and returns once it printed
// where it listens. The test's cleanup stops it with SIGTERM.
func (e *env) startDaemon(logName string, cmd *exec.Cmd) *testkit.Daemon {
	e.t.Helper()
	logf, err := os.Create(filepath.Join(e.home, logName+".out"))
	must(e.t, err)
	// Registered first, so it runs after the daemon's stop.
	e.t.Cleanup(func() { logf.Close() })
	return testkit.StartDaemon(e.t, cmd, logf)
}

// daemon is startDaemon of prog with e's environment.
func (e *env) daemon(prog string, args ...string) *testkit.Daemon {
	e.t.Helper()
	return e.startDaemon(prog, e.command(context.Background(), prog, append([]string{"--port", "0"}, args...)...))
}

// useQueen points the test and every CLI run after it at the queen at url.
func (e *env) useQueen(url string) {
	e.queenURL = url
	e.environ = append(e.environ, "RBEE_QUEEN_URL="+url)
}

// answers reports whether something serves /health at base.
func answers(base string) bool {
	c := &http.Client{Timeout: time.Second}
	resp, err := c.Get(base + "/health")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// leftovers lists the processes of the programs under test that run with
// this test's HOME: anything a test or the CLI started and did not stop.
func (e *env) leftovers() map[int]string {
	found := map[int]string{}
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		exe, err := os.Readlink(filepath.Join("/proc", d.Name(), "exe"))
		if err != nil || !strings.HasPrefix(exe, e.binDir()+string(filepath.Separator)) {
			continue // zombies have no exe: they are dead
		}
		environ, err := os.ReadFile(filepath.Join("/proc", d.Name(), "environ"))
		if err != nil || !bytes.Contains(append([]byte{0}, environ...), []byte("\x00HOME="+e.home+"\x00")) {
			continue
		}
		found[pid] = filepath.Base(exe)
	}
	return found
}

// waitNoLeftovers fails the test if processes it started never exit.
func (e *env) waitNoLeftovers() {
	e.t.Helper()
	said := ""
	testkit.WaitFor(e.t, "no process left behind", func() bool {
		left := e.leftovers()
		if s := fmt.Sprint(left); len(left) > 0 && s != said {
			e.t.Logf("still running: %s", s) // what is left, should the wait fail
			said = s
		}
		return len(left) == 0
	})
}

func (e *env) killLeftovers() {
	for pid, name := range e.leftovers() {
		e.t.Logf("killing leftover %s (pid %d)", name, pid)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// status is `rbee status --json`.
func (e *env) status() wire.Status {
	e.t.Helper()
	r := e.mustRbee("status", "--json")
	var st wire.Status
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		e.t.Fatalf("status --json: %v\n%s", err, r)
	}
	return st
}

// workers is `rbee worker list --json`.
func (e *env) workers() []wire.WorkerInfo {
	e.t.Helper()
	r := e.mustRbee("worker", "list", "--json")
	var ws []wire.WorkerInfo
	if err := json.Unmarshal([]byte(r.stdout), &ws); err != nil {
		e.t.Fatalf("worker list --json: %v\n%s", err, r)
	}
	return ws
}

// log returns a daemon log of the test, for failure messages.
func (e *env) log(name string) string {
	b, _ := os.ReadFile(filepath.Join(e.home, "data", "rbee", "logs", name))
	return string(b)
}

func itoa(n int) string { return strconv.Itoa(n) }

// binDir is where the programs this test runs are.
func (e *env) binDir() string {
	if e.bin != "" {
		return e.bin
	}
	return binDir
}

// storiesWorker starts a queen (stopped at the test's end), the local hive
// and one worker of the stories model, and returns the model and the
// worker.
func (e *env) storiesWorker() (string, wire.WorkerInfo) {
	e.t.Helper()
	stories := storiesModel(e.t)
	e.mustRbee("queen", "start")
	e.t.Cleanup(func() { e.rbee("queen", "stop") })
	e.mustRbee("hive", "start")
	e.mustRbee("worker", "spawn", "-m", stories)
	ws := e.workers()
	if len(ws) != 1 || ws[0].PID == 0 {
		e.t.Fatalf("workers: %+v", ws)
	}
	return stories, ws[0]
}
