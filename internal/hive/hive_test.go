package hive

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rbee/rbee/internal/jobs"
	"github.com/rbee/rbee/internal/testkit"
	"github.com/rbee/rbee/internal/testmodel"
	"github.com/rbee/rbee/internal/wire"
)

var quiet = testLogger()

func testLogger() *slog.Logger {
	if os.Getenv("HIVE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// testHive is a hive served in-process on a free port.
type testHive struct {
	url    string
	dir    string // everything the hive may write is under it
	models string // where the tests put model files
	cfg    Config
	client *jobs.Client
	cancel context.CancelFunc
	done   chan error
}

// testConfig is a hive configuration and a loopback listener on a port of
// its own; the hive's files live in a temporary directory and its "worker
// binary" is this test program.
func testConfig(t *testing.T) (cfg Config, ln net.Listener, dir string) {
	t.Helper()
	dir = t.TempDir()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ln, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg = Config{
		HiveID:        "test-hive",
		QueenURL:      "http://127.0.0.1:1",
		WorkerBinary:  self,
		DataDir:       filepath.Join(dir, "data"),
		LogDir:        filepath.Join(dir, "logs"),
		Logger:        quiet,
		StopGrace:     2 * time.Second,
		ListenTimeout: 10 * time.Second,
	}
	return cfg, ln, dir
}

func startHive(t *testing.T, opts ...func(*Config)) *testHive {
	t.Helper()
	cfg, ln, dir := testConfig(t)
	for _, o := range opts {
		o(&cfg)
	}
	return serveHive(t, cfg, ln, dir).testHive
}

// servedHive is a testHive and the Hive it serves, for tests that look
// inside.
type servedHive struct {
	*testHive
	hive *Hive
}

// serveHive serves a hive made of cfg on ln until the test ends.
func serveHive(t *testing.T, cfg Config, ln net.Listener, dir string) servedHive {
	t.Helper()
	hv, err := New(cfg)
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &testHive{
		url:    "http://" + ln.Addr().String(),
		dir:    dir,
		models: filepath.Join(dir, "user-models"),
		cfg:    cfg,
		cancel: cancel,
		done:   make(chan error, 1),
	}
	h.client = &jobs.Client{BaseURL: h.url, Token: cfg.Token}
	if err := os.MkdirAll(h.models, 0o700); err != nil {
		t.Fatal(err)
	}
	go func() { h.done <- hv.Serve(ctx, ln) }()
	t.Cleanup(func() { h.stop(t) })
	return servedHive{h, hv}
}

// stop cancels the hive (as SIGTERM does) and waits for Serve.
func (h *testHive) stop(t *testing.T) error {
	t.Helper()
	h.cancel()
	return h.exited(t)
}

// exited waits for Serve to return, and returns its error.
func (h *testHive) exited(t *testing.T) error {
	t.Helper()
	err := testkit.Receive(t, "the hive to stop", h.done)
	h.done <- err // later calls see it too
	return err
}

// model writes a valid GGUF named <name>.gguf and returns its path.
func (h *testHive) model(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join(h.models, name+".gguf")
	if err := testmodel.WriteAlphabet(p); err != nil {
		t.Fatal(err)
	}
	return p
}

// run runs an operation and returns its events and terminal event.
func (h *testHive) run(t *testing.T, op wire.Operation) ([]wire.Event, wire.Event, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Patience)
	defer cancel()
	var evs []wire.Event
	term, err := h.client.Run(ctx, op, func(e wire.Event) error {
		evs = append(evs, e)
		return nil
	})
	return evs, term, err
}

// result runs an operation that must succeed and decodes its result data.
func result[T any](t *testing.T, h *testHive, op wire.Operation) T {
	t.Helper()
	_, term, err := h.run(t, op)
	if err != nil {
		t.Fatalf("%s: %v", op.Operation, err)
	}
	if term.Type != wire.TypeResult {
		t.Fatalf("%s ended with %s", op.Operation, term.Type)
	}
	var v T
	if err := json.Unmarshal(term.Data, &v); err != nil {
		t.Fatalf("%s: result %s: %v", op.Operation, term.Data, err)
	}
	return v
}

// failure runs an operation that must end in an error event.
func failure(t *testing.T, h *testHive, op wire.Operation) *wire.Error {
	t.Helper()
	_, _, err := h.run(t, op)
	var re *wire.Error
	if !errors.As(err, &re) {
		t.Fatalf("%s: got %v, want an error event", op.Operation, err)
	}
	return re
}

func spawnOp(model string) wire.Operation {
	return wire.Operation{Operation: wire.OpWorkerSpawn, Model: model}
}

func workerOp(op, id string) wire.Operation {
	return wire.Operation{Operation: op, WorkerID: id}
}

func alive(pid int) bool { return pid > 0 && syscall.Kill(pid, 0) == nil }

func waitGone(t *testing.T, pid int) {
	t.Helper()
	testkit.WaitFor(t, fmt.Sprintf("process %d to exit", pid), func() bool { return !alive(pid) })
}

// waitNoWorkers waits until worker_list is empty.
func waitNoWorkers(t *testing.T, h *testHive) {
	t.Helper()
	testkit.WaitFor(t, "an empty worker_list", func() bool {
		return len(result[[]wire.WorkerInfo](t, h, wire.Operation{Operation: wire.OpWorkerList})) == 0
	})
}

func TestSpawnListGetStop(t *testing.T) {
	h := startHive(t)
	path := h.model(t, "alpha")

	evs, term, err := h.run(t, spawnOp(path))
	if err != nil {
		t.Fatal(err)
	}
	var info wire.WorkerInfo
	if err := json.Unmarshal(term.Data, &info); err != nil {
		t.Fatal(err)
	}
	if info.State != wire.StateReady || info.Model != "alpha" || info.HiveID != "test-hive" || info.Device != "cpu" ||
		!strings.HasPrefix(info.URL, "http://127.0.0.1:") || !strings.HasPrefix(info.WorkerID, "worker-") ||
		!alive(info.PID) || info.StartedAt.IsZero() {
		t.Fatalf("spawned %+v", info)
	}
	var sawProgress, sawNarration bool
	for _, e := range evs {
		sawProgress = sawProgress || e.Type == wire.TypeProgress
		sawNarration = sawNarration || e.Type == wire.TypeNarration && e.Actor == Actor && e.HiveID == "test-hive"
	}
	if !sawProgress || !sawNarration {
		t.Errorf("spawn events %+v: want narration and progress", evs)
	}

	// What the hive told the worker.
	var args []string
	b, err := os.ReadFile(filepath.Join(h.models, "args-"+info.WorkerID+".json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &args); err != nil {
		t.Fatal(err)
	}
	want := "--model " + path + " --model-id alpha --port 0 --host 127.0.0.1 --worker-id " + info.WorkerID +
		" --hive-id test-hive --device cpu --queen-url http://127.0.0.1:1"
	if got := strings.Join(args, " "); got != want {
		t.Errorf("worker args\n got %s\nwant %s", got, want)
	}
	logText, err := os.ReadFile(filepath.Join(h.cfg.LogDir, info.WorkerID+".log"))
	if err != nil || !strings.Contains(string(logText), "a second line that goes to the log") {
		t.Errorf("worker log: %q, %v", logText, err)
	}

	list := result[[]wire.WorkerInfo](t, h, wire.Operation{Operation: wire.OpWorkerList})
	if len(list) != 1 || list[0].WorkerID != info.WorkerID || list[0].State != wire.StateReady {
		t.Fatalf("worker_list = %+v", list)
	}
	got := result[wire.WorkerInfo](t, h, workerOp(wire.OpWorkerGet, info.WorkerID))
	if got.WorkerID != info.WorkerID || got.PID != info.PID || got.URL != info.URL {
		t.Fatalf("worker_get = %+v", got)
	}
	models := result[[]wire.ModelInfo](t, h, wire.Operation{Operation: wire.OpModelList})
	if len(models) != 1 || models[0].ID != "alpha" || models[0].Path != path || models[0].LastUsedAt.IsZero() {
		t.Fatalf("model_list = %+v", models)
	}

	stopped := result[wire.WorkerInfo](t, h, workerOp(wire.OpWorkerStop, info.WorkerID))
	if stopped.WorkerID != info.WorkerID || stopped.State != wire.StateGone {
		t.Fatalf("worker_stop = %+v", stopped)
	}
	waitGone(t, info.PID)
	if list := result[[]wire.WorkerInfo](t, h, wire.Operation{Operation: wire.OpWorkerList}); len(list) != 0 {
		t.Fatalf("worker_list after stop = %+v", list)
	}
	if re := failure(t, h, workerOp(wire.OpWorkerGet, info.WorkerID)); re.Code != wire.CodeNotFound {
		t.Fatalf("worker_get after stop: %v", re)
	}

	// The model is in the catalog now: its id spawns it too. Delete stops
	// the worker and removes its log.
	second := result[wire.WorkerInfo](t, h, spawnOp("alpha"))
	if second.Model != "alpha" || second.State != wire.StateReady {
		t.Fatalf("spawn by id = %+v", second)
	}
	result[wire.WorkerInfo](t, h, workerOp(wire.OpWorkerDelete, second.WorkerID))
	waitGone(t, second.PID)
	if _, err := os.Stat(filepath.Join(h.cfg.LogDir, second.WorkerID+".log")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("worker_delete left the log: %v", err)
	}
}

func TestWorkerDiesWhileLoading(t *testing.T) {
	h := startHive(t)
	re := failure(t, h, spawnOp(h.model(t, modelDieLoading)))
	if re.Code != wire.CodeWorkerFailed || !strings.Contains(re.Message, dieLoadingWords) ||
		!strings.Contains(re.Message, "exit status 3") {
		t.Fatalf("error event %+v: want worker_failed with the worker's last stderr line", re)
	}
	if list := result[[]wire.WorkerInfo](t, h, wire.Operation{Operation: wire.OpWorkerList}); len(list) != 0 {
		t.Fatalf("worker_list = %+v", list)
	}
}

func TestWorkerExitsBeforeListening(t *testing.T) {
	h := startHive(t)
	re := failure(t, h, spawnOp(h.model(t, modelNoListen)))
	if re.Code != wire.CodeWorkerFailed || !strings.Contains(re.Message, noListenWords) {
		t.Fatalf("error event %+v", re)
	}
}

func TestWorkerPrintsGarbage(t *testing.T) {
	h := startHive(t)
	re := failure(t, h, spawnOp(h.model(t, modelGarbage)))
	if re.Code != wire.CodeWorkerFailed || !strings.Contains(re.Message, "not a worker") {
		t.Fatalf("error event %+v", re)
	}
	if list := result[[]wire.WorkerInfo](t, h, wire.Operation{Operation: wire.OpWorkerList}); len(list) != 0 {
		t.Fatalf("the worker was not stopped: %+v", list)
	}
}

func TestLoadErrorStopsWorker(t *testing.T) {
	h := startHive(t)
	var pid int
	evs, _, err := h.run(t, spawnOp(h.model(t, modelLoadError)))
	var re *wire.Error
	if !errors.As(err, &re) || re.Code != wire.CodeLoadFailed || !strings.Contains(re.Message, "bad shape") {
		t.Fatalf("got %v, want load_failed", err)
	}
	for _, e := range evs {
		if e.Type == wire.TypeNarration && strings.Contains(e.Human, "pid") {
			pid = pidOf(t, e.Human)
		}
	}
	waitGone(t, pid)
}

// pidOf reads the pid out of the "started worker W (pid N)" narration.
func pidOf(t *testing.T, human string) int {
	t.Helper()
	_, rest, _ := strings.Cut(human, "(pid ")
	var pid int
	for _, c := range rest {
		if c < '0' || c > '9' {
			break
		}
		pid = pid*10 + int(c-'0')
	}
	if pid == 0 {
		t.Fatalf("no pid in %q", human)
	}
	return pid
}

func TestKilledWorkerLeavesList(t *testing.T) {
	h := startHive(t)
	info := result[wire.WorkerInfo](t, h, spawnOp(h.model(t, "alpha")))
	if err := syscall.Kill(info.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitNoWorkers(t, h)
	waitGone(t, info.PID)
}

func TestCancelSpawnStopsWorker(t *testing.T) {
	h := startHive(t)
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Patience)
	defer cancel()
	jc, err := h.client.Submit(ctx, spawnOp(h.model(t, modelSlow)))
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	_, err = h.client.Stream(ctx, jc.JobID, func(e wire.Event) error {
		if e.Type == wire.TypeProgress && pid == 0 {
			list := result[[]wire.WorkerInfo](t, h, wire.Operation{Operation: wire.OpWorkerList})
			if len(list) != 1 || list[0].State != wire.StateLoading {
				t.Errorf("while loading: worker_list = %+v", list)
			} else {
				pid = list[0].PID
			}
			if err := h.client.Cancel(ctx, jc.JobID); err != nil {
				t.Error(err)
			}
		}
		return nil
	})
	var re *wire.Error
	if !errors.As(err, &re) || re.Code != wire.CodeCancelled {
		t.Fatalf("got %v, want cancelled", err)
	}
	waitGone(t, pid)
	waitNoWorkers(t, h)
}

// POST /v1/shutdown stops every worker, a loading one included, and Serve
// returns nil.
func TestShutdownStopsAllWorkers(t *testing.T) {
	h := startHive(t)
	var pids []int
	for _, name := range []string{"alpha", "beta"} {
		pids = append(pids, result[wire.WorkerInfo](t, h, spawnOp(h.model(t, name))).PID)
	}
	// A spawn still loading when the hive stops ends with an error event.
	slow := make(chan error, 1)
	go func() {
		_, _, err := h.run(t, spawnOp(h.model(t, modelSlow)))
		slow <- err
	}()
	testkit.WaitFor(t, "the slow worker to start", func() bool {
		list := result[[]wire.WorkerInfo](t, h, wire.Operation{Operation: wire.OpWorkerList})
		if len(list) == 3 {
			pids = append(pids, list[2].PID)
		}
		return len(list) == 3
	})

	resp, err := http.Post(h.url+"/v1/shutdown", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("shutdown: %s", resp.Status)
	}
	if err := h.exited(t); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("worker %d survived the hive", pid)
		}
	}
	if err := testkit.Receive(t, "the loading spawn to end", slow); err == nil {
		t.Error("the loading spawn succeeded across a shutdown")
	}
}

// Cancelling Serve's context (SIGTERM in rbee-hive) stops the workers too.
func TestStopOnSignalStopsWorkers(t *testing.T) {
	h := startHive(t)
	info := result[wire.WorkerInfo](t, h, spawnOp(h.model(t, "alpha")))
	if err := h.stop(t); err != nil {
		t.Fatal(err)
	}
	if alive(info.PID) {
		t.Fatalf("worker %d survived the hive", info.PID)
	}
}

func TestSpawnTimeouts(t *testing.T) {
	// Long enough for the silent worker, a fresh process, to have written
	// its line on a loaded machine, which 300 ms was not.
	h := startHive(t, func(c *Config) {
		c.ListenTimeout = 2 * time.Second
		c.LoadStall = 300 * time.Millisecond
	})
	for _, name := range []string{modelSilent, modelSlow} {
		re := failure(t, h, spawnOp(h.model(t, name)))
		if re.Code != wire.CodeSpawnTimeout {
			t.Errorf("%s: %+v, want %s", name, re, wire.CodeSpawnTimeout)
		}
		if name == modelSilent && !strings.Contains(re.Message, "fake-worker: thinking") {
			t.Errorf("%s: %q does not quote its stderr", name, re.Message)
		}
	}
	if list := result[[]wire.WorkerInfo](t, h, wire.Operation{Operation: wire.OpWorkerList}); len(list) != 0 {
		t.Fatalf("timed-out workers were not stopped: %+v", list)
	}
}
