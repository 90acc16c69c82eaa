package queen

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rbee/rbee/internal/config"
	"github.com/rbee/rbee/internal/httpapi"
	"github.com/rbee/rbee/internal/testkit"
	"github.com/rbee/rbee/internal/wire"
)

// fakeHiveEnv makes the test binary act as rbee-hive: "serve" answers
// /health until SIGTERM; "fail" dies at once with a line on stderr.
const fakeHiveEnv = "RBEE_QUEEN_TEST_FAKE_HIVE"

func TestMain(m *testing.M) {
	switch os.Getenv(fakeHiveEnv) {
	case "":
		os.Exit(testkit.CheckLeaks(m))
	case "fail":
		fmt.Fprintln(os.Stderr, "starting up")
		fmt.Fprintln(os.Stderr, "rbee-hive: listen tcp 127.0.0.1:1: address already in use")
		os.Exit(1)
	default:
		os.Exit(fakeHiveMain(os.Args[1:]))
	}
}

func fakeHiveMain(args []string) int {
	fs := flag.NewFlagSet("rbee-hive", flag.ContinueOnError)
	port := fs.Int("port", 0, "")
	id := fs.String("hive-id", "", "")
	queenURL := fs.String("queen-url", "", "")
	if err := fs.Parse(args); err != nil || *queenURL == "" || *id == "" {
		fmt.Fprintln(os.Stderr, "fake hive: bad args", args)
		return 2
	}
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", *port))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		httpapi.WriteJSON(w, http.StatusOK, wire.HiveHealth{Status: "ok", HiveID: *id})
	})
	// Like rbee-hive, it requires RBEE_HIVE_TOKEN when it has one.
	gate := &httpapi.Gate{Token: os.Getenv("RBEE_HIVE_TOKEN")}
	mux.Handle("GET /v1/capabilities", gate.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		httpapi.WriteJSON(w, http.StatusOK, wire.HiveCapabilities{HiveID: *id, OS: "linux", GPUs: []wire.GPUInfo{}})
	})))
	if tok := os.Getenv("RBEE_HIVE_TOKEN"); tok != "" {
		worker := "none"
		if os.Getenv("RBEE_WORKER_TOKEN") != "" {
			worker = "set"
		}
		fmt.Printf("hive token %s, worker token %s\n", tok, worker)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	fmt.Println("fake hive up; queen", *queenURL)
	if err := (httpapi.Daemon{Handler: mux, Grace: time.Second}).Serve(ctx, ln); err != nil {
		return 1
	}
	return 0
}

func localHiveQueen(t *testing.T, mode string, mutate func(*Options)) (*testQueen, config.Hive, string) {
	t.Helper()
	t.Setenv(fakeHiveEnv, mode)
	t.Setenv("GORACE", "atexit_sleep_ms=0") // a -race child otherwise lingers 1 s on exit
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// The queen starts the local hive on the port of hives.conf and asks
	// that port; it cannot take port 0 and read the port the hive printed,
	// so the port is reserved for the test, where only the hive can bind it.
	h := config.Hive{Alias: "localhost", HostName: "127.0.0.1", Port: 22, HivePort: testkit.ReservePortT(t).Port}
	logPath := filepath.Join(t.TempDir(), "rbee-hive-localhost.log")
	q := newQueen(t, []config.Hive{h}, func(o *Options) {
		o.HiveBinary = exe
		o.HiveLog = logPath
		o.LocalURL = "http://127.0.0.1:1"
		o.HiveStartTimeout = 10 * time.Second
		if mutate != nil {
			mutate(o)
		}
	})
	return q, h, logPath
}

func alive(pid int) bool {
	return syscall.Kill(pid, 0) == nil
}

func TestLocalHiveStartStop(t *testing.T) {
	q, h, logPath := localHiveQueen(t, "serve", nil)

	var st wire.HiveStatus
	q.result(t, wire.Operation{Operation: wire.OpHiveStart}, &st)
	if st.State != wire.HiveOnline || st.HiveID != "localhost" || st.HivePort != h.HivePort {
		t.Fatalf("started %+v", st)
	}
	pid := q.fleet.Local.PID()
	if !alive(pid) {
		t.Fatal("hive process not running")
	}
	// Starting again finds it running.
	evs := q.result(t, wire.Operation{Operation: wire.OpHiveStart, Alias: "localhost"}, &st)
	if !strings.Contains(evs[0].Human, "already running") {
		t.Fatalf("second start: %+v", evs)
	}
	var got wire.HiveStatus
	q.result(t, wire.Operation{Operation: wire.OpHiveStatus, Alias: "localhost"}, &got)
	if got.Capabilities == nil || got.Capabilities.OS != "linux" {
		t.Fatalf("status %+v", got)
	}

	q.result(t, wire.Operation{Operation: wire.OpHiveStop}, &st)
	if st.State != wire.HiveOffline {
		t.Fatalf("after stop %+v", st)
	}
	if alive(pid) {
		t.Fatalf("hive pid %d still alive after hive_stop", pid)
	}
	log, _ := os.ReadFile(logPath)
	if !strings.Contains(string(log), "queen http://127.0.0.1:1") {
		t.Fatalf("log %q", log)
	}
	if _, err := q.run(t, wire.Operation{Operation: wire.OpHiveStatus}); errorCode(err) != wire.CodeHiveUnreachable {
		t.Fatalf("status of a stopped hive: %v", err)
	}

	// The queen's shutdown stops a hive it started.
	q.result(t, wire.Operation{Operation: wire.OpHiveStart}, &st)
	pid = q.fleet.Local.PID()
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if alive(pid) {
		t.Fatalf("hive pid %d still alive after the queen closed", pid)
	}
}

func TestLocalHiveDiesAtStart(t *testing.T) {
	q, _, _ := localHiveQueen(t, "fail", nil)
	_, err := q.run(t, wire.Operation{Operation: wire.OpHiveStart})
	if err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("got %v", err)
	}
}

func TestLocalHiveAdopted(t *testing.T) {
	h := newFakeHive(t, "localhost", nil)
	q := newQueen(t, []config.Hive{h.hive}, func(o *Options) { o.HiveBinary = "/nonexistent/rbee-hive" })
	var st wire.HiveStatus
	evs := q.result(t, wire.Operation{Operation: wire.OpHiveStart}, &st)
	if st.State != wire.HiveOnline || !strings.Contains(evs[0].Human, "adopted") {
		t.Fatalf("adopt: %+v %+v", st, evs)
	}
	q.result(t, wire.Operation{Operation: wire.OpHiveStop}, &st)
	h.mu.Lock()
	n := h.shutdowns
	h.mu.Unlock()
	if n != 1 || st.State != wire.HiveOffline {
		t.Fatalf("shutdowns %d, state %s", n, st.State)
	}
	// Stopping a hive that is not running is no error.
	evs = q.result(t, wire.Operation{Operation: wire.OpHiveStop}, nil)
	if !strings.Contains(evs[0].Human, "not running") {
		t.Fatalf("stop again: %+v", evs)
	}
}

func TestHiveListAndGet(t *testing.T) {
	up := newFakeHive(t, "localhost", nil)
	down := deadHive(t, "box")
	q := newQueen(t, []config.Hive{up.hive, down}, nil)
	var list []wire.HiveStatus
	q.result(t, wire.Operation{Operation: wire.OpHiveList}, &list)
	if len(list) != 2 || list[0].State != wire.HiveOnline || list[1].State != wire.HiveOffline || list[1].HivePort != down.HivePort {
		t.Fatalf("list %+v", list)
	}
	var st wire.HiveStatus
	q.result(t, wire.Operation{Operation: wire.OpHiveGet, Alias: "box"}, &st)
	if st.State != wire.HiveOffline || st.Capabilities != nil {
		t.Fatalf("get offline %+v", st)
	}
	q.result(t, wire.Operation{Operation: wire.OpHiveRefreshCapabilities, Alias: "localhost"}, &st)
	if st.Capabilities == nil || st.Capabilities.CPUCores != 4 {
		t.Fatalf("refresh %+v", st)
	}
}
