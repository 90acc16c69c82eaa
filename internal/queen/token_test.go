package queen

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rbee/rbee/internal/config"
	"github.com/rbee/rbee/internal/httpapi"
	"github.com/rbee/rbee/internal/jobs"
	"github.com/rbee/rbee/internal/testkit"
	"github.com/rbee/rbee/internal/testkit/fakeworker"
	"github.com/rbee/rbee/internal/wire"
)

// The queen's token authorises callers of the queen and nothing else: a
// hive with a token of its own, and that hive's workers, are sent that
// token on every request, whatever the queen does with them (probes,
// capabilities, forwarded operations, starts for inference, keep-alive
// stops), and never the queen's.
func TestQueenTokenNeverLeavesTheQueen(t *testing.T) {
	const queenToken = "queen-secret-that-no-hive-may-see"
	dir := t.TempDir()
	boxToken, _, err := config.HiveTokens{Dir: dir}.Ensure("box")
	if err != nil {
		t.Fatal(err)
	}
	var q *testQueen
	var started []*fakeworker.Worker
	spawn := func(j *jobs.Job) error {
		// Like llm-worker-rbee under that hive, it refuses any other token.
		w := fakeworker.NewT(t, fakeworker.Config{ID: fmt.Sprintf("box-w%d", len(started)+1), HiveID: "box", HiveToken: boxToken, Tokens: []string{"o", "k"}})
		started = append(started, w)
		hb := w.Heartbeat(j.Op().Model, wire.StateReady, 0)
		if err := q.Workers().Heartbeat(hb); err != nil {
			return err
		}
		j.Emit(wire.NewResult(wire.WorkerInfo{WorkerID: hb.WorkerID, HiveID: "box", Model: hb.Model, URL: hb.URL, State: wire.StateReady}))
		return nil
	}
	box := newTokenHive(t, "box", boxToken, map[string]jobs.RunFunc{
		wire.OpModelList: func(j *jobs.Job) error {
			j.Emit(wire.NewResult([]wire.ModelInfo{{ID: "alpha", SizeBytes: 1 << 20}}))
			return nil
		},
		wire.OpWorkerList: func(j *jobs.Job) error {
			j.Emit(wire.NewResult([]wire.WorkerInfo{}))
			return nil
		},
		wire.OpWorkerSpawn: spawn,
		wire.OpWorkerStop: func(j *jobs.Job) error {
			j.Emit(wire.NewResult(wire.WorkerInfo{WorkerID: j.Op().WorkerID, HiveID: "box", State: wire.StateGone}))
			return nil
		},
	})
	q = newQueen(t, []config.Hive{box.hive}, func(o *Options) {
		o.Token = queenToken
		o.HiveTokenDir = dir
		o.KeepAlive = 300 * time.Millisecond // the idle workers are stopped soon
	})

	var list []wire.HiveStatus
	q.result(t, wire.Operation{Operation: wire.OpHiveList}, &list)
	if len(list) != 1 || list[0].State != wire.HiveOnline {
		t.Fatalf("hive_list %+v", list)
	}
	for _, op := range []string{wire.OpHiveStatus, wire.OpHiveGet, wire.OpHiveRefreshCapabilities} {
		var st wire.HiveStatus
		q.result(t, wire.Operation{Operation: op, Alias: "box"}, &st)
		if st.Capabilities == nil {
			t.Fatalf("%s: %+v", op, st)
		}
	}
	// An inference for a model no worker serves starts one on the hive.
	if _, err := q.run(t, inferOp("alpha", "abc")); err != nil {
		t.Fatalf("infer: %v", err)
	}
	q.result(t, wire.Operation{Operation: wire.OpWorkerSpawn, Model: "beta", HiveID: "box"}, nil)
	q.result(t, wire.Operation{Operation: wire.OpModelList}, nil)
	q.result(t, wire.Operation{Operation: wire.OpWorkerList, HiveID: "box"}, nil)
	q.result(t, wire.Operation{Operation: wire.OpStatus}, nil)
	req, _ := http.NewRequest(http.MethodGet, q.srv.URL+"/v1/models", nil)
	req.Header.Set("Authorization", "Bearer "+queenToken)
	resp, err := q.srv.Client().Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/v1/models: %v %v", resp, err)
	}
	resp.Body.Close()
	// The keep-alive stops both idle workers through the hive.
	testkit.WaitFor(t, "the keep-alive's worker_stop", func() bool {
		n := 0
		for _, op := range box.received() {
			if op.Operation == wire.OpWorkerStop {
				n++
			}
		}
		return n == 2
	})

	want := "Bearer " + boxToken
	var asked []string
	for _, a := range box.authorizations() {
		method, rest, _ := strings.Cut(a, " ")
		path, auth, _ := strings.Cut(rest, " ")
		asked = append(asked, method+" "+path)
		if strings.Contains(auth, queenToken) || auth != want {
			t.Errorf("the hive got %s %s with %q", method, path, auth)
		}
	}
	for _, prefix := range []string{"GET /health", "GET /v1/capabilities", "POST /v1/jobs", "GET /v1/jobs/"} {
		if !slices.ContainsFunc(asked, func(a string) bool { return strings.HasPrefix(a, prefix) }) {
			t.Errorf("the hive was never asked %s (asked %v)", prefix, asked)
		}
	}
	if len(started) != 2 {
		t.Fatalf("%d workers started", len(started))
	}
	// The inference ran, so the worker, which refuses any other token, got
	// the hive's.
	if started[0].RequestCount() != 1 {
		t.Errorf("the worker started for the inference got %d requests", started[0].RequestCount())
	}
	ops := box.received()
	if !slices.ContainsFunc(ops, func(op wire.Operation) bool { return op.Operation == wire.OpWorkerSpawn && op.Model == "alpha" }) {
		t.Errorf("no start for the inference: %+v", ops)
	}
}

// The local hive always has a token of its own (kept with the hives'
// tokens, made when the queen starts it), never the queen's, and no worker
// token from the queen: it derives one for each worker it spawns. Its
// workers heartbeat with those; the hive's token itself registers none.
func TestLocalHiveGetsItsOwnToken(t *testing.T) {
	for _, queenToken := range []string{"", "queen-secret-that-no-hive-may-see"} {
		dir := t.TempDir()
		q, _, logPath := localHiveQueen(t, "serve", func(o *Options) { o.Token, o.HiveTokenDir = queenToken, dir })
		q.result(t, wire.Operation{Operation: wire.OpHiveStart}, nil)
		var st wire.HiveStatus
		q.result(t, wire.Operation{Operation: wire.OpHiveStatus}, &st) // its capabilities need its token
		if st.Capabilities == nil {
			t.Fatalf("status %+v", st)
		}
		b, err := os.ReadFile(filepath.Join(dir, "localhost"))
		if err != nil {
			t.Fatal(err)
		}
		tok := strings.TrimSpace(string(b))
		log, _ := os.ReadFile(logPath)
		if !strings.Contains(string(log), "hive token "+tok+", worker token none") || queenToken != "" && strings.Contains(string(log), queenToken) {
			t.Fatalf("log %q", log)
		}
		hb := wire.Heartbeat{WorkerID: "w1", HiveID: "localhost", Model: "m", URL: "http://127.0.0.1:4001", State: wire.StateReady, Slots: 1}
		if code, eb := q.beatAs(t, hb, tok); code != http.StatusUnauthorized {
			t.Fatalf("heartbeat with the hive's own token: %d %+v", code, eb)
		}
		if code, eb := q.beatAs(t, hb, httpapi.WorkerToken(tok, "w1")); code != http.StatusOK {
			t.Fatalf("heartbeat with the worker's credential: %d %+v", code, eb)
		}
	}
}
