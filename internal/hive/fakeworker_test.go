package hive

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/rbee/rbee/internal/testkit"
	"github.com/rbee/rbee/internal/testkit/fakeworker"
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
	modelLoadError  = "load-error"  // its load fails; it stays up
	modelSlow       = "slow"        // never finishes loading
	modelSilent     = "silent"      // never says where it listens
)

// Last stderr lines of the misbehaving fakes.
const (
	dieLoadingWords = "fake-worker: cannot allocate 7 GiB for the KV cache"
	noListenWords   = "fake-worker: device cuda:7 does not exist"
)

// fakeWorker is llm-worker-rbee as the hive sees it: the same flags, the
// same "listening URL" first line, the worker API of the one fake worker
// (fakeworker.Worker), stopped by SIGTERM. It writes its arguments next to
// the model so tests can check what the hive passed, and the secrets of
// its environment. It sends no heartbeats: the hive does not hear them, and
// the tests' queen is not there.
func fakeWorker(args []string) int {
	fs := flag.NewFlagSet("fake-worker", flag.ContinueOnError)
	model := fs.String("model", "", "")
	modelID := fs.String("model-id", "", "")
	host := fs.String("host", "127.0.0.1", "")
	port := fs.Int("port", 0, "")
	id := fs.String("worker-id", "", "")
	hiveID := fs.String("hive-id", "localhost", "")
	fs.String("queen-url", "", "")
	fs.String("device", "cpu", "")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if b, err := json.Marshal(args); err == nil {
		_ = os.WriteFile(filepath.Join(filepath.Dir(*model), "args-"+*id+".json"), b, 0o600)
	}
	secrets := map[string]string{}
	for _, k := range []string{"RBEE_WORKER_TOKEN", "RBEE_HIVE_TOKEN"} {
		if v, ok := os.LookupEnv(k); ok {
			secrets[k] = v
		}
	}
	if b, err := json.Marshal(secrets); err == nil {
		_ = os.WriteFile(filepath.Join(filepath.Dir(*model), "env-"+*id+".json"), b, 0o600)
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
	w, err := fakeworker.New(fakeworker.Config{
		ID: *id, HiveID: *hiveID, Model: *modelID, PID: os.Getpid(),
		Token:   os.Getenv("RBEE_WORKER_TOKEN"), // as the real worker, which the hive passes it to
		Addr:    net.JoinHostPort(*host, strconv.Itoa(*port)),
		Loading: true,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("listening", w.URL)
	fmt.Println("a second line that goes to the log")

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	switch *modelID {
	case modelDieLoading:
		time.Sleep(100 * time.Millisecond) // the hive follows the load by now, or sees an exit all the same
		fmt.Fprintln(os.Stderr, "fake-worker: loading")
		fmt.Fprintln(os.Stderr, dieLoadingWords)
		return 3
	case modelSlow: // stuck at its first progress
	case modelLoadError:
		w.SetProgress(25, 100)
		w.FailLoad("tensor blk.0.attn_q has a bad shape")
	default:
		go func() {
			for done := int64(25); done < 100; done += 25 {
				time.Sleep(5 * time.Millisecond)
				w.SetProgress(done, 100)
			}
			w.SetState(wire.StateReady)
		}()
	}
	<-ctx.Done()
	w.Close()
	return 0
}
