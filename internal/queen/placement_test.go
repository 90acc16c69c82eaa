package queen

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rbee/rbee/internal/config"
	"github.com/rbee/rbee/internal/jobs"
	"github.com/rbee/rbee/internal/testkit"
	"github.com/rbee/rbee/internal/testkit/fakeworker"
	"github.com/rbee/rbee/internal/wire"
)

// placeHive is a fake hive with a catalog, capabilities and a worker_spawn
// that starts a fake worker heartbeating in its name.
type placeHive struct {
	*fakeHive
	hive config.Hive // reached through the capabilities proxy

	// proceed, when set, holds each start after its first narration
	// until it is closed.
	proceed chan struct{}

	mu     sync.Mutex
	spawns []wire.Operation
	stops  []string
}

// failDevice makes worker_spawn fail on that device, as a worker without
// the GPU backend does.
func newPlaceHive(t *testing.T, q **testQueen, alias string, models []wire.ModelInfo, caps wire.HiveCapabilities, failDevice string) *placeHive {
	t.Helper()
	h := &placeHive{}
	h.fakeHive = newFakeHive(t, alias, map[string]jobs.RunFunc{
		wire.OpModelList: func(j *jobs.Job) error {
			j.Emit(wire.NewResult(models))
			return nil
		},
		wire.OpWorkerSpawn: func(j *jobs.Job) error {
			op := j.Op()
			h.mu.Lock()
			h.spawns = append(h.spawns, op)
			n := len(h.spawns)
			h.mu.Unlock()
			if op.Device != "" && op.Device == failDevice {
				return wire.Errorf(wire.CodeWorkerFailed, "no GPU backend for %s", op.Device)
			}
			j.Narrate("spawn", "loading "+op.Model)
			if h.proceed != nil {
				<-h.proceed
			}
			w := fakeworker.NewT(t, fakeworker.Config{ID: fmt.Sprintf("%s-w%d", alias, n), HiveID: alias, Tokens: []string{"o", "k"}})
			hb := w.Heartbeat(op.Model, wire.StateReady, 0)
			hb.Device = op.Device
			if err := (*q).Workers().Heartbeat(hb); err != nil {
				return err
			}
			j.Emit(wire.NewResult(wire.WorkerInfo{WorkerID: hb.WorkerID, HiveID: alias, Model: op.Model, URL: hb.URL, State: wire.StateReady, Device: op.Device}))
			return nil
		},
		wire.OpWorkerStop: func(j *jobs.Job) error {
			h.mu.Lock()
			h.stops = append(h.stops, j.Op().WorkerID)
			h.mu.Unlock()
			j.Emit(wire.NewResult(wire.WorkerInfo{WorkerID: j.Op().WorkerID, HiveID: alias, State: wire.StateGone}))
			return nil
		},
	})
	caps.HiveID = alias
	if caps.GPUs == nil {
		caps.GPUs = []wire.GPUInfo{}
	}
	target, _ := url.Parse(h.srv.URL)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/capabilities", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(caps)
	})
	mux.Handle("/", httputil.NewSingleHostReverseProxy(target))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	h.hive = h.fakeHive.hive
	h.hive.HivePort = srv.Listener.Addr().(*net.TCPAddr).Port
	return h
}

func (h *placeHive) spawned() []wire.Operation {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]wire.Operation(nil), h.spawns...)
}

func (h *placeHive) stopped() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.stops...)
}

const gib = 1 << 30

func alphaEntry(memory uint64) []wire.ModelInfo {
	return []wire.ModelInfo{{ID: "alpha", Path: "/m/alpha.gguf", SizeBytes: 1 << 20, MemoryBytes: memory, AddedAt: time.Unix(1600000000, 0)}}
}

// An infer job for a model no worker serves starts one on the hive that
// has it with the most free memory, tells its client, and runs there.
func TestPlacementPicksHiveWithRoom(t *testing.T) {
	var q *testQueen
	small := newPlaceHive(t, &q, "small", alphaEntry(2*gib), wire.HiveCapabilities{RAMFreeBytes: 1 * gib}, "")
	big := newPlaceHive(t, &q, "big", alphaEntry(2*gib), wire.HiveCapabilities{RAMFreeBytes: 16 * gib}, "")
	none := newPlaceHive(t, &q, "huge", nil, wire.HiveCapabilities{RAMFreeBytes: 64 * gib}, "")
	q = newQueen(t, []config.Hive{small.hive, big.hive, none.hive}, nil)
	big.proceed = make(chan struct{})

	// The start's own narration reaches the request's client.
	ctx := context.Background()
	jc, err := q.client.Submit(ctx, inferOp("alpha", "abc"))
	if err != nil {
		t.Fatal(err)
	}
	var evs []wire.Event
	_, err = q.client.Stream(ctx, jc.JobID, func(e wire.Event) error {
		evs = append(evs, e)
		if e.Type == wire.TypeNarration && e.Human == "loading alpha" {
			close(big.proceed)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("infer: %v (%v)", err, evs)
	}
	if len(small.spawned()) != 0 || len(none.spawned()) != 0 || len(big.spawned()) != 1 {
		t.Fatalf("spawns: small %v big %v huge %v", small.spawned(), big.spawned(), none.spawned())
	}
	if sp := big.spawned()[0]; sp.Model != "alpha" || sp.Device != "" {
		t.Fatalf("spawn %+v", sp)
	}
	var said []string
	for _, e := range evs {
		if e.Type == wire.TypeNarration {
			said = append(said, e.Human)
		}
	}
	all := strings.Join(said, "\n")
	for _, want := range []string{"starting one on hive big", "loading alpha", "stays running", "Running on worker big-w1"} {
		if !strings.Contains(all, want) {
			t.Errorf("narration lacks %q:\n%s", want, all)
		}
	}
}

// A GPU whose free memory holds the model comes first; when the worker
// cannot start there, the CPU of the same hive is tried.
func TestPlacementGPU(t *testing.T) {
	var q *testQueen
	caps := wire.HiveCapabilities{RAMFreeBytes: 32 * gib, GPUs: []wire.GPUInfo{
		{Device: "cuda:0", MemoryTotalBytes: 8 * gib, MemoryFreeBytes: 1 * gib},
		{Device: "cuda:1", MemoryTotalBytes: 24 * gib, MemoryFreeBytes: 20 * gib},
	}}
	h := newPlaceHive(t, &q, "gpu", alphaEntry(4*gib), caps, "")
	q = newQueen(t, []config.Hive{h.hive}, nil)
	if _, err := q.run(t, inferOp("alpha", "abc")); err != nil {
		t.Fatal(err)
	}
	if sp := h.spawned(); len(sp) != 1 || sp[0].Device != "cuda:1" {
		t.Fatalf("spawns %+v", sp)
	}

	var q2 *testQueen
	broken := newPlaceHive(t, &q2, "gpu", alphaEntry(4*gib), caps, "cuda:1")
	q2 = newQueen(t, []config.Hive{broken.hive}, nil)
	if _, err := q2.run(t, inferOp("alpha", "abc")); err != nil {
		t.Fatal(err)
	}
	if sp := broken.spawned(); len(sp) != 2 || sp[0].Device != "cuda:1" || sp[1].Device != "" {
		t.Fatalf("spawns %+v", sp)
	}
}

// Models a hive's catalog lacks: an hf: reference is downloaded by the
// hive with the most free RAM; a path is a file of the hive the request
// names (the local one by default).
func TestPlacementHFAndPaths(t *testing.T) {
	var q *testQueen
	local := newPlaceHive(t, &q, "localhost", nil, wire.HiveCapabilities{RAMFreeBytes: 2 * gib}, "")
	roomy := newPlaceHive(t, &q, "roomy", nil, wire.HiveCapabilities{RAMFreeBytes: 32 * gib}, "")
	q = newQueen(t, []config.Hive{local.hive, roomy.hive}, nil)

	const hf = "hf:owner/repo:model.Q4_K_M.gguf"
	if _, err := q.run(t, inferOp(hf, "abc")); err != nil {
		t.Fatal(err)
	}
	if sp := roomy.spawned(); len(sp) != 1 || sp[0].Model != hf {
		t.Fatalf("hf: roomy spawned %+v, localhost %+v", sp, local.spawned())
	}
	if _, err := q.run(t, inferOp("/models/m.gguf", "abc")); err != nil {
		t.Fatal(err)
	}
	if sp := local.spawned(); len(sp) != 1 || sp[0].Model != "/models/m.gguf" {
		t.Fatalf("path: localhost spawned %+v", sp)
	}
	op := inferOp("/srv/other.gguf", "abc")
	op.HiveID = "roomy"
	if _, err := q.run(t, op); err != nil {
		t.Fatal(err)
	}
	if sp := roomy.spawned(); len(sp) != 2 || sp[1].Model != "/srv/other.gguf" {
		t.Fatalf("path on roomy: %+v", sp)
	}
	// A catalog id no hive has: no_worker, which tells the keeper to
	// start one itself.
	if _, err := q.run(t, inferOp("nowhere", "abc")); errorCode(err) != wire.CodeNoWorker {
		t.Fatalf("unknown id: %v", err)
	}
	// The API starts workers from catalog ids only.
	if code, body := q.postAPI(t, "/v1/completions", `{"model":"hf:owner/repo:x.gguf","prompt":"abc"}`); code != http.StatusNotFound {
		t.Fatalf("API with hf: %d %s", code, body)
	}
}

// Requests that arrive while a worker starts wait for that one start, and
// are all served by it.
func TestPlacementSharedByJobs(t *testing.T) {
	var q *testQueen
	h := newSpawnHive(t, &q, 1<<20)
	q = newQueen(t, []config.Hive{h.hive}, nil)
	var done []<-chan error
	for i := range 4 {
		done = append(done, q.start(t, inferOp("alpha", fmt.Sprint(i))))
	}
	testkit.WaitFor(t, "every request to wait for the start", func() bool { return q.queued("alpha") == 4 && h.spawns.Load() == 1 })
	close(h.release)
	for _, d := range done {
		if err := <-d; err != nil {
			t.Fatal(err)
		}
	}
	if h.spawns.Load() != 1 {
		t.Fatalf("%d starts", h.spawns.Load())
	}
}
