package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rbee/rbee/internal/jobs"
	"github.com/rbee/rbee/internal/testkit"
	"github.com/rbee/rbee/internal/testmodel"
	"github.com/rbee/rbee/internal/wire"
	"github.com/rbee/rbee/internal/workerclient"
)

// Many users at once, on the real programs: the queen's queue in front of a
// worker's slots, admission control, deadlines, placement, keep-alive, and
// cancellation that reaches the worker.

// addConfig appends settings to the test's config.toml, before the queen
// starts.
func (e *env) addConfig(lines string) {
	e.t.Helper()
	f, err := os.OpenFile(filepath.Join(e.home, "config", "rbee", "config.toml"), os.O_APPEND|os.O_WRONLY, 0)
	must(e.t, err)
	_, err = f.WriteString(lines)
	must(e.t, errors.Join(err, f.Close()))
}

// startQueen starts queen-rbee on port 0, for the test and its CLI runs.
func (e *env) startQueen(args ...string) {
	e.t.Helper()
	e.useQueen(e.daemon("queen-rbee", args...).URL)
}

func (e *env) jobs() *jobs.Client { return &jobs.Client{BaseURL: e.queenURL} }

// queenStatus asks the queen's status over the job protocol.
func (e *env) queenStatus() wire.Status {
	e.t.Helper()
	ev, err := e.jobs().Run(e.t.Context(), wire.Operation{Operation: wire.OpStatus}, nil)
	must(e.t, err)
	var st wire.Status
	must(e.t, json.Unmarshal(ev.Data, &st))
	return st
}

// handWorker starts llm-worker-rbee by hand as a worker of the local hive
// serving model under id, and waits until the queen has it ready.
func (e *env) handWorker(path, model, id string, extra ...string) wire.WorkerStatus {
	e.t.Helper()
	args := append([]string{"--model", path, "--model-id", model, "--worker-id", id,
		"--hive-id", "localhost", "--queen-url", e.queenURL}, extra...)
	e.startDaemon("llm-worker-rbee-"+id, e.command(context.Background(), "llm-worker-rbee", append([]string{"--port", "0"}, args...)...))
	return e.waitWorker(id)
}

// waitWorker waits until the queen has worker id ready.
func (e *env) waitWorker(id string) wire.WorkerStatus {
	e.t.Helper()
	var ready wire.WorkerStatus
	testkit.WaitFor(e.t, "worker "+id+" ready at the queen", func() bool {
		for _, w := range e.queenStatus().Workers {
			if w.WorkerID == id && w.State == wire.StateReady {
				ready = w
				return true
			}
		}
		return false
	})
	return ready
}

// stream is an infer job whose events a test reads as they come.
type stream struct {
	jobID  string
	events chan wire.Event
	done   chan error
	cancel context.CancelFunc // drops the stream, as a client that goes away
}

func (e *env) startInfer(op wire.Operation) *stream {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c := e.jobs()
	jc, err := c.Submit(ctx, op)
	if err != nil {
		cancel()
		e.t.Fatalf("submit %s: %v", op.Model, err)
	}
	s := &stream{jobID: jc.JobID, events: make(chan wire.Event, 4096), done: make(chan error, 1), cancel: cancel}
	e.t.Cleanup(cancel)
	go func() {
		_, err := c.Stream(ctx, jc.JobID, func(ev wire.Event) error {
			s.events <- ev
			return nil
		})
		s.done <- err
	}()
	return s
}

// until reads events until one satisfies ok, and returns it.
func (s *stream) until(t *testing.T, what string, ok func(wire.Event) bool) wire.Event {
	t.Helper()
	timeout := time.After(testkit.Patience)
	for {
		select {
		case ev := <-s.events:
			if ok(ev) {
				return ev
			}
		case err := <-s.done:
			t.Fatalf("the stream ended (%v) before %s", err, what)
		case <-timeout:
			t.Fatalf("no %s within %s", what, testkit.Patience)
		}
	}
}

func said(sub string) func(wire.Event) bool {
	return func(ev wire.Event) bool { return ev.Type == wire.TypeNarration && strings.Contains(ev.Human, sub) }
}

func isToken(ev wire.Event) bool { return ev.Type == wire.TypeToken }

func ptr[T any](v T) *T { return &v }

// Six requests at once on one worker with two slots: the queen holds what
// the slots cannot take, and every one gets its exact text.
func TestConcurrentInfersShareSlots(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startQueen()
	e.handWorker(e.alphabet, "alpha", "w-two-slots", "--slots", "2")
	prompts := []string{"abc", "d", "hij", "m", "qr", "v"}
	results := make([]result, len(prompts))
	var wg sync.WaitGroup
	for i, p := range prompts {
		wg.Go(func() { results[i] = e.rbee("infer", "-m", "alpha", "--temperature", "0", "--max-tokens", "64", p) })
	}
	wg.Wait()
	for i, p := range prompts {
		want, _ := testmodel.AlphabetContinuation(p, 64)
		if results[i].code != 0 || results[i].stdout != want+"\n" {
			t.Errorf("prompt %q: want %q, got %s", p, want, results[i])
		}
	}
	w := workerclient.Client{BaseURL: e.waitWorker("w-two-slots").URL, Token: e.workerCredential("localhost", "w-two-slots")}
	if r, err := w.Ready(t.Context()); err != nil || r.Slots != 2 || r.Active != 0 || r.QueueLen != 0 {
		t.Errorf("worker after the requests: %+v %v", r, err)
	}
}

// A full queue refuses with queue_full (Retry-After for the API); a request
// that cannot start within its timeout_ms fails with deadline_exceeded.
func TestQueueFullAndDeadline(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	stories := storiesModel(t)
	e.addConfig("max_queue = 2\n")
	e.startQueen()
	e.handWorker(stories, "stories260K", "w-one-slot", "--slots", "1")
	long := wire.Operation{Operation: wire.OpInfer, Model: "stories260K", InferenceRequest: wire.InferenceRequest{Prompt: "Once upon a time", MaxTokens: ptr(2000), Temperature: ptr(0.0)}}

	running := e.startInfer(long)
	running.until(t, "a first token", isToken)
	var waiting []*stream
	for range 2 {
		s := e.startInfer(long)
		s.until(t, "the narration that it waits", said("waiting in the queen's queue"))
		waiting = append(waiting, s)
	}
	_, err := e.jobs().Run(t.Context(), long, nil)
	var re *wire.Error
	if !errors.As(err, &re) || re.Code != wire.CodeQueueFull || !strings.Contains(re.Message, "retry in") {
		t.Fatalf("infer on a full queue: %v", err)
	}
	resp, err := http.Post(e.queenURL+"/v1/chat/completions", "application/json",
		strings.NewReader(`{"model":"stories260K","messages":[{"role":"user","content":"Hi"}],"max_tokens":5}`))
	must(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), wire.CodeQueueFull) {
		t.Fatalf("API on a full queue: %s %q %s", resp.Status, resp.Header.Get("Retry-After"), body)
	}

	// Room again: a request with a deadline waits behind the running one
	// and fails when its time is up, without reaching the worker.
	if st := e.queenStatus(); len(st.Queues) != 1 || st.Queues[0] != (wire.QueueStatus{Model: "stories260K", Waiting: 2, Max: 2}) {
		t.Fatalf("queues in status: %+v", st.Queues)
	}
	for _, s := range waiting {
		s.cancel()
	}
	testkit.WaitFor(t, "the clients that left to leave the queue", func() bool { return len(e.queenStatus().Queues) == 0 })
	late := long
	late.TimeoutMs = ptr(300)
	_, err = e.jobs().Run(t.Context(), late, nil)
	if !errors.As(err, &re) || re.Code != wire.CodeDeadline || !strings.Contains(re.Message, "timeout_ms") {
		t.Fatalf("infer past its deadline: %v", err)
	}
	running.cancel()
}

// workerJob is the worker's own job id, which the queen names when it
// starts the request there.
var workerJob = regexp.MustCompile(`\bas (inf-[0-9a-f]+)`)

// waitIdle waits until the worker has no request running or queued, and
// says how long that took, for the log: a loaded machine may take its time,
// so it is no assertion.
func waitIdle(t *testing.T, w *workerclient.Client) time.Duration {
	t.Helper()
	start := time.Now()
	testkit.WaitFor(t, "the worker to stop generating after the client went away", func() bool {
		r, err := w.Ready(t.Context())
		return err == nil && r.Active == 0 && r.QueueLen == 0
	})
	return time.Since(start)
}

// A client that goes away, whichever way, stops the generation on the
// worker (active 0 again): a dropped job stream, a dropped OpenAI stream,
// and the CLI interrupted or killed. The first shows that the worker's job
// ended as cancelled, before its max_tokens.
func TestCancellationReachesWorker(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	stories := storiesModel(t)
	e.startQueen()
	ws := e.handWorker(stories, "stories260K", "w-cancel", "--slots", "1")
	w := &workerclient.Client{BaseURL: ws.URL, Token: e.workerCredential("localhost", "w-cancel")}
	const maxTokens = 2000
	op := wire.Operation{Operation: wire.OpInfer, Model: "stories260K", InferenceRequest: wire.InferenceRequest{Prompt: "Once upon a time", MaxTokens: ptr(maxTokens), Temperature: ptr(0.0)}}

	t.Run("job stream dropped", func(t *testing.T) {
		s := e.startInfer(op)
		id := workerJob.FindStringSubmatch(s.until(t, "the worker's job id", said("Running on worker w-cancel")).Human)
		if id == nil {
			t.Fatal("the queen did not name the worker's job")
		}
		for range 5 {
			s.until(t, "a token", isToken)
		}
		s.cancel()
		took := waitIdle(t, w)
		// The worker keeps its job's events for late readers: every token
		// it generated, and the end saying why it stopped.
		tokens := 0
		end, err := w.Stream(t.Context(), wire.JobCreated{JobID: id[1], SSEURL: "/v1/inference/" + id[1] + "/stream"}, func(ev wire.Event) error {
			if ev.Type == wire.TypeToken {
				tokens++
			}
			return nil
		})
		if err != nil || end.StopReason != wire.StopCancelled || end.TokensOut != tokens || tokens >= maxTokens {
			t.Fatalf("the worker's job: %+v after %d tokens (%v)", end, tokens, err)
		}
		t.Logf("the worker was idle %s after the stream dropped; it generated %d tokens in all, %d beyond the 5 read", took.Round(time.Millisecond), tokens, tokens-5)
	})

	t.Run("OpenAI stream dropped", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, e.queenURL+"/v1/completions",
			strings.NewReader(fmt.Sprintf(`{"model":"stories260K","prompt":"Once upon a time","max_tokens":%d,"temperature":0,"stream":true}`, maxTokens)))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		must(t, err)
		rd := bufio.NewReader(resp.Body)
		for n := 0; n < 5; {
			line, err := rd.ReadString('\n')
			if err != nil {
				t.Fatalf("stream: %v", err)
			}
			if strings.HasPrefix(line, "data: {") {
				n++
			}
		}
		cancel()
		resp.Body.Close()
		t.Logf("the worker was idle %s after the stream dropped", waitIdle(t, w).Round(time.Millisecond))
	})

	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGKILL} {
		t.Run("CLI "+sig.String(), func(t *testing.T) {
			s := e.startRbee("infer", "-m", "stories260K", "--max-tokens", fmt.Sprint(maxTokens), "--temperature", "0", "Once upon a time")
			s.waitFirst(t)
			must(t, s.cmd.Process.Signal(sig))
			t.Logf("the worker was idle %s after the CLI got %s", waitIdle(t, w).Round(time.Millisecond), sig)
			s.wait(t)
		})
	}
}

// A request for a model no worker serves starts one on the hive whose
// catalog has it, not on another, and runs there.
func TestPlacementOnTheHiveWithTheModel(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startQueen()
	e.mustRbee("hive", "start")
	// The second hive has a data directory, so a catalog, of its own. It
	// listens on port 0; the queen reads hives.conf at each use, so it
	// learns the port from the line added once the hive said it.
	cmd := e.command(context.Background(), "rbee-hive", "--port", "0", "--hive-id", "second", "--queen-url", e.queenURL)
	cmd.Env = append(append([]string{}, e.environ...), "XDG_DATA_HOME="+filepath.Join(e.home, "data-second"))
	second := e.startDaemon("rbee-hive-second", cmd)
	u, err := url.Parse(second.URL)
	must(t, err)
	f, err := os.OpenFile(filepath.Join(e.home, "config", "rbee", "hives.conf"), os.O_APPEND|os.O_WRONLY, 0)
	must(t, err)
	_, err = fmt.Fprintf(f, "Host second\n  HostName 127.0.0.1\n  HivePort %s\n", u.Port())
	must(t, errors.Join(err, f.Close()))
	e.mustRbee("model", "download", e.alphabet, "--hive", "second")

	r := e.mustRbee("infer", "-m", "alpha", "--temperature", "0", "abc")
	if r.stdout != "defghijklmnopqrstuvwxyz\n" || !strings.Contains(r.stderr, "starting one on hive second") || !strings.Contains(r.stderr, "stays running") {
		t.Fatalf("%s", r)
	}
	var on []string
	for _, w := range e.queenStatus().Workers {
		if w.State == wire.StateReady {
			on = append(on, w.HiveID+"/"+w.Model)
		}
	}
	if strings.Join(on, ",") != "second/alpha" {
		t.Fatalf("workers after the request: %v", on)
	}
	e.mustRbee("queen", "stop")
}

// A worker idle for keep_alive is stopped through its hive; the next
// request starts one again.
func TestKeepAliveStopsIdleWorker(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.addConfig("keep_alive = \"1s\"\n")
	e.startQueen()
	e.mustRbee("hive", "start")
	for round := range 2 {
		r := e.mustRbee("infer", "-m", e.alphabet, "--temperature", "0", "x")
		if r.stdout != "yz\n" || !strings.Contains(r.stderr, "stops after 1s without one") {
			t.Fatalf("round %d: %s", round, r)
		}
		testkit.WaitFor(t, fmt.Sprintf("round %d: the idle worker to stop", round), func() bool {
			for _, w := range e.queenStatus().Workers {
				if w.State != wire.StateGone {
					return false
				}
			}
			return true
		})
		if ws := e.workers(); len(ws) != 0 {
			t.Fatalf("round %d: the hive still has workers: %+v", round, ws)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(e.home, "queen-rbee.out")); !strings.Contains(string(b), "stopping an idle worker") {
		t.Errorf("the queen's log says nothing of it:\n%s", b)
	}
}
