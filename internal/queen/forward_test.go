package queen

import (
	"context"
	"strings"
	"testing"

	"github.com/rbee/rbee/internal/config"
	"github.com/rbee/rbee/internal/jobs"
	"github.com/rbee/rbee/internal/testkit/fakeworker"
	"github.com/rbee/rbee/internal/wire"
)

func spawnRun(j *jobs.Job) error {
	j.Narrate("spawn", "Spawning a worker for "+j.Op().Model)
	j.Emit(wire.NewProgress(0, 10, "bytes"))
	j.Emit(wire.NewProgress(10, 10, "bytes"))
	j.Emit(wire.NewResult(wire.WorkerInfo{WorkerID: "worker-1", HiveID: "localhost", Model: j.Op().Model, State: wire.StateReady}))
	return nil
}

func TestForwardRelaysHiveEvents(t *testing.T) {
	h := newFakeHive(t, "localhost", map[string]jobs.RunFunc{wire.OpWorkerSpawn: spawnRun})
	q := newQueen(t, []config.Hive{h.hive}, nil)

	var info wire.WorkerInfo
	evs := q.result(t, wire.Operation{Operation: wire.OpWorkerSpawn, Model: "alphabet", Device: "cpu"}, &info)
	if info.WorkerID != "worker-1" || info.Model != "alphabet" {
		t.Fatalf("result %+v", info)
	}
	var types []string
	for _, e := range evs {
		types = append(types, e.Type)
	}
	if strings.Join(types, ",") != "narration,progress,progress,result" {
		t.Fatalf("events %v", types)
	}
	if n := evs[0]; n.Actor != "rbee-hive" || n.HiveID != "localhost" || !strings.Contains(n.Human, "alphabet") {
		t.Fatalf("narration %+v", n)
	}
	if p := evs[1]; p.Done != 0 || p.Total != 10 {
		t.Fatalf("progress %+v", p)
	}
	ops := h.received()
	if len(ops) != 1 || ops[0].Model != "alphabet" || ops[0].Device != "cpu" || ops[0].HiveID != "" {
		t.Fatalf("hive got %+v", ops)
	}
}

func TestForwardKeepsHiveErrorCode(t *testing.T) {
	h := newFakeHive(t, "localhost", map[string]jobs.RunFunc{
		wire.OpModelGet: func(j *jobs.Job) error { return wire.Errorf(wire.CodeNotFound, "no model %q", j.Op().Model) },
	})
	q := newQueen(t, []config.Hive{h.hive}, nil)
	_, err := q.run(t, wire.Operation{Operation: wire.OpModelGet, Model: "nope"})
	if errorCode(err) != wire.CodeNotFound || !strings.Contains(err.Error(), `no model "nope"`) {
		t.Fatalf("got %v", err)
	}
	// The hive rejecting the operation at submit keeps its code too.
	_, err = q.run(t, wire.Operation{Operation: wire.OpModelDelete, Model: "nope"})
	if errorCode(err) != wire.CodeBadRequest || !strings.Contains(err.Error(), "hive localhost") {
		t.Fatalf("got %v", err)
	}
}

func TestForwardUnreachableHive(t *testing.T) {
	q := newQueen(t, []config.Hive{deadHive(t, "localhost")}, nil)
	_, err := q.run(t, wire.Operation{Operation: wire.OpWorkerSpawn, Model: "alphabet"})
	if errorCode(err) != wire.CodeHiveUnreachable || !strings.Contains(err.Error(), "rbee hive start -a localhost") {
		t.Fatalf("got %v", err)
	}
}

func TestForwardUsesRegistryForWorkerHive(t *testing.T) {
	local := newFakeHive(t, "localhost", nil)
	box := newFakeHive(t, "box", map[string]jobs.RunFunc{
		wire.OpWorkerStop: func(j *jobs.Job) error {
			j.Emit(wire.NewResult(wire.WorkerInfo{WorkerID: j.Op().WorkerID, HiveID: "box", State: wire.StateGone}))
			return nil
		},
	})
	q := newQueen(t, []config.Hive{local.hive, box.hive}, nil)
	w := fakeworker.NewT(t, fakeworker.Config{ID: "w-box", HiveID: "box"})
	q.beat(t, w.Heartbeat("m", wire.StateReady, 0))
	var info wire.WorkerInfo
	q.result(t, wire.Operation{Operation: wire.OpWorkerStop, WorkerID: "w-box"}, &info)
	if info.HiveID != "box" || len(local.received()) != 0 {
		t.Fatalf("stop went to the wrong hive: %+v", info)
	}
}

func TestListMergesLiveHives(t *testing.T) {
	list := func(alias string) jobs.RunFunc {
		return func(j *jobs.Job) error {
			j.Emit(wire.NewResult([]wire.ModelInfo{{ID: "m-" + alias}}))
			return nil
		}
	}
	a := newFakeHive(t, "localhost", map[string]jobs.RunFunc{wire.OpModelList: list("a")})
	b := newFakeHive(t, "box", map[string]jobs.RunFunc{wire.OpModelList: list("b")})
	q := newQueen(t, []config.Hive{a.hive, b.hive, deadHive(t, "down")}, nil)

	var models []wire.HiveModel
	q.result(t, wire.Operation{Operation: wire.OpModelList}, &models)
	if len(models) != 2 || models[0].ID != "m-a" || models[0].HiveID != "localhost" || models[1].ID != "m-b" || models[1].HiveID != "box" {
		t.Fatalf("merged %+v", models)
	}

	// One hive named: only its list.
	q.result(t, wire.Operation{Operation: wire.OpModelList, HiveID: "box"}, &models)
	if len(models) != 1 || models[0].ID != "m-b" {
		t.Fatalf("box only: %+v", models)
	}

	// No hive up: an empty list, not an error.
	q.setHives(deadHive(t, "localhost"))
	var none []wire.WorkerInfo
	q.result(t, wire.Operation{Operation: wire.OpWorkerList}, &none)
	if none == nil || len(none) != 0 {
		t.Fatalf("no hives: %+v", none)
	}
}

func TestDispatchRejects(t *testing.T) {
	q := newQueen(t, []config.Hive{config.LocalHive()}, nil)
	for name, op := range map[string]wire.Operation{
		"empty":            {},
		"unknown":          {Operation: "make_coffee"},
		"unknown hive":     {Operation: wire.OpWorkerList, HiveID: "nowhere"},
		"bad alias":        {Operation: wire.OpHiveStart, Alias: "-oProxyCommand=x"},
		"unknown alias":    {Operation: wire.OpHiveGet, Alias: "nowhere"},
		"spawn no model":   {Operation: wire.OpWorkerSpawn},
		"spawn bad device": {Operation: wire.OpWorkerSpawn, Model: "m", Device: "tpu"},
		"stop no worker":   {Operation: wire.OpWorkerStop},
		"download no ref":  {Operation: wire.OpModelDownload, Model: "hf:"},
	} {
		_, err := q.client.Submit(context.Background(), op)
		if httpStatus(err) != 400 {
			t.Errorf("%s: got %v", name, err)
		}
	}
	_, err := q.client.Submit(context.Background(), wire.Operation{Operation: wire.OpWorkerList, HiveID: "nowhere"})
	if !strings.Contains(err.Error(), "hives.conf") {
		t.Errorf("unknown hive message: %v", err)
	}
}
