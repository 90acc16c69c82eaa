package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/rbee/rbee/bench/harness"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
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
	env := harness.IsolatedEnv(home)
	// The local hive of hives.conf gets a port nothing listens on, so that
	// no hive of this machine answers the queen's catalog probes.
	if err := harness.IsolateHive(home); err != nil {
		return nil, err
	}
	queen, queenURL, err := harness.Start(filepath.Join(bin, "queen-rbee"), env, filepath.Join(home, "queen-rbee.log"), "--port", "0")
	if err != nil {
		return nil, err
	}
	defer queen.Stop()
	modelID := strings.TrimSuffix(filepath.Base(model), ".gguf")
	worker, workerURL, err := harness.Start(filepath.Join(bin, "llm-worker-rbee"), env, filepath.Join(home, "llm-worker-rbee.log"),
		"--model", model, "--model-id", modelID, "--port", "0", "--threads", "1",
		"--worker-id", "bench-worker", "--hive-id", "localhost", "--queen-url", queenURL)
	if err != nil {
		return nil, err
	}
	defer worker.Stop()
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

func medianF(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}
