package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rbee/rbee/internal/config"
	"github.com/rbee/rbee/internal/queen"
	"github.com/rbee/rbee/internal/sse"
	"github.com/rbee/rbee/internal/wire"
	"github.com/rbee/rbee/internal/workerclient"
)

// fakeTokens is what each fake worker generates for every request.
var fakeTokens = []string{"one", " two", " three", " four"}

// loadRow is one path of the load table.
type loadRow struct {
	name     string
	conc     int
	rps      float64
	p50, p99 time.Duration
	errors   int
}

// serveFakeWorker serves the worker's inference API on a loopback port and
// answers every request at once with fakeTokens.
func serveFakeWorker() (string, func(), error) {
	var next atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/inference", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
		id := "inf-" + strconv.FormatInt(next.Add(1), 10)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"job_id":%q,"sse_url":"/v1/inference/%s/stream"}`, id, id)
	})
	mux.HandleFunc("GET /v1/inference/{id}/stream", func(w http.ResponseWriter, r *http.Request) {
		sw := sse.NewWriter(w)
		for i, t := range fakeTokens {
			_ = sw.Event(wire.NewToken(t, i))
		}
		_ = sw.Event(wire.End{Type: wire.TypeEnd, StopReason: wire.StopMaxTokens, TokensIn: 2, TokensOut: len(fakeTokens)})
		_ = sw.Done()
	})
	mux.HandleFunc("DELETE /v1/inference/{id}", func(w http.ResponseWriter, r *http.Request) {})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: mux}
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), func() { _ = srv.Close() }, nil
}

// rig is the load table's setup: fake workers, an in-process queen (the
// code of queen-rbee, with its defaults) whose registry holds them, and
// the two ways to send the same small request.
type rig struct {
	viaQueen, direct func() error
	close            func()
}

func newRig(nworkers int) (*rig, error) {
	var closers []func()
	r := &rig{close: func() {
		for _, c := range closers {
			c()
		}
	}}
	var urls []string
	for range nworkers {
		u, closeFn, err := serveFakeWorker()
		if err != nil {
			r.close()
			return nil, err
		}
		closers = append(closers, closeFn)
		urls = append(urls, u)
	}
	q := queen.New(queen.Options{
		URL:      "http://127.0.0.1",
		Loopback: true,
		Hives:    func() ([]config.Hive, error) { return nil, nil },
		Logger:   slog.New(slog.DiscardHandler),
	})
	closers = append(closers, func() { _ = q.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		r.close()
		return nil, err
	}
	srv := &http.Server{Handler: q.Handler()}
	go func() { _ = srv.Serve(ln) }()
	closers = append(closers, func() { _ = srv.Close() })
	queenURL := "http://" + ln.Addr().String()

	// Heartbeats keep the fake workers alive in the registry.
	ctx, cancel := context.WithCancel(context.Background())
	closers = append(closers, cancel)
	beat := func() {
		for i, u := range urls {
			_ = q.Workers().Heartbeat(wire.Heartbeat{WorkerID: "fake-" + strconv.Itoa(i), HiveID: "bench", Model: "fake",
				URL: u, State: wire.StateReady, Slots: 64})
		}
	}
	beat()
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				beat()
			}
		}
	}()

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxIdleConns: 1024}}
	body := []byte(`{"model":"fake","prompt":"hello","max_tokens":4}`)
	r.viaQueen = func() error {
		resp, err := client.Post(queenURL+"/v1/completions", "application/json", bytes.NewReader(body))
		if err != nil {
			return err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil && (resp.StatusCode != http.StatusOK || !bytes.Contains(b, []byte(`"text":"one two three four"`))) {
			err = fmt.Errorf("HTTP %d: %s", resp.StatusCode, b)
		}
		return err
	}
	maxTok := 4
	req := wire.InferenceRequest{Prompt: "hello", MaxTokens: &maxTok}
	var rr atomic.Int64
	r.direct = func() error {
		wc := &workerclient.Client{BaseURL: urls[int(rr.Add(1))%len(urls)], HTTP: client}
		var text bytes.Buffer
		_, err := wc.Generate(context.Background(), req, func(e wire.Event) error {
			text.WriteString(e.T)
			return nil
		})
		if err == nil && text.String() != "one two three four" {
			err = fmt.Errorf("text %q", text.String())
		}
		return err
	}
	return r, nil
}

// measure runs the same load through the queen and straight at the fake
// workers, reps times each, taking turns so that a burst of other work on
// the machine falls on both rather than on one.
func (r *rig) measure(conc int, d time.Duration, reps int) []loadRow {
	paths := []struct {
		name string
		do   func() error
	}{
		{"queen /v1/completions", r.viaQueen},
		{"fake worker direct (workerclient)", r.direct},
	}
	runs := make([][]loadRow, len(paths))
	for _, p := range paths {
		_ = hammer(conc, 300*time.Millisecond, p.do) // warm-up: connections, caches
	}
	for range reps {
		for i, p := range paths {
			runs[i] = append(runs[i], hammer(conc, d, p.do))
		}
	}
	rows := make([]loadRow, len(paths))
	for i, p := range paths {
		rows[i] = medianRow(runs[i])
		rows[i].name = p.name
		rows[i].conc = conc
	}
	return rows
}

// medianRow takes the median of each figure of several runs, and the sum
// of their errors.
func medianRow(rs []loadRow) loadRow {
	var out loadRow
	var rps []float64
	var p50, p99 []time.Duration
	for _, r := range rs {
		rps, p50, p99 = append(rps, r.rps), append(p50, r.p50), append(p99, r.p99)
		out.errors += r.errors
	}
	out.rps, out.p50, out.p99 = medianF(rps), percentile(p50, 0.5), percentile(p99, 0.5)
	return out
}

// hammer runs do from conc goroutines for d and measures each call.
func hammer(conc int, d time.Duration, do func() error) loadRow {
	var (
		mu     sync.Mutex
		lat    []time.Duration
		errs   int
		wg     sync.WaitGroup
		start  = time.Now()
		finish = start.Add(d)
	)
	for range conc {
		wg.Go(func() {
			var mine []time.Duration
			bad := 0
			for time.Now().Before(finish) {
				t0 := time.Now()
				if err := do(); err != nil {
					bad++
					continue
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			errs += bad
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	return loadRow{rps: float64(len(lat)) / elapsed.Seconds(), p50: percentile(lat, 0.5), p99: percentile(lat, 0.99), errors: errs}
}
