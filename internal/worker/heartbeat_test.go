package worker

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/rbee/rbee/internal/engine/fake"
	"github.com/rbee/rbee/internal/testkit"
	"github.com/rbee/rbee/internal/wire"
)

// fakeQueen records heartbeats and fails the first failFirst of them.
type fakeQueen struct {
	mu        sync.Mutex
	beats     []wire.Heartbeat
	calls     int
	failFirst int
}

func (q *fakeQueen) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.calls++
	if r.URL.Path != "/v1/workers/heartbeat" || r.Method != http.MethodPost {
		http.NotFound(w, r)
		return
	}
	if q.calls <= q.failFirst {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	var hb wire.Heartbeat
	if err := json.NewDecoder(r.Body).Decode(&hb); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	q.beats = append(q.beats, hb)
}

func (q *fakeQueen) snapshot() (calls int, beats []wire.Heartbeat) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.calls, append([]wire.Heartbeat(nil), q.beats...)
}

// testQueen serves q until the test's end and returns its URL.
func testQueen(t *testing.T, q *fakeQueen) string {
	qs := httptest.NewServer(q)
	t.Cleanup(qs.Close)
	return qs.URL
}

func TestHeartbeats(t *testing.T) {
	q := &fakeQueen{}
	qs := httptest.NewServer(q)
	defer qs.Close()
	w := start(t, &fake.Model{}, func(c *Config) {
		c.QueenURL = qs.URL
		c.URL = "http://127.0.0.1:9999"
		c.HeartbeatInterval = 20 * time.Millisecond
	})
	testkit.WaitFor(t, "ready heartbeats", func() bool {
		_, beats := q.snapshot()
		return len(beats) >= 3 && beats[len(beats)-1].State == wire.StateReady
	})
	_, beats := q.snapshot()
	hb := beats[len(beats)-1]
	if hb.WorkerID != "w1" || hb.HiveID != "localhost" || hb.Model != "fake" || hb.URL != "http://127.0.0.1:9999" || hb.Slots != 1 || hb.PID == 0 {
		t.Fatalf("heartbeat %+v", hb)
	}
	_ = w
}

func TestHeartbeatBacksOffAndRecovers(t *testing.T) {
	q := &fakeQueen{failFirst: 3}
	qs := httptest.NewServer(q)
	defer qs.Close()
	w := start(t, &fake.Model{}, func(c *Config) {
		c.QueenURL = qs.URL
		c.HeartbeatInterval = 10 * time.Millisecond
	})
	// The worker serves while the queen refuses its heartbeats.
	if text, _ := w.stream(t, w.submit(t, `{"prompt":"w"}`)); text != "xyz" {
		t.Fatalf("text %q", text)
	}
	testkit.WaitFor(t, "heartbeats to get through", func() bool {
		_, beats := q.snapshot()
		return len(beats) >= 1
	})
	calls, _ := q.snapshot()
	if calls < 4 {
		t.Fatalf("%d calls; want the 3 failures retried", calls)
	}
}

func TestHeartbeatWithoutQueen(t *testing.T) {
	// Nothing listens here: the worker keeps serving.
	w := start(t, &fake.Model{}, func(c *Config) {
		c.QueenURL = "http://127.0.0.1:1"
		c.HeartbeatInterval = 10 * time.Millisecond
	})
	time.Sleep(50 * time.Millisecond)
	if text, _ := w.stream(t, w.submit(t, `{"prompt":"w"}`)); text != "xyz" {
		t.Fatalf("text %q", text)
	}
}
