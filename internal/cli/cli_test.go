package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/rbee/rbee/internal/cli/term"
	"github.com/rbee/rbee/internal/jobs"
	"github.com/rbee/rbee/internal/testkit"
	"github.com/rbee/rbee/internal/wire"
)

func TestParseArgsInterleaved(t *testing.T) {
	newFS := func() (*flag.FlagSet, *string, *bool, *stringList) {
		fs := flag.NewFlagSet("x", flag.ContinueOnError)
		m := fs.String("model", "", "")
		fs.StringVar(m, "m", "", "")
		q := fs.Bool("quiet", false, "")
		var stops stringList
		fs.Var(&stops, "stop", "")
		return fs, m, q, &stops
	}
	for _, tc := range []struct {
		args  []string
		pos   []string
		model string
		quiet bool
		stops []string
	}{
		{[]string{"-m", "x", "hello"}, []string{"hello"}, "x", false, nil},
		{[]string{"hello", "-m", "x"}, []string{"hello"}, "x", false, nil},
		{[]string{"a", "--model=x", "b", "--quiet", "c"}, []string{"a", "b", "c"}, "x", true, nil},
		{[]string{"--stop", "-", "--stop", "--x", "p"}, []string{"p"}, "", false, []string{"-", "--x"}},
		{[]string{"-m", "x", "--", "-q", "--model"}, []string{"-q", "--model"}, "x", false, nil},
		{[]string{"-", "x"}, []string{"-", "x"}, "", false, nil},
	} {
		fs, m, q, stops := newFS()
		pos, err := parseArgs(fs, tc.args)
		if err != nil {
			t.Errorf("%q: %v", tc.args, err)
			continue
		}
		if !slices.Equal(pos, tc.pos) || *m != tc.model || *q != tc.quiet || !slices.Equal(*stops, tc.stops) {
			t.Errorf("%q: pos %q model %q quiet %v stops %q", tc.args, pos, *m, *q, *stops)
		}
	}
	for _, args := range [][]string{{"--nope"}, {"-m"}, {"x", "--quiet=maybe"}} {
		fs, _, _, _ := newFS()
		if _, err := parseArgs(fs, args); !errors.Is(err, errUsage) {
			t.Errorf("%q: got %v, want a usage error", args, err)
		}
	}
	for _, args := range [][]string{{"-h"}, {"x", "--help"}} {
		fs, _, _, _ := newFS()
		if _, err := parseArgs(fs, args); !errors.Is(err, flag.ErrHelp) {
			t.Errorf("%q: got %v, want ErrHelp", args, err)
		}
	}
}

func TestEveryCommandHasHelp(t *testing.T) {
	isolate(t)
	for _, c := range commands {
		args := append(strings.Fields(c.name), "--help")
		r := run(t, nil, nil, args...)
		if r.code != 0 || !strings.HasPrefix(r.stdout, "usage: rbee "+c.name) || !strings.Contains(r.stdout, "--queen-url") {
			t.Errorf("%s --help: exit %d\n%s%s", c.name, r.code, r.stdout, r.stderr)
		}
	}
	for _, args := range [][]string{{"--help"}, {"help"}, {"help", "worker", "spawn"}, {"queen", "--help"}} {
		if r := run(t, nil, nil, args...); r.code != 0 || !strings.Contains(r.stdout, "usage: rbee") {
			t.Errorf("%q: exit %d\n%s%s", args, r.code, r.stdout, r.stderr)
		}
	}
}

func TestUsageErrorsExit2(t *testing.T) {
	isolate(t)
	model := filepath.Join(t.TempDir(), "m.gguf")
	os.WriteFile(model, []byte("x"), 0o600)
	for _, args := range [][]string{
		{},
		{"frobnicate"},
		{"queen"},
		{"queen", "explode"},
		{"status", "--bogus"},
		{"status", "extra"},
		{"infer", "-m", model},
		{"infer", "hello"},
		{"infer", "-m", model, "--max-tokens", "lots", "hi"},
		{"infer", "-m", model, "--max-tokens", "0", "hi"},
		{"infer", "-m", model, "--temperature", "-1", "hi"},
		{"infer", "-m", "../../etc/passwd", "hi"},
		{"infer", "-m", model, "--hive", "-oProxyCommand=x", "hi"},
		{"worker", "spawn", "-m", model, "--device", "tpu:0"},
		{"worker", "spawn", "-m", model, "--device", "cuda:99999"},
		{"worker", "spawn"},
		{"worker", "get"},
		{"worker", "stop", "a b"},
		{"hive", "start", "-a", "a;id"},
		{"model", "get", "x/../../y"},
		{"queen", "start", "--port", "70000"},
		{"--queen-url", "ftp://x", "status"},
	} {
		r := run(t, nil, nil, args...)
		if r.code != 2 || !strings.Contains(r.stderr, "usage: rbee") && !strings.Contains(r.stderr, "--help") {
			t.Errorf("%q: exit %d, want 2\n%s%s", args, r.code, r.stdout, r.stderr)
		}
	}
}

func TestInferPrintsOnlyText(t *testing.T) {
	isolate(t)
	q := newFakeQueen(t, map[string]func(*jobs.Job, int) error{
		wire.OpInfer: func(j *jobs.Job, _ int) error {
			j.Narrate("route", "Running on worker w1")
			emitText(j, "defgh")
			return nil
		},
	})
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "alpha.gguf"), []byte("GGUF"), 0o600)
	a := &App{Dir: dir}
	r := run(t, a, nil, "infer", "abc", "--max-tokens", "5", "-m", "./alpha.gguf", "xyz", "--stop", "q", "--seed", "7")
	if r.code != 0 || r.stdout != "defgh\n" {
		t.Fatalf("exit %d, stdout %q, stderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, "[queen-rbee] Running on worker w1") || !strings.Contains(r.stderr, "5 tokens (eos)") {
		t.Errorf("stderr:\n%s", r.stderr)
	}
	op := q.op(wire.OpInfer)
	if op.Model != filepath.Join(dir, "alpha.gguf") || op.Prompt != "abc xyz" || *op.MaxTokens != 5 || *op.Seed != 7 ||
		!slices.Equal(op.Stop, []string{"q"}) || op.Temperature != nil || op.HiveID != "" {
		t.Errorf("op %+v", op)
	}

	r = run(t, a, nil, "infer", "-q", "-m", "alpha", "hi")
	if r.code != 0 || r.stdout != "defgh\n" || r.stderr != "" {
		t.Errorf("quiet: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

func TestInferSpawnsWorkerOnRunningQueen(t *testing.T) {
	isolate(t)
	q := newFakeQueen(t, map[string]func(*jobs.Job, int) error{
		wire.OpInfer: func(j *jobs.Job, n int) error {
			if n < 2 { // the second try comes before the queen heard of the worker
				return wire.Errorf(wire.CodeNoWorker, "no worker serves model %q", j.Op().Model)
			}
			emitText(j, "yz")
			return nil
		},
		wire.OpHiveStart: func(j *jobs.Job, _ int) error {
			j.Emit(wire.NewResult(wire.HiveStatus{Alias: "localhost", State: wire.HiveOnline}))
			return nil
		},
		wire.OpWorkerSpawn: func(j *jobs.Job, _ int) error {
			j.Emit(wire.NewProgress(50, 100, "bytes"))
			j.Emit(wire.NewProgress(100, 100, "bytes"))
			j.Emit(wire.NewResult(wire.WorkerInfo{WorkerID: "worker-1", HiveID: "localhost", State: wire.StateReady}))
			return nil
		},
	})
	r := run(t, nil, nil, "infer", "-m", "tiny", "x")
	if r.code != 0 || r.stdout != "yz\n" {
		t.Fatalf("exit %d, stdout %q, stderr:\n%s", r.code, r.stdout, r.stderr)
	}
	want := []string{wire.OpInfer, wire.OpHiveStart, wire.OpWorkerSpawn, wire.OpInfer, wire.OpInfer}
	if got := q.opNames(); !slices.Equal(got, want) {
		t.Errorf("operations %v, want %v", got, want)
	}
	if sp := q.op(wire.OpWorkerSpawn); sp.HiveID != "localhost" || sp.Model != "tiny" {
		t.Errorf("spawn %+v", sp)
	}
	if !strings.Contains(r.stderr, "worker-1 stays running") || !strings.Contains(r.stderr, "[progress]") {
		t.Errorf("stderr:\n%s", r.stderr)
	}
}

func TestInferStartsAndStopsItsOwnQueen(t *testing.T) {
	home := isolate(t)
	reserved := testkit.ReservePortT(t)
	port := reserved.String()
	os.MkdirAll(filepath.Join(home, "config", "rbee"), 0o700)
	os.WriteFile(filepath.Join(home, "config", "rbee", "config.toml"), []byte("queen_port = "+port+"\n"), 0o600)

	var q *fakeQueen
	handlers := map[string]func(*jobs.Job, int) error{
		wire.OpHiveStart: func(j *jobs.Job, _ int) error { j.Narrate("hive", "Starting hive localhost"); return nil },
		wire.OpWorkerSpawn: func(j *jobs.Job, _ int) error {
			j.Emit(wire.NewResult(wire.WorkerInfo{WorkerID: "worker-2", HiveID: "localhost"}))
			return nil
		},
		wire.OpInfer:      func(j *jobs.Job, _ int) error { emitText(j, "defghijklmnopqrstuvwxyz"); return nil },
		wire.OpWorkerStop: func(j *jobs.Job, _ int) error { return nil },
	}
	proc := &fakeProcess{done: make(chan struct{})}
	a := &App{startQueen: func(_ context.Context, addr queenAddr, _ io.Writer) (queenProcess, error) {
		if addr.port != port || addr.host != "" {
			t.Errorf("queen address %+v, want port %s", addr, port)
		}
		ln, err := reserved.Listen()
		if err != nil {
			return nil, err
		}
		q = newFakeQueenOn(t, ln, handlers)
		proc.stop = q.close
		return proc, nil
	}}
	r := run(t, a, nil, "infer", "-m", "alpha", "abc")
	if r.code != 0 || r.stdout != "defghijklmnopqrstuvwxyz\n" {
		t.Fatalf("exit %d, stdout %q, stderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if !proc.stopped {
		t.Error("the queen it started was not stopped")
	}
	want := []string{wire.OpHiveStart, wire.OpWorkerSpawn, wire.OpInfer, wire.OpWorkerStop}
	if got := q.opNames(); !slices.Equal(got, want) {
		t.Errorf("operations %v, want %v", got, want)
	}
	if stop := q.op(wire.OpWorkerStop); stop.WorkerID != "worker-2" || stop.HiveID != "localhost" {
		t.Errorf("worker_stop %+v", stop)
	}
}

func TestInferFailsInOneLine(t *testing.T) {
	isolate(t)
	newFakeQueen(t, map[string]func(*jobs.Job, int) error{
		wire.OpInfer: func(j *jobs.Job, _ int) error {
			j.Emit(wire.NewToken("Once", 0))
			return wire.Errorf(wire.CodeWorkerGone, "worker w1 on hive localhost went away mid-stream\n(EOF)")
		},
	})
	r := run(t, nil, nil, "infer", "-m", "tiny", "x")
	if r.code != 1 || r.stdout != "Once\n" || r.lastErrLine() != "rbee: worker w1 on hive localhost went away mid-stream (EOF)" {
		t.Fatalf("exit %d, stdout %q, stderr:\n%s", r.code, r.stdout, r.stderr)
	}
}

func TestNoQueenIsOneLine(t *testing.T) {
	isolate(t)
	t.Setenv("RBEE_QUEEN_URL", "http://127.0.0.1:"+testkit.ReservePortT(t).String())
	for _, args := range [][]string{{"status"}, {"worker", "list"}, {"hive", "list", "--json"}} {
		r := run(t, nil, nil, args...)
		if r.code != 1 || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, "rbee queen start") {
			t.Errorf("%q: exit %d, stderr %q", args, r.code, r.stderr)
		}
	}
	// A queen on another machine is not started from here.
	r := run(t, nil, nil, "infer", "--queen-url", "http://192.0.2.1:1", "-m", "tiny", "x")
	if r.code != 1 || !strings.Contains(r.lastErrLine(), "only on this machine") {
		t.Errorf("remote: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestInterruptCancelsTheJob(t *testing.T) {
	isolate(t)
	cancelled := make(chan error, 1)
	newFakeQueen(t, map[string]func(*jobs.Job, int) error{
		wire.OpInfer: func(j *jobs.Job, _ int) error {
			j.Emit(wire.NewToken("a", 0))
			<-j.Context().Done()
			cancelled <- context.Cause(j.Context())
			return context.Cause(j.Context())
		},
	})
	// The interrupt comes once the first token is on stdout: the job runs,
	// and this side knows it.
	ctx, cancel := context.WithCancelCause(t.Context())
	var stderr bytes.Buffer
	a := &App{Dir: t.TempDir(), Stderr: &stderr, Stdout: writerFunc(func(p []byte) (int, error) {
		cancel(&interrupted{sig: syscall.SIGINT})
		return len(p), nil
	})}
	r := result{code: a.Run(ctx, []string{"infer", "-m", "tiny", "x"}), stderr: stderr.String()}
	if r.code != 130 || r.lastErrLine() != "rbee: interrupted by interrupt" {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
	if err := testkit.Receive(t, "the queen's job to be cancelled", cancelled); !errors.Is(err, jobs.ErrCancelled) && !errors.Is(err, jobs.ErrUnwatched) {
		t.Errorf("job ended by %v", err)
	}
}

func TestStatusTableAndJSON(t *testing.T) {
	isolate(t)
	st := wire.Status{
		Queen: wire.QueenStatus{URL: "http://127.0.0.1:7833"},
		Hives: []wire.HiveStatus{{Alias: "localhost", Host: "127.0.0.1", HivePort: 7835, State: wire.HiveOnline, URL: "http://127.0.0.1:7835"}},
		Workers: []wire.WorkerStatus{{WorkerID: "worker-ab", HiveID: "localhost", Model: "alpha", URL: "http://127.0.0.1:4000",
			State: wire.StateReady, Slots: 1, LastSeenMs: 900}},
		Models: []wire.HiveModel{{HiveID: "localhost", ModelInfo: wire.ModelInfo{ID: "alpha", SizeBytes: 3 << 20, Path: "/m/alpha.gguf"}}},
	}
	newFakeQueen(t, map[string]func(*jobs.Job, int) error{
		wire.OpStatus: func(j *jobs.Job, _ int) error { j.Emit(wire.NewResult(st)); return nil },
		wire.OpWorkerList: func(j *jobs.Job, _ int) error {
			j.Emit(wire.NewResult([]wire.WorkerInfo{{WorkerID: "worker-ab", HiveID: "localhost", Model: "alpha", State: "ready", PID: 42}}))
			return nil
		},
		wire.OpWorkerGet: func(j *jobs.Job, _ int) error {
			j.Emit(wire.NewResult(wire.WorkerInfo{WorkerID: j.Op().WorkerID, HiveID: "localhost", Model: "alpha", State: "ready"}))
			return nil
		},
	})
	r := run(t, nil, nil, "status")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	for _, want := range []string{"worker-ab", "ready", "0/1 busy", "3.0 MiB", "online"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("status lacks %q:\n%s", want, r.stdout)
		}
	}
	r = run(t, nil, nil, "status", "--json")
	if r.code != 0 || !strings.Contains(r.stdout, `"worker_id": "worker-ab"`) {
		t.Errorf("status --json: %s%s", r.stdout, r.stderr)
	}
	r = run(t, nil, nil, "worker", "list")
	if r.code != 0 || !strings.Contains(r.stdout, "WORKER_ID") || !strings.Contains(r.stdout, "worker-ab") || !strings.Contains(r.stdout, "42") {
		t.Errorf("worker list: %s%s", r.stdout, r.stderr)
	}
	r = run(t, nil, nil, "worker", "get", "worker-ab")
	if r.code != 0 || !strings.Contains(r.stdout, "worker_id:") || !strings.Contains(r.stdout, "state:") {
		t.Errorf("worker get: %s%s", r.stdout, r.stderr)
	}
}

func TestQueenStartStopStatus(t *testing.T) {
	isolate(t)
	q := newFakeQueen(t, nil)
	r := run(t, nil, nil, "queen", "status")
	if r.code != 0 || !strings.Contains(r.stdout, "is running at "+q.srv.URL) {
		t.Errorf("status: %d %s%s", r.code, r.stdout, r.stderr)
	}
	r = run(t, nil, nil, "queen", "start")
	if r.code != 0 || !strings.Contains(r.stderr, "already running") {
		t.Errorf("start: %d %s%s", r.code, r.stdout, r.stderr)
	}
	go func() {
		<-q.shutdown
		q.srv.Close()
	}()
	r = run(t, nil, nil, "queen", "stop")
	if r.code != 0 || !strings.Contains(r.stdout, "stopped") {
		t.Errorf("stop: %d %s%s", r.code, r.stdout, r.stderr)
	}
	r = run(t, nil, nil, "queen", "status", "--json")
	if r.code != 0 || !strings.Contains(r.stdout, `"running": false`) {
		t.Errorf("status --json: %d %s%s", r.code, r.stdout, r.stderr)
	}
}

func TestModelPathsAreMadeAbsolute(t *testing.T) {
	isolate(t)
	q := newFakeQueen(t, map[string]func(*jobs.Job, int) error{
		wire.OpModelGet: func(j *jobs.Job, _ int) error {
			j.Emit(wire.NewResult(wire.ModelInfo{ID: "m", Path: j.Op().Model, SizeBytes: 2048}))
			return nil
		},
	})
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "sub"), 0o700)
	os.WriteFile(filepath.Join(dir, "sub", "m.gguf"), nil, 0o600)
	r := run(t, &App{Dir: dir}, nil, "model", "get", "sub/m.gguf")
	if r.code != 0 || q.op(wire.OpModelGet).Model != filepath.Join(dir, "sub", "m.gguf") || !strings.Contains(r.stdout, "2.0 KiB") {
		t.Errorf("exit %d, op %+v\n%s%s", r.code, q.op(wire.OpModelGet), r.stdout, r.stderr)
	}
	r = run(t, &App{Dir: dir}, nil, "model", "get", "missing.gguf")
	if r.code != 1 || !strings.Contains(r.stderr, "does not exist") {
		t.Errorf("missing file: exit %d %s", r.code, r.stderr)
	}
}

func TestReporter(t *testing.T) {
	var b strings.Builder
	r := &term.Reporter{W: &b}
	for i := int64(0); i <= 1000; i += 7 {
		r.Event(wire.Event{Type: wire.TypeProgress, Done: i, Total: 1000, Unit: "bytes"})
	}
	r.Event(wire.Event{Type: wire.TypeNarration, Actor: "hive\x1b[31m", Human: "loaded\nmodel"})
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) > 12 || lines[len(lines)-1] != "[hive[31m] loaded model" {
		t.Errorf("plain progress:\n%s", b.String())
	}

	b.Reset()
	r = &term.Reporter{W: &b, TTY: true}
	r.Progress(50, 100, "bytes")
	r.Narrate("queen-rbee", "hi")
	if got := b.String(); !strings.HasPrefix(got, "\r\x1b[K[") || !strings.HasSuffix(got, "\n[queen-rbee] hi\n") {
		t.Errorf("tty progress %q", got)
	}
}

type writerFunc func(p []byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

type fakeProcess struct {
	done    chan struct{}
	stop    func()
	stopped bool
}

func (p *fakeProcess) Done() <-chan struct{} { return p.done }
func (p *fakeProcess) Err() error            { return nil }
func (p *fakeProcess) Stop() error {
	p.stopped = true
	p.stop()
	close(p.done)
	return nil
}
