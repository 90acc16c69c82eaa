package queen

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rbee/rbee/internal/config"
	"github.com/rbee/rbee/internal/jobs"
	"github.com/rbee/rbee/internal/testkit"
	"github.com/rbee/rbee/internal/testkit/fakeworker"
	"github.com/rbee/rbee/internal/wire"
)

func TestHeartbeatThenStatus(t *testing.T) {
	h := newFakeHive(t, "localhost", map[string]jobs.RunFunc{
		wire.OpModelList: func(j *jobs.Job) error {
			j.Emit(wire.NewResult([]wire.ModelInfo{{ID: "alphabet", SizeBytes: 123}}))
			return nil
		},
	})
	down := deadHive(t, "box")
	q := newQueen(t, []config.Hive{h.hive, down}, nil)
	w := fakeworker.NewT(t, fakeworker.Config{ID: "w1"})
	beaten := time.Now()
	q.beat(t, w.Heartbeat("alphabet", wire.StateBusy, 1))

	var st wire.Status
	q.result(t, wire.Operation{Operation: wire.OpStatus}, &st)
	if st.Queen.URL != "http://queen.test" {
		t.Errorf("queen %+v", st.Queen)
	}
	if len(st.Hives) != 2 || st.Hives[0].State != wire.HiveOnline || st.Hives[0].HiveID != "localhost" ||
		st.Hives[1].State != wire.HiveOffline || st.Hives[1].Alias != "box" || st.Hives[1].Error == "" {
		t.Errorf("hives %+v", st.Hives)
	}
	if len(st.Workers) != 1 {
		t.Fatalf("workers %+v", st.Workers)
	}
	if ws := st.Workers[0]; ws.WorkerID != "w1" || ws.State != wire.StateBusy || ws.Active != 1 || ws.URL != w.URL || ws.LastSeenMs < 0 || ws.LastSeenMs > time.Since(beaten).Milliseconds() {
		t.Errorf("worker %+v", ws)
	}
	if len(st.Models) != 1 || st.Models[0].ID != "alphabet" || st.Models[0].HiveID != "localhost" || st.Models[0].SizeBytes != 123 {
		t.Errorf("models %+v", st.Models)
	}
}

// A hive that hangs on model_list cannot stall status beyond its timeout.
func TestStatusSlowHive(t *testing.T) {
	slow := newFakeHive(t, "localhost", map[string]jobs.RunFunc{
		wire.OpModelList: func(j *jobs.Job) error {
			<-j.Context().Done()
			return nil
		},
	})
	q := newQueen(t, []config.Hive{slow.hive}, func(o *Options) { o.HealthTimeout = 200 * time.Millisecond })
	var st wire.Status
	q.result(t, wire.Operation{Operation: wire.OpStatus}, &st)
	if len(st.Models) != 0 || st.Models == nil || st.Workers == nil {
		t.Fatalf("status %+v", st)
	}
}

func TestWorkerGoneAfterTimeout(t *testing.T) {
	q := newQueen(t, nil, func(o *Options) { o.WorkerTimeout = 150 * time.Millisecond })
	w := fakeworker.NewT(t, fakeworker.Config{ID: "w1"})
	q.beat(t, w.Heartbeat("m", wire.StateReady, 0))
	testkit.WaitFor(t, "worker gone", func() bool {
		var st wire.Status
		q.result(t, wire.Operation{Operation: wire.OpStatus}, &st)
		return len(st.Workers) == 1 && st.Workers[0].State == wire.StateGone && st.Workers[0].GoneReason != ""
	})
	// A gone heartbeat marks a live worker gone at once.
	q.beat(t, w.Heartbeat("m", wire.StateReady, 0))
	q.beat(t, w.Heartbeat("m", wire.StateGone, 0))
	if wk, _ := q.Workers().Get("w1"); wk.State != wire.StateGone {
		t.Fatalf("after a gone heartbeat: %+v", wk)
	}
}

func TestBadHeartbeats(t *testing.T) {
	q := newQueen(t, nil, nil)
	good := `"worker_id":"w1","hive_id":"localhost","model":"m","url":"http://127.0.0.1:9","state":"ready","slots":1,"active":0,"queue_len":0`
	for name, body := range map[string]string{
		"empty":         ``,
		"not json":      `{"worker_id":`,
		"array":         `[]`,
		"unknown field": `{` + good + `,"evil":1}`,
		"no worker id":  strings.Replace(`{`+good+`}`, `"worker_id":"w1"`, `"worker_id":""`, 1),
		"bad url":       strings.Replace(`{`+good+`}`, `http://127.0.0.1:9`, `file:///etc/passwd`, 1),
		"bad state":     strings.Replace(`{`+good+`}`, `"ready"`, `"dancing"`, 1),
		"negative":      strings.Replace(`{`+good+`}`, `"active":0`, `"active":-3`, 1),
		"wrong type":    strings.Replace(`{`+good+`}`, `"slots":1`, `"slots":"one"`, 1),
		"trailing":      `{` + good + `}{}`,
	} {
		if code, eb := q.post(t, "/v1/workers/heartbeat", []byte(body)); code != http.StatusBadRequest || eb.Error.Code == "" {
			t.Errorf("%s: %d %+v", name, code, eb)
		}
	}
	huge := `{` + good + `,"device":"` + strings.Repeat("x", 2<<20) + `"}`
	if code, _ := q.post(t, "/v1/workers/heartbeat", []byte(huge)); code != http.StatusRequestEntityTooLarge {
		t.Errorf("huge: %d", code)
	}
	if q.Workers().Len() != 0 {
		t.Fatal("a bad heartbeat was registered")
	}
	if code, _ := q.postAs(t, "/v1/workers/heartbeat", q.credential(t, "localhost", "w1"), []byte(`{`+good+`}`)); code != http.StatusOK {
		t.Fatalf("good heartbeat: %d", code)
	}
}

func TestAuth(t *testing.T) {
	q := newQueen(t, nil, func(o *Options) { o.Token = "s3cret" })
	resp, err := q.srv.Client().Get(q.srv.URL + "/health")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("health without token: %v %v", resp, err)
	}
	resp.Body.Close()
	hb, _ := json.Marshal(wire.Heartbeat{WorkerID: "w1", HiveID: "localhost", Model: "m", URL: "http://127.0.0.1:9", State: wire.StateReady, Slots: 1})
	for _, path := range []string{"/v1/workers/heartbeat", "/v1/jobs", "/v1/shutdown"} {
		if code, eb := q.post(t, path, hb); code != http.StatusUnauthorized || eb.Error.Code != wire.CodeUnauthorized {
			t.Errorf("%s without token: %d %+v", path, code, eb)
		}
	}
	// The client carries the token.
	var st wire.Status
	q.result(t, wire.Operation{Operation: wire.OpStatus}, &st)
}

func TestForeignHostRefused(t *testing.T) {
	q := newQueen(t, nil, nil)
	req, _ := http.NewRequest(http.MethodGet, q.srv.URL+"/health", nil)
	req.Host = "evil.example:7833"
	resp, err := q.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("foreign Host: %d", resp.StatusCode)
	}
}

func TestShutdownEndpoint(t *testing.T) {
	called := make(chan struct{})
	q := newQueen(t, nil, func(o *Options) { o.Shutdown = func() { close(called) } })
	if code, _ := q.post(t, "/v1/shutdown", nil); code != http.StatusAccepted {
		t.Fatalf("shutdown: %d", code)
	}
	testkit.Receive(t, "the Shutdown call", called)
	if code, _ := q.post(t, "/v1/nothing", nil); code != http.StatusNotFound {
		t.Fatalf("unknown endpoint: %d", code)
	}
}
