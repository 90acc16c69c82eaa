package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/rbee/rbee/internal/sse"
	"github.com/rbee/rbee/internal/wire"
)

// fakeWorker serves the worker's inference API like llm-worker-rbee, on a
// loopback port of this process, and heartbeats to the queen as it does:
// every interval, and at once when its load changes. Each stream sends its
// first token at once, then waits for the gate of the current round to
// open, then sends the rest and its end.
type fakeWorker struct {
	id, url string
	slots   int
	tokens  int
	gate    atomic.Pointer[chan struct{}]
	active  atomic.Int32
	next    atomic.Int64
	kick    chan struct{}
	srv     *http.Server
}

func startFakeWorker(id string, slots, tokens int) (*fakeWorker, error) {
	w := &fakeWorker{id: id, slots: slots, tokens: tokens, kick: make(chan struct{}, 1)}
	open := make(chan struct{})
	close(open)
	w.gate.Store(&open)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/inference", func(rw http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
		job := "inf-" + strconv.FormatInt(w.next.Add(1), 10)
		rw.Header().Set("Content-Type", "application/json")
		rw.WriteHeader(http.StatusCreated)
		fmt.Fprintf(rw, `{"job_id":%q,"sse_url":"/v1/inference/%s/stream"}`, job, job)
	})
	mux.HandleFunc("GET /v1/inference/{id}/stream", w.stream)
	mux.HandleFunc("DELETE /v1/inference/{id}", func(http.ResponseWriter, *http.Request) {})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	w.url = "http://" + ln.Addr().String()
	w.srv = &http.Server{Handler: mux}
	go func() { _ = w.srv.Serve(ln) }()
	return w, nil
}

func (w *fakeWorker) stream(rw http.ResponseWriter, r *http.Request) {
	gate := *w.gate.Load()
	w.active.Add(1)
	w.nudge()
	defer func() {
		w.active.Add(-1)
		w.nudge()
	}()
	sw := sse.NewWriter(rw)
	if sw.Event(wire.NewToken("t0", 0)) != nil {
		return
	}
	select {
	case <-gate:
	case <-r.Context().Done():
		return
	}
	for i := 1; i < w.tokens; i++ {
		if sw.Event(wire.NewToken(" t"+strconv.Itoa(i), i)) != nil {
			return
		}
	}
	_ = sw.Event(wire.End{Type: wire.TypeEnd, StopReason: wire.StopMaxTokens, TokensIn: 2, TokensOut: w.tokens})
	_ = sw.Done()
}

// hold makes the streams that start from now on wait after their first
// token until release is called.
func (w *fakeWorker) hold(gate chan struct{}) { w.gate.Store(&gate) }

func (w *fakeWorker) nudge() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// heartbeats posts the worker's load to the queen until ctx ends.
func (w *fakeWorker) heartbeats(ctx context.Context, client *http.Client, queenURL string, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		hb := wire.Heartbeat{WorkerID: w.id, HiveID: "bench", Model: "fake", URL: w.url, State: wire.StateReady,
			Slots: w.slots, Active: int(w.active.Load())}
		_ = postJSON(ctx, client, queenURL+"/v1/workers/heartbeat", hb)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-w.kick:
		}
	}
}

func (w *fakeWorker) close() { _ = w.srv.Close() }

// postJSON posts v and reads the answer, failing on a non-2xx status.
func postJSON(ctx context.Context, client *http.Client, url string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, body)
	}
	return nil
}
