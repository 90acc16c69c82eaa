package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rbee/rbee/internal/engine"
	"github.com/rbee/rbee/internal/llama"
	"github.com/rbee/rbee/internal/wire"
	"github.com/rbee/rbee/internal/workerclient"
)

// ctxSize holds the prompt and the generated tokens of one run, with room.
const ctxSize = 1024

// measureEngine calls llama.cpp in-process: the ceiling the worker is held to.
func measureEngine(f measureFlags, r *Result) error {
	m, err := llama.Load(f.model, llama.Options{
		Threads: f.threads, CtxSize: ctxSize, Slots: 1, Device: f.device, GPULayers: f.layers,
	})
	if err != nil {
		return err
	}
	// Close does not free a model on a GPU (llama_free would crash); the
	// process exits right after.
	defer m.Close()
	info := m.Info()
	r.DeviceName, r.DeviceMemBytes, r.LayersUsed = info.DeviceName, info.DeviceMemoryBytes, info.GPULayers
	toks, err := m.Tokenize(prompt(f.promptLen))
	if err != nil {
		return err
	}
	r.PromptTokens, r.GenTokens = len(toks), f.tokens
	for i := range f.runs + 1 {
		p, d, err := engineRun(m, toks, f.tokens)
		if err != nil {
			return err
		}
		if i > 0 { // the first run warms up kernels, graphs and caches
			r.PromptTPS, r.DecodeTPS = append(r.PromptTPS, p), append(r.DecodeTPS, d)
		}
	}
	return nil
}

// engineRun evaluates the prompt and generates n tokens greedily, ignoring
// end-of-generation tokens so that every run does the same work.
func engineRun(m engine.Model, toks []engine.Token, n int) (promptTPS, decodeTPS float64, err error) {
	seq, err := m.NewSequence(engine.Sampling{})
	if err != nil {
		return 0, 0, err
	}
	defer seq.Close()
	start := time.Now()
	if err := seq.Prefill(context.Background(), toks); err != nil {
		return 0, 0, err
	}
	tok := seq.Sample()
	if _, err := m.Piece(tok); err != nil {
		return 0, 0, err
	}
	first := time.Now()
	for range n - 1 {
		if err := seq.Decode(tok); err != nil {
			return 0, 0, err
		}
		tok = seq.Sample()
		if _, err := m.Piece(tok); err != nil {
			return 0, 0, err
		}
	}
	return float64(len(toks)) / first.Sub(start).Seconds(), float64(n-1) / time.Since(first).Seconds(), nil
}

// measureWorker runs llm-worker-rbee and measures it over HTTP and SSE as
// the queen uses it: decode speed from the first token's arrival to the
// end of the stream, prompt speed as the worker timed its prefill. Then it
// stops the worker as the hive does and records how it exited: a GPU
// worker must not crash on its way out.
func measureWorker(f measureFlags, r *Result) error {
	args := []string{"--model", f.model, "--port", "0", "--device", f.device, "--threads", fmt.Sprint(f.threads),
		"--ctx-size", fmt.Sprint(ctxSize), "--slots", "1"}
	if f.layers >= 0 {
		args = append(args, "--gpu-layers", fmt.Sprint(f.layers))
	}
	cmd := exec.Command(f.bin, args...)
	var stderr tail
	cmd.Stderr = io.MultiWriter(os.Stderr, &stderr)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}()
	line, err := bufio.NewReader(out).ReadString('\n')
	url, ok := strings.CutPrefix(strings.TrimSpace(line), "listening ")
	if err != nil || !ok {
		werr := cmd.Wait()
		stopped = true
		return fmt.Errorf("the worker did not start (%v): %s", werr, stderr.last())
	}
	go func() { _, _ = io.Copy(io.Discard, out) }()

	c := &workerclient.Client{BaseURL: url}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := c.WaitReady(ctx); err != nil {
		return fmt.Errorf("%v: %s", err, stderr.last())
	}
	rd, err := c.Ready(ctx)
	if err != nil {
		return err
	}
	r.DeviceName, r.DeviceMemBytes, r.LayersUsed = rd.DeviceName, rd.DeviceMemoryBytes, rd.GPULayers
	p := prompt(f.promptLen)
	for i := range f.runs + 1 {
		pt, dt, in, n, err := workerRun(ctx, c, p, f.tokens)
		if err != nil {
			return err
		}
		r.PromptTokens, r.GenTokens = in, n
		if i > 0 {
			r.PromptTPS, r.DecodeTPS = append(r.PromptTPS, pt), append(r.DecodeTPS, dt)
		}
	}
	r.Exit = stop(cmd)
	stopped = true
	return nil
}

func workerRun(ctx context.Context, c *workerclient.Client, p string, n int) (promptTPS, decodeTPS float64, in, out int, err error) {
	zero := 0.0
	var first, last time.Time
	end, err := c.Generate(ctx, wire.InferenceRequest{Prompt: p, MaxTokens: &n, Temperature: &zero}, func(e wire.Event) error {
		last = time.Now()
		if e.Type == wire.TypeToken && first.IsZero() {
			first = last
		}
		return nil
	})
	if err != nil {
		return 0, 0, 0, 0, err
	}
	// Random weights may end early on an end-of-generation token: the rate
	// is over the tokens there were.
	if end.TokensOut < 2 || first.IsZero() || end.Timings == nil || end.Timings.PromptTPS <= 0 {
		return 0, 0, 0, 0, fmt.Errorf("the worker generated %d tokens (%s): too few to time", end.TokensOut, end.StopReason)
	}
	return end.Timings.PromptTPS, float64(end.TokensOut-1) / last.Sub(first).Seconds(), end.TokensIn, end.TokensOut, nil
}

// stop sends SIGTERM, as the hive does, and says how the worker ended.
func stop(cmd *exec.Cmd) string {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			return "exit 0"
		}
		return err.Error()
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		return "still running 30 s after SIGTERM: killed"
	}
}

// tail keeps the end of what a process wrote.
type tail struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > 8<<10 {
		t.buf = t.buf[len(t.buf)-4<<10:]
	}
	return len(p), nil
}

// last is the last line written.
func (t *tail) last() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := strings.TrimSpace(string(t.buf))
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return s
}
