package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/rbee/rbee/internal/engine"
	"github.com/rbee/rbee/internal/llama"
	"github.com/rbee/rbee/internal/testkit"
	"github.com/rbee/rbee/internal/testmodel"
	"github.com/rbee/rbee/internal/wire"
	"github.com/rbee/rbee/internal/workerclient"
)

// The test binary doubles as the worker: run with RBEE_TEST_WORKER_MAIN=1 it
// is llm-worker-rbee, so these tests run the real program without a build.
func TestMain(m *testing.M) {
	if os.Getenv("RBEE_TEST_WORKER_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(testkit.CheckLeaks(m))
}

const shared = "../../../shared/models"

func workerCmd(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "RBEE_TEST_WORKER_MAIN=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

type running struct {
	cmd    *exec.Cmd
	client *workerclient.Client
	stderr *bytes.Buffer
}

func startWorker(t *testing.T, model string, extra ...string) *running {
	t.Helper()
	args := append([]string{"--model", model, "--port", "0", "--threads", "1", "--ctx-size", "512"}, extra...)
	cmd := workerCmd(args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := &running{cmd: cmd, stderr: &stderr}
	t.Cleanup(func() { r.stop(t) })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("no listening line: %v; stderr: %s", err, stderr.String())
	}
	url, ok := strings.CutPrefix(strings.TrimSpace(line), "listening ")
	if !ok {
		t.Fatalf("first stdout line %q", line)
	}
	r.client = &workerclient.Client{BaseURL: url}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.client.WaitReady(ctx); err != nil {
		t.Fatalf("worker not ready: %v; stderr: %s", err, stderr.String())
	}
	return r
}

func (r *running) stop(t *testing.T) {
	if r.cmd.ProcessState != nil {
		return
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- r.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("worker exited badly after SIGTERM: %v; stderr: %s", err, r.stderr.String())
		}
	case <-time.After(10 * time.Second):
		_ = r.cmd.Process.Kill()
		<-done
		t.Error("worker did not stop within 10 s of SIGTERM")
	}
}

func (r *running) generate(t *testing.T, req wire.InferenceRequest) (string, []string, wire.Event) {
	t.Helper()
	var text strings.Builder
	var pieces []string
	end, err := r.client.Generate(context.Background(), req, func(e wire.Event) error {
		if e.Type == wire.TypeToken {
			pieces = append(pieces, e.T)
			text.WriteString(e.T)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return text.String(), pieces, end
}

func ptr[T any](v T) *T { return &v }

func alphabetModel(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "alphabet.gguf")
	if err := testmodel.WriteAlphabet(path); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestAlphabetModelIsPredictable(t *testing.T) {
	w := startWorker(t, alphabetModel(t))
	for _, prompt := range []string{"abc", "x", "Hello", "}"} {
		want, eos := testmodel.AlphabetContinuation(prompt, 40)
		text, pieces, end := w.generate(t, wire.InferenceRequest{Prompt: prompt, MaxTokens: ptr(40), Temperature: ptr(0.0)})
		if text != want {
			t.Errorf("%q: got %q, want %q", prompt, text, want)
		}
		if wantReason := map[bool]string{true: wire.StopEOS, false: wire.StopMaxTokens}[eos]; end.StopReason != wantReason {
			t.Errorf("%q: stop reason %s, want %s", prompt, end.StopReason, wantReason)
		}
		for _, p := range pieces {
			if !utf8.ValidString(p) {
				t.Errorf("%q: piece %q is not valid UTF-8", prompt, p)
			}
		}
		if prompt == "}" && !contains(pieces, "é") {
			t.Errorf("the split character was not sent whole: %q", pieces)
		}
	}
	// A stop sequence across tokens is never sent.
	text, _, end := w.generate(t, wire.InferenceRequest{Prompt: "abc", Stop: []string{"ghi"}, Temperature: ptr(0.0)})
	if text != "def" || end.StopReason != wire.StopSequence {
		t.Fatalf("stop: %q %s", text, end.StopReason)
	}
}

func contains(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}

// The worker's greedy output is llama.cpp's own greedy output.
func TestGreedyMatchesEngine(t *testing.T) {
	for _, name := range []string{"stories260K.gguf", "TinyStories-656K-Q8_0.gguf"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(shared, name)
			if _, err := os.Stat(path); err != nil {
				t.Skipf("shared model missing: %v", err)
			}
			const prompt, n = "Once upon a time", 48
			m, err := llama.Load(path, llama.Options{Threads: 1, CtxSize: 512})
			if err != nil {
				t.Fatal(err)
			}
			want := direct(t, m, prompt, n)
			m.Close()

			w := startWorker(t, path)
			got, _, end := w.generate(t, wire.InferenceRequest{Prompt: prompt, MaxTokens: ptr(n), Temperature: ptr(0.0)})
			if got != want {
				t.Fatalf("worker %q\nengine %q", got, want)
			}
			if end.TokensIn != 5 && name == "stories260K.gguf" {
				t.Errorf("tokens_in %d, want 5", end.TokensIn)
			}
			if end.Timings == nil || end.Timings.DecodeTPS <= 0 || end.Timings.TTFTMs <= 0 {
				t.Errorf("end timings %+v", end.Timings)
			}
		})
	}
}

func direct(t *testing.T, m engine.Model, prompt string, n int) string {
	toks, err := m.Tokenize(prompt)
	if err != nil {
		t.Fatal(err)
	}
	seq, err := m.NewSequence(engine.Sampling{})
	if err != nil {
		t.Fatal(err)
	}
	defer seq.Close()
	if err := seq.Prefill(context.Background(), toks); err != nil {
		t.Fatal(err)
	}
	var out []byte
	for i := 0; i < n; i++ {
		tok := seq.Sample()
		if m.IsEOG(tok) {
			break
		}
		piece, err := m.Piece(tok)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, piece...)
		if i < n-1 {
			if err := seq.Decode(tok); err != nil {
				t.Fatal(err)
			}
		}
	}
	return string(out)
}

func TestSeedIsReproducible(t *testing.T) {
	path := filepath.Join(shared, "stories260K.gguf")
	if _, err := os.Stat(path); err != nil {
		t.Skipf("shared model missing: %v", err)
	}
	w := startWorker(t, path)
	req := func(seed uint32) wire.InferenceRequest {
		return wire.InferenceRequest{Prompt: "Once upon a time", MaxTokens: ptr(40), Temperature: ptr(1.0), TopK: ptr(0), TopP: ptr(1.0), MinP: ptr(0.0), Seed: &seed}
	}
	a, _, _ := w.generate(t, req(42))
	b, _, _ := w.generate(t, req(42))
	if a != b {
		t.Fatalf("same seed, different text:\n%q\n%q", a, b)
	}
	differs := false
	for seed := uint32(1); seed < 6 && !differs; seed++ {
		c, _, _ := w.generate(t, req(seed))
		differs = c != a
	}
	if !differs {
		t.Fatal("five other seeds all gave the same text as seed 42: the seed is ignored")
	}
}

func TestBadModelFilesExitWithOneLine(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good, err := os.ReadFile(alphabetModel(t))
	if err != nil {
		t.Fatal(err)
	}
	absurd := append([]byte("GGUF"), make([]byte, 20)...)
	binary.LittleEndian.PutUint32(absurd[4:], 3)
	binary.LittleEndian.PutUint64(absurd[8:], ^uint64(0)) // tensor count
	binary.LittleEndian.PutUint64(absurd[16:], 1)
	hugeString := append([]byte("GGUF"), make([]byte, 28)...)
	binary.LittleEndian.PutUint32(hugeString[4:], 3)
	binary.LittleEndian.PutUint64(hugeString[16:], 1)
	binary.LittleEndian.PutUint64(hugeString[24:], 1<<63) // key length

	cases := map[string]string{
		"missing":       filepath.Join(dir, "nope.gguf"),
		"not gguf":      write("text.gguf", []byte("this is not a model\n")),
		"empty":         write("empty.gguf", nil),
		"truncated":     write("trunc.gguf", good[:len(good)/3]),
		"header only":   write("header.gguf", good[:24]),
		"absurd counts": write("absurd.gguf", absurd),
		"huge string":   write("string.gguf", hugeString),
		"vocab only":    filepath.Join(shared, "ggml-vocab-gpt-2.gguf"),
	}
	for name, path := range cases {
		t.Run(name, func(t *testing.T) {
			cmd := workerCmd("--model", path, "--port", "0")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			if err == nil {
				t.Fatal("worker exited 0")
			}
			lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
			if len(lines) != 1 || !strings.HasPrefix(lines[0], "llm-worker-rbee: ") {
				t.Fatalf("want one line of reason, got %q", stderr.String())
			}
		})
	}
}

// A named pipe given as the model used to block the worker forever in
// open(2). Every file that is not a regular one makes it exit 1 at once
// with one line naming it, before llama.cpp is asked to read anything.
func TestSpecialModelFilesExitWithOneLine(t *testing.T) {
	for kind, path := range testkit.SpecialFiles(t, t.TempDir()) {
		t.Run(kind, func(t *testing.T) {
			cmd := workerCmd("--model", path, "--port", "0")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			var err error
			select {
			case err = <-done:
			case <-time.After(testkit.Patience):
				cmd.Process.Kill()
				<-done
				t.Fatalf("the worker still runs after %s; stderr: %s", testkit.Patience, stderr.String())
			}
			want := "llm-worker-rbee: " + path + " is a " + kind + ", not a regular file\n"
			if cmd.ProcessState.ExitCode() != 1 || stderr.String() != want {
				t.Fatalf("exit %v, stderr %q, want %q", err, stderr.String(), want)
			}
		})
	}
}

// A worker started by hand with --queen-url derives its credential from its
// hive's token in the config folder, and refuses a folder that other users
// may write (they could swap that token): exit 1, one line with the chmod.
func TestRefusesConfigOthersMayWrite(t *testing.T) {
	home := t.TempDir()
	dir := filepath.Join(home, "rbee")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	cmd := workerCmd("--model", alphabetModel(t), "--port", "0", "--queen-url", "http://127.0.0.1:1")
	cmd.Env = append(cmd.Env, "XDG_CONFIG_HOME="+home, "RBEE_WORKER_TOKEN=")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	want := "llm-worker-rbee: refusing " + dir + ": other users may write it (mode 0777); run chmod go-w " + dir + "\n"
	if cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != 1 || stderr.String() != want {
		t.Fatalf("exit %v, stderr %q, want %q", err, stderr.String(), want)
	}
}
