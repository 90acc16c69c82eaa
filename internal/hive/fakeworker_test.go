package hive

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/rbee/rbee/internal/httpapi"
	"github.com/rbee/rbee/internal/sse"
	"github.com/rbee/rbee/internal/testkit"
	"github.com/rbee/rbee/internal/wire"
)

// The test binary doubles as a fake llm-worker-rbee, so the hive's tests
// supervise real processes without cgo or a model. Every child the hive
// starts inherits the variable, so it runs fakeWorker instead of the tests.
const fakeWorkerEnv = "RBEE_HIVE_TEST_FAKE_WORKER"

func TestMain(m *testing.M) {
	if os.Getenv(fakeWorkerEnv) == "1" {
		os.Exit(fakeWorker(os.Args[1:]))
	}
	os.Setenv(fakeWorkerEnv, "1")
	// A race-enabled child sleeps a second at exit by default; every stop
	// would wait for it.
	os.Setenv("GORACE", "atexit_sleep_ms=0")
	os.Exit(testkit.CheckLeaks(m))
}

// Model ids (file names) that make the fake worker misbehave.
const (
	modelDieLoading = "die-loading" // listens, then exits 3 while loading
	modelNoListen   = "no-listen"   // exits 2 before it listens
	modelGarbage    = "garbage"     // prints something else first
	modelLoadError  = "load-error"  // its progress stream ends in an error event; it stays up
	modelSlow       = "slow"        // never finishes loading
	modelSilent     = "silent"      // never says where it listens
)

// Last stderr lines of the misbehaving fakes.
const (
	dieLoadingWords = "fake-worker: cannot allocate 7 GiB for the KV cache"
	noListenWords   = "fake-worker: device cuda:7 does not exist"
)

// fakeWorker is a small llm-worker-rbee: the same flags, the same first
// line, the same /health, /v1/ready and /v1/loading/progress. It writes its
// arguments next to the model so tests can check what the hive passed.
func fakeWorker(args []string) int {
	fs := flag.NewFlagSet("fake-worker", flag.ContinueOnError)
	model := fs.String("model", "", "")
	modelID := fs.String("model-id", "", "")
	host := fs.String("host", "127.0.0.1", "")
	port := fs.Int("port", 0, "")
	id := fs.String("worker-id", "", "")
	fs.String("hive-id", "", "")
	fs.String("queen-url", "", "")
	fs.String("device", "cpu", "")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if b, err := json.Marshal(args); err == nil {
		_ = os.WriteFile(filepath.Join(filepath.Dir(*model), "args-"+*id+".json"), b, 0o600)
	}
	switch *modelID {
	case modelNoListen:
		fmt.Fprintln(os.Stderr, "fake-worker: starting")
		fmt.Fprintln(os.Stderr, noListenWords)
		return 2
	case modelSilent:
		fmt.Fprintln(os.Stderr, "fake-worker: thinking")
		time.Sleep(time.Minute)
		return 0
	case modelGarbage:
		fmt.Println("hello, I am not a worker")
		time.Sleep(time.Minute)
		return 0
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(*host, fmt.Sprint(*port)))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("listening http://%s\n", ln.Addr())
	fmt.Println("a second line that goes to the log")

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if *modelID == modelDieLoading {
		time.Sleep(100 * time.Millisecond)
		fmt.Fprintln(os.Stderr, "fake-worker: loading")
		fmt.Fprintln(os.Stderr, dieLoadingWords)
		return 3
	}

	loaded := make(chan struct{})
	go func() {
		if *modelID == modelSlow || *modelID == modelLoadError {
			return
		}
		time.Sleep(50 * time.Millisecond)
		close(loaded)
	}()
	isLoaded := func() bool {
		select {
		case <-loaded:
			return true
		default:
			return false
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		httpapi.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /v1/ready", func(w http.ResponseWriter, r *http.Request) {
		rd := wire.Ready{State: wire.StateLoading, WorkerID: *id, Model: *modelID, Slots: 1}
		if isLoaded() {
			rd.Ready, rd.State = true, wire.StateReady
		}
		httpapi.WriteJSON(w, http.StatusOK, rd)
	})
	mux.HandleFunc("GET /v1/loading/progress", func(w http.ResponseWriter, r *http.Request) {
		sw := sse.NewWriter(w)
		for i := int64(0); i < 4; i++ {
			_ = sw.Event(wire.NewProgress(i*25, 100, "bytes"))
			time.Sleep(5 * time.Millisecond)
		}
		if *modelID == modelLoadError {
			_ = sw.Event(wire.NewError(wire.CodeLoadFailed, "tensor blk.0.attn_q has a bad shape"))
			_ = sw.Done()
			return
		}
		select {
		case <-loaded:
		case <-r.Context().Done():
			return
		}
		_ = sw.Event(wire.NewProgress(100, 100, "bytes"))
		_ = sw.Event(wire.NewResult(wire.Ready{Ready: true, State: wire.StateReady}))
		_ = sw.Done()
	})
	srv := &http.Server{Handler: mux}
	go func() { _ = srv.Serve(ln) }()
	<-ctx.Done()
	_ = srv.Close()
	return 0
}
