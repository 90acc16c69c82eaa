package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rbee/rbee/internal/httpapi"
	"github.com/rbee/rbee/internal/jobs"
	"github.com/rbee/rbee/internal/wire"
)

// beatRow is the heartbeat table.
type beatRow struct {
	workers     int
	every       time.Duration
	window      time.Duration
	idleCPU     float64 // share of one core, before the heartbeats
	beatCPU     float64 // share of one core, with them
	rate        float64 // heartbeats per second the queen took
	errors      int64
	firstErr    string
	registered  int // workers the queen lists as ready at the end
	rssIdle     int64
	rssWith     int64
	p50, p99    time.Duration // of one heartbeat's round trip
	idleMeasure time.Duration
}

// heartbeatLoad has n simulated workers of hive "bench" (whose token is
// hiveToken) send a heartbeat every `every`, with their credentials,
// spread evenly over the interval, each over its own kept-alive connection
// as a real worker's is, and measures the queen's CPU time over window.
func heartbeatLoad(queenURL, hiveToken string, pid, n int, every, idle, window time.Duration) (beatRow, error) {
	row := beatRow{workers: n, every: every, window: window, idleMeasure: idle}
	cpu0, err := cpuTime(pid)
	if err != nil {
		return row, err
	}
	t0 := time.Now()
	time.Sleep(idle)
	cpu1, _ := cpuTime(pid)
	row.idleCPU = (cpu1 - cpu0).Seconds() / time.Since(t0).Seconds()
	row.rssIdle, _ = rssBytes(pid)

	ctx, cancel := context.WithCancel(context.Background())
	var (
		wg       sync.WaitGroup
		sent     atomic.Int64
		failed   atomic.Int64
		errOnce  sync.Once
		mu       sync.Mutex
		measured bool
		lat      []time.Duration
	)
	for i := range n {
		wg.Go(func() {
			client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			defer client.CloseIdleConnections()
			id := "sim-" + strconv.Itoa(i)
			queen := &jobs.Client{BaseURL: queenURL, HTTP: client, Token: httpapi.WorkerToken(hiveToken, id)}
			hb := wire.Heartbeat{WorkerID: id, HiveID: "bench", Model: "sim-model",
				URL: "http://127.0.0.1:9", State: wire.StateReady, Slots: 4, PID: 1000 + i}
			select {
			case <-ctx.Done():
				return
			case <-time.After(every * time.Duration(i) / time.Duration(n)):
			}
			t := time.NewTicker(every)
			defer t.Stop()
			for {
				start := time.Now()
				if err := queen.Heartbeat(ctx, hb); err != nil {
					if ctx.Err() != nil {
						return
					}
					failed.Add(1)
					errOnce.Do(func() { row.firstErr = err.Error() })
				} else {
					sent.Add(1)
					mu.Lock()
					if measured {
						lat = append(lat, time.Since(start))
					}
					mu.Unlock()
				}
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
		})
	}
	// Two intervals: every worker has registered and holds its connection.
	time.Sleep(2 * every)
	mu.Lock()
	measured = true
	mu.Unlock()
	s0, f0 := sent.Load(), failed.Load()
	cpu0, _ = cpuTime(pid)
	t0 = time.Now()
	time.Sleep(window)
	cpu1, _ = cpuTime(pid)
	took := time.Since(t0)
	s1, f1 := sent.Load(), failed.Load()
	row.rssWith, _ = rssBytes(pid)
	row.registered = countReady(queenURL, "bench")
	cancel()
	wg.Wait()
	row.beatCPU = (cpu1 - cpu0).Seconds() / took.Seconds()
	row.rate = float64(s1-s0) / took.Seconds()
	row.errors = f1 - f0
	row.p50, row.p99 = percentile(lat, 0.5), percentile(lat, 0.99)
	if row.registered != n {
		return row, fmt.Errorf("the queen lists %d of %d simulated workers as ready", row.registered, n)
	}
	return row, nil
}

// countReady asks the queen's status how many workers of hive are ready.
func countReady(queenURL, hive string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ev, err := (&jobs.Client{BaseURL: queenURL}).Run(ctx, wire.Operation{Operation: wire.OpStatus}, nil)
	if err != nil {
		return -1
	}
	var st struct {
		Workers []wire.WorkerStatus `json:"workers"`
	}
	if err := json.Unmarshal(ev.Data, &st); err != nil {
		return -1
	}
	n := 0
	for _, w := range st.Workers {
		if w.HiveID == hive && w.State == wire.StateReady {
			n++
		}
	}
	return n
}
