package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/rbee/rbee/internal/openai"
	"github.com/rbee/rbee/internal/wire"
	"github.com/rbee/rbee/internal/workerclient"
)

const prompt = "Once upon a time"

// streamRow is one path of the streaming table: medians of its runs.
type streamRow struct {
	name      string
	ttft      time.Duration
	decodeTPS float64
	tokens    int
}

// sample is one streamed request.
type sample struct {
	ttft   time.Duration // request sent to first text
	decode time.Duration // first text to last text
	pieces int           // text events
}

func (s sample) tps() float64 {
	if s.pieces < 2 || s.decode <= 0 {
		return 0
	}
	return float64(s.pieces-1) / s.decode.Seconds()
}

// streamTable starts queen-rbee and a worker that heartbeats to it, then
// times the same chat request through the queen's OpenAI API and straight
// to the worker, alternating.
func streamTable(bin, model string, runs, tokens int) ([]streamRow, error) {
	bin, err := filepath.Abs(bin)
	if err != nil {
		return nil, err
	}
	if model, err = filepath.Abs(model); err != nil {
		return nil, err
	}
	home, err := os.MkdirTemp("", "rbee-bench-openai-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(home)
	env := isolatedEnv(home)
	// The local hive of hives.conf gets a port nothing listens on, so that
	// no hive of this machine answers the queen's catalog probes.
	if err := isolateHive(home); err != nil {
		return nil, err
	}
	queen, queenURL, err := start(filepath.Join(bin, "queen-rbee"), env, home, "--port", "0")
	if err != nil {
		return nil, err
	}
	defer stop(queen)
	modelID := strings.TrimSuffix(filepath.Base(model), ".gguf")
	worker, workerURL, err := start(filepath.Join(bin, "llm-worker-rbee"), env, home,
		"--model", model, "--model-id", modelID, "--port", "0", "--threads", "1",
		"--worker-id", "bench-worker", "--hive-id", "localhost", "--queen-url", queenURL)
	if err != nil {
		return nil, err
	}
	defer stop(worker)
	if err := waitLoaded(queenURL, modelID); err != nil {
		return nil, err
	}

	temp := 0.0
	msgs := []wire.ChatMessage{{Role: "user", Content: prompt}}
	body, _ := json.Marshal(map[string]any{
		"model": modelID, "messages": msgs, "stream": true, "max_tokens": tokens, "temperature": temp,
	})
	wc := &workerclient.Client{BaseURL: workerURL}
	req := wire.InferenceRequest{Messages: msgs, MaxTokens: &tokens, Temperature: &temp}
	paths := []struct {
		name    string
		measure func() (sample, error)
	}{
		{"queen /v1/chat/completions (SSE)", func() (sample, error) { return viaQueen(queenURL, body) }},
		{"worker direct (workerclient)", func() (sample, error) { return direct(wc, req) }},
	}
	samples := make([][]sample, len(paths))
	for i := -1; i < runs; i++ { // run -1 warms up
		for p, path := range paths {
			s, err := path.measure()
			if err != nil {
				return nil, fmt.Errorf("%s: %w", path.name, err)
			}
			if i >= 0 {
				samples[p] = append(samples[p], s)
			}
		}
	}
	rows := make([]streamRow, len(paths))
	for p, path := range paths {
		var ttfts []time.Duration
		var tps []float64
		for _, s := range samples[p] {
			ttfts = append(ttfts, s.ttft)
			tps = append(tps, s.tps())
		}
		rows[p] = streamRow{name: path.name, ttft: percentile(ttfts, 0.5), decodeTPS: medianF(tps), tokens: samples[p][0].pieces}
	}
	return rows, nil
}

// viaQueen streams a chat completion and times its content chunks.
func viaQueen(queenURL string, body []byte) (sample, error) {
	t0 := time.Now()
	resp, err := http.Post(queenURL+"/v1/chat/completions", "application/json", bytes.NewReader(body))
	if err != nil {
		return sample{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return sample{}, fmt.Errorf("HTTP %d: %s", resp.StatusCode, b)
	}
	var s sample
	var first, last time.Time
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok || data == "[DONE]" {
			continue
		}
		var c openai.ChatChunk
		if err := json.Unmarshal([]byte(data), &c); err != nil {
			return sample{}, fmt.Errorf("chunk %q: %v", data, err)
		}
		if len(c.Choices) == 0 || c.Choices[0].Delta.Content == nil || *c.Choices[0].Delta.Content == "" {
			continue
		}
		now := time.Now()
		if first.IsZero() {
			first = now
		}
		last = now
		s.pieces++
	}
	if err := sc.Err(); err != nil {
		return sample{}, err
	}
	if first.IsZero() {
		return sample{}, fmt.Errorf("no text came")
	}
	s.ttft, s.decode = first.Sub(t0), last.Sub(first)
	return s, nil
}

// direct sends the same request to the worker's own API.
func direct(wc *workerclient.Client, req wire.InferenceRequest) (sample, error) {
	var s sample
	var first, last time.Time
	t0 := time.Now()
	_, err := wc.Generate(context.Background(), req, func(e wire.Event) error {
		if e.Type != wire.TypeToken || e.T == "" {
			return nil
		}
		now := time.Now()
		if first.IsZero() {
			first = now
		}
		last = now
		s.pieces++
		return nil
	})
	if err != nil {
		return sample{}, err
	}
	if first.IsZero() {
		return sample{}, fmt.Errorf("no text came")
	}
	s.ttft, s.decode = first.Sub(t0), last.Sub(first)
	return s, nil
}

// waitLoaded waits until the queen lists the model as loaded: heartbeats,
// not the worker's own readiness, are what the queen routes by.
func waitLoaded(queenURL, model string) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(queenURL + "/v1/models/" + model)
		if err == nil {
			var m openai.Model
			_ = json.NewDecoder(resp.Body).Decode(&m)
			resp.Body.Close()
			if m.Loaded {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("the queen does not list %s as loaded", model)
}

// isolatedEnv is this process's environment with HOME and the XDG
// directories in home, and no RBEE_ variables.
func isolatedEnv(home string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k != "HOME" && !strings.HasPrefix(k, "XDG_") && !strings.HasPrefix(k, "RBEE_") {
			env = append(env, kv)
		}
	}
	return append(env, "HOME="+home, "XDG_CONFIG_HOME="+filepath.Join(home, "config"),
		"XDG_DATA_HOME="+filepath.Join(home, "data"), "XDG_CACHE_HOME="+filepath.Join(home, "cache"))
}

// start runs a daemon that prints "listening URL" first, as the queen and
// the worker do with --port 0, and returns that URL. It dies with us.
func start(path string, env []string, home string, args ...string) (*exec.Cmd, string, error) {
	logf, err := os.Create(filepath.Join(home, filepath.Base(path)+".log"))
	if err != nil {
		return nil, "", err
	}
	defer logf.Close()
	cmd := exec.Command(path, args...)
	cmd.Env, cmd.Stderr = env, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("%w (run make build first)", err)
	}
	rd := bufio.NewReader(out)
	line, err := rd.ReadString('\n')
	go func() { _, _ = io.Copy(io.Discard, rd) }()
	u, ok := strings.CutPrefix(strings.TrimSpace(line), "listening ")
	if err != nil || !ok {
		stop(cmd)
		b, _ := os.ReadFile(logf.Name())
		return nil, "", fmt.Errorf("%s did not say where it listens (%q, %v): %s", path, line, err, b)
	}
	if _, _, err := net.SplitHostPort(strings.TrimPrefix(u, "http://")); err != nil {
		stop(cmd)
		return nil, "", fmt.Errorf("%s listens at %q", path, u)
	}
	return cmd, u, nil
}

func isolateHive(home string) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	dir := filepath.Join(home, "config", "rbee")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "hives.conf"), fmt.Appendf(nil, "Host localhost\n  HivePort %d\n", port), 0o600)
}

func stop(cmd *exec.Cmd) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

func medianF(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}
