package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rbee/rbee/internal/sse"
	"github.com/rbee/rbee/internal/testkit/fakeworker"
	"github.com/rbee/rbee/internal/wire"
)

// streamRow is one path of the streams table.
type streamRow struct {
	name      string
	streams   int
	errors    int
	firstErr  error
	ttft      []time.Duration // request sent to first token, of the streams that got one
	rssBase   int64           // the queen's VmRSS before the streams (0: not measured)
	rssPeak   int64           // and with every stream open
	allOpen   bool            // every stream had its first token at once
	openAfter time.Duration   // from the first request to the last first token
}

// openFn runs one stream to its end: it calls first at its first token, and
// fails unless the text is whole.
type openFn func(ctx context.Context, i int, first func()) error

// runStreams opens n streams at once and holds each after its first token
// until all have theirs (or failed), so that all n are open together; then
// it measures (the queen's memory, when pid > 0) and lets them finish.
func runStreams(name string, n int, workers []*fakeworker.Worker, pid int, open openFn) streamRow {
	row := streamRow{name: name, streams: n}
	gate := make(chan struct{})
	for _, w := range workers {
		w.SetGate(gate, 1) // after the first token
	}
	defer func() {
		for _, w := range workers {
			w.SetGate(nil, 0)
		}
	}()
	if pid > 0 {
		row.rssBase, _ = rssBytes(pid)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var (
		mu      sync.Mutex
		firsts  sync.WaitGroup
		all     sync.WaitGroup
		started = time.Now()
		lastTok time.Time
	)
	firsts.Add(n)
	for i := range n {
		all.Go(func() {
			t0 := time.Now()
			var once sync.Once
			first := func() {
				once.Do(func() {
					now := time.Now()
					mu.Lock()
					row.ttft = append(row.ttft, now.Sub(t0))
					if now.After(lastTok) {
						lastTok = now
					}
					mu.Unlock()
					firsts.Done()
				})
			}
			err := open(ctx, i, first)
			once.Do(firsts.Done) // a stream that failed before its first token
			if err != nil {
				mu.Lock()
				row.errors++
				if row.firstErr == nil {
					row.firstErr = err
				}
				mu.Unlock()
			}
		})
	}
	waitOrCtx(ctx, &firsts)
	mu.Lock()
	row.allOpen = len(row.ttft) == n
	row.openAfter = lastTok.Sub(started)
	mu.Unlock()
	if pid > 0 {
		row.rssPeak, _ = rssBytes(pid)
	}
	close(gate)
	all.Wait()
	return row
}

func waitOrCtx(ctx context.Context, wg *sync.WaitGroup) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// wantText is what every fake stream says.
func wantText(tokens int) string {
	var b strings.Builder
	for i := range tokens {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString("t" + strconv.Itoa(i))
	}
	return b.String()
}

// readEvents reads an SSE stream of rbee events, calling first at the
// first token, and returns the text and the terminal event.
func readEvents(body io.Reader, first func()) (string, wire.Event, error) {
	rd := sse.NewReader(body)
	var text strings.Builder
	for {
		data, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return text.String(), wire.Event{}, errors.New("[DONE] before the end event")
		}
		if err != nil {
			return text.String(), wire.Event{}, err
		}
		var ev wire.Event
		if err := json.Unmarshal(data, &ev); err != nil {
			return text.String(), wire.Event{}, err
		}
		switch ev.Type {
		case wire.TypeToken:
			first()
			text.WriteString(ev.T)
		case wire.TypeEnd, wire.TypeError, wire.TypeResult:
			return text.String(), ev, nil
		}
	}
}

func checkEnd(text string, end wire.Event, tokens int) error {
	if end.Type != wire.TypeEnd {
		return fmt.Errorf("stream ended with %s %s: %s", end.Type, end.Code, end.Message)
	}
	if want := wantText(tokens); text != want {
		return fmt.Errorf("text %q, want %q", text, want)
	}
	return nil
}

func do(ctx context.Context, client *http.Client, method, url string, body []byte) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		return nil, fmt.Errorf("%s %s: HTTP %d: %s", method, url, resp.StatusCode, b)
	}
	return resp, nil
}

// direct is a stream straight from a fake worker, as the queen itself
// opens one: POST the request, GET its stream.
func direct(client *http.Client, workers []*fakeworker.Worker, tokens int) openFn {
	body, _ := json.Marshal(wire.InferenceRequest{Prompt: "hello", MaxTokens: &tokens})
	return func(ctx context.Context, i int, first func()) error {
		return postThenStream(ctx, client, workers[i%len(workers)].URL, "/v1/inference", body, first, tokens)
	}
}

// viaJobs is an infer job through the queen: POST /v1/jobs, GET its stream.
func viaJobs(client *http.Client, queenURL string, tokens int) openFn {
	body, _ := json.Marshal(wire.Operation{Operation: wire.OpInfer, Model: "fake", InferenceRequest: wire.InferenceRequest{Prompt: "hello", MaxTokens: &tokens}})
	return func(ctx context.Context, _ int, first func()) error {
		return postThenStream(ctx, client, queenURL, "/v1/jobs", body, first, tokens)
	}
}

// postThenStream is the dual call both a worker and the job protocol use:
// POST creates the job, GET of its sse_url streams it to the end.
func postThenStream(ctx context.Context, client *http.Client, base, path string, body []byte, first func(), tokens int) error {
	resp, err := do(ctx, client, http.MethodPost, base+path, body)
	if err != nil {
		return err
	}
	var jc wire.JobCreated
	err = json.NewDecoder(resp.Body).Decode(&jc)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp, err = do(ctx, client, http.MethodGet, base+jc.SSEURL, nil); err != nil {
		return err
	}
	defer resp.Body.Close()
	text, end, err := readEvents(resp.Body, first)
	if err != nil {
		return err
	}
	return checkEnd(text, end, tokens)
}

// viaOpenAI is a streamed chat completion through the queen's OpenAI API.
func viaOpenAI(client *http.Client, queenURL string, tokens int) openFn {
	body, _ := json.Marshal(map[string]any{
		"model": "fake", "messages": []wire.ChatMessage{{Role: "user", Content: "hello"}},
		"max_tokens": tokens, "stream": true,
	})
	return func(ctx context.Context, _ int, first func()) error {
		resp, err := do(ctx, client, http.MethodPost, queenURL+"/v1/chat/completions", body)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		rd := sse.NewReader(resp.Body)
		var text strings.Builder
		for {
			data, err := rd.Next()
			if errors.Is(err, io.EOF) {
				if want := wantText(tokens); text.String() != want {
					return fmt.Errorf("text %q, want %q", text.String(), want)
				}
				return nil
			}
			if err != nil {
				return err
			}
			var chunk struct {
				Choices []struct {
					Delta struct {
						Content string `json:"content"`
					} `json:"delta"`
				} `json:"choices"`
				Error *struct {
					Message string `json:"message"`
				} `json:"error"`
			}
			if err := json.Unmarshal(data, &chunk); err != nil {
				return err
			}
			if chunk.Error != nil {
				return errors.New(chunk.Error.Message)
			}
			if len(chunk.Choices) > 0 && chunk.Choices[0].Delta.Content != "" {
				first()
				text.WriteString(chunk.Choices[0].Delta.Content)
			}
		}
	}
}
