package queen

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rbee/rbee/internal/testkit"
	"github.com/rbee/rbee/internal/testkit/fakeworker"
	"github.com/rbee/rbee/internal/wire"
)

func inferOp(model, prompt string) wire.Operation {
	n := 8
	return wire.Operation{Operation: wire.OpInfer, Model: model, InferenceRequest: wire.InferenceRequest{Prompt: prompt, MaxTokens: &n}}
}

func TestInferRelaysTokensThenEnd(t *testing.T) {
	q := newQueen(t, nil, nil)
	w := fakeworker.NewT(t, fakeworker.Config{ID: "w1", Tokens: []string{"d", "e", "f"}})
	q.beat(t, w.Heartbeat("alphabet", wire.StateReady, 0))

	evs, err := q.run(t, inferOp("alphabet", "abc"))
	if err != nil {
		t.Fatalf("infer: %v", err)
	}
	var text strings.Builder
	next := 0
	for _, e := range evs {
		if e.Type == wire.TypeToken {
			if e.I != next {
				t.Fatalf("token index %d, want %d", e.I, next)
			}
			next++
			text.WriteString(e.T)
		}
	}
	if text.String() != "def" {
		t.Fatalf("text %q", text.String())
	}
	last := evs[len(evs)-1]
	got, _ := json.Marshal(last)
	want, _ := json.Marshal(w.End())
	if string(got) != string(want) {
		t.Fatalf("end event\n got  %s\n want %s", got, want)
	}
	if req := w.LastRequest(); req.Prompt != "abc" || *req.MaxTokens != 8 {
		t.Fatalf("worker got %+v", req)
	}
	// The first token's index 0 survives the relay on the wire.
	if evs[0].Type == wire.TypeNarration && evs[1].Type != wire.TypeToken {
		t.Fatalf("events %v", evs)
	}
}

// A worker reports its model by catalog id; a path names the same model.
func TestInferMatchesModelByCatalogID(t *testing.T) {
	q := newQueen(t, nil, nil)
	w := fakeworker.NewT(t, fakeworker.Config{ID: "w1", Tokens: []string{"x"}})
	q.beat(t, w.Heartbeat("stories260K", wire.StateReady, 0))
	if _, err := q.run(t, inferOp("/models/stories260K.gguf", "Once")); err != nil {
		t.Fatalf("infer by path: %v", err)
	}
}

func TestInferPicksMostFreeSlots(t *testing.T) {
	q := newQueen(t, nil, nil)
	busy := fakeworker.NewT(t, fakeworker.Config{ID: "busy", Tokens: []string{"a"}})
	idle := fakeworker.NewT(t, fakeworker.Config{ID: "idle", Tokens: []string{"b"}})
	other := fakeworker.NewT(t, fakeworker.Config{ID: "other", Tokens: []string{"c"}})
	hb := idle.Heartbeat("m", wire.StateReady, 0)
	hb.Slots = 4
	q.beat(t, hb)
	hb = busy.Heartbeat("m", wire.StateReady, 2) // heard from last, but busier
	hb.Slots = 4
	q.beat(t, hb)
	q.beat(t, other.Heartbeat("n", wire.StateReady, 0))
	for range 3 {
		if _, err := q.run(t, inferOp("m", "p")); err != nil {
			t.Fatal(err)
		}
	}
	if idle.RequestCount() != 3 || busy.RequestCount() != 0 || other.RequestCount() != 0 {
		t.Fatalf("requests: idle %d busy %d other %d", idle.RequestCount(), busy.RequestCount(), other.RequestCount())
	}
	// Restricted to one worker, the busy one is used.
	op := inferOp("m", "p")
	op.WorkerID = "busy"
	if _, err := q.run(t, op); err != nil || busy.RequestCount() != 1 {
		t.Fatalf("worker_id: %v, busy got %d", err, busy.RequestCount())
	}
}

func TestInferNoWorker(t *testing.T) {
	q := newQueen(t, nil, nil)
	w := fakeworker.NewT(t, fakeworker.Config{ID: "w1", Tokens: []string{"x"}})
	q.beat(t, w.Heartbeat("other-model", wire.StateReady, 0))
	_, err := q.run(t, inferOp("alphabet", "abc"))
	if errorCode(err) != wire.CodeNoWorker || !strings.Contains(err.Error(), "rbee worker spawn -m alphabet") {
		t.Fatalf("got %v", err)
	}
	op := inferOp("other-model", "abc")
	op.HiveID = "gpu-box"
	if _, err := q.run(t, op); errorCode(err) != wire.CodeNoWorker || !strings.Contains(err.Error(), "--hive gpu-box") {
		t.Fatalf("hive restriction: %v", err)
	}
}

// A spawn reports a worker ready before its ready heartbeat may arrive:
// infer waits for a loading worker instead of failing.
func TestInferWaitsForLoadingWorker(t *testing.T) {
	q := newQueen(t, nil, nil)
	w := fakeworker.NewT(t, fakeworker.Config{ID: "w1", Tokens: []string{"x"}})
	q.beat(t, w.Heartbeat("m", wire.StateLoading, 0))
	ctx := context.Background()
	jc, err := q.client.Submit(ctx, inferOp("m", "p"))
	if err != nil {
		t.Fatal(err)
	}
	var evs []wire.Event
	_, err = q.client.Stream(ctx, jc.JobID, func(e wire.Event) error {
		evs = append(evs, e)
		if e.Type == wire.TypeNarration && strings.Contains(e.Human, "loading") {
			// The request waits for the loading worker: now it is ready.
			return q.Workers().Heartbeat(w.Heartbeat("m", wire.StateReady, 0))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if evs[0].Type != wire.TypeNarration || !strings.Contains(evs[0].Human, "loading") {
		t.Fatalf("no waiting narration: %v", evs)
	}
}

func TestInferWorkerGoneMidStream(t *testing.T) {
	q := newQueen(t, nil, nil)
	w := fakeworker.NewT(t, fakeworker.Config{ID: "w1", Tokens: []string{"a", "b", "c", "d"}})
	w.SetDropAfter(2)
	q.beat(t, w.Heartbeat("m", wire.StateReady, 0))
	evs, err := q.run(t, inferOp("m", "p"))
	if errorCode(err) != wire.CodeWorkerGone {
		t.Fatalf("got %v", err)
	}
	tokens := 0
	for _, e := range evs {
		if e.Type == wire.TypeToken {
			tokens++
		}
	}
	if tokens != 2 {
		t.Fatalf("%d tokens relayed before the break, want 2", tokens)
	}
	wk, _ := q.Workers().Get("w1")
	if wk.State != wire.StateGone || !strings.Contains(wk.GoneReason, "stream broke") {
		t.Fatalf("worker not marked gone: %+v", wk)
	}
	// A gone worker gets no more requests until it heartbeats again.
	if _, err := q.run(t, inferOp("m", "p")); errorCode(err) != wire.CodeNoWorker {
		t.Fatalf("second infer: %v", err)
	}
	q.beat(t, w.Heartbeat("m", wire.StateReady, 0))
	w.SetDropAfter(0)
	if _, err := q.run(t, inferOp("m", "p")); err != nil {
		t.Fatalf("after revival: %v", err)
	}
}

// A worker on a machine that vanished keeps its stream open but stops
// heartbeating: the registry's timeout ends the inference.
func TestInferWorkerSilent(t *testing.T) {
	q := newQueen(t, nil, func(o *Options) { o.WorkerTimeout = 200 * time.Millisecond })
	w := fakeworker.NewT(t, fakeworker.Config{ID: "w1", Tokens: []string{"a"}})
	w.SetHold(true)
	// A loaded machine may let the short timeout pass before the request
	// reaches the worker (no_worker then): the worker beats again and the
	// request is sent again, until one reaches it.
	testkit.WaitFor(t, "an inference on the silent worker to end", func() bool {
		q.beat(t, w.Heartbeat("m", wire.StateReady, 0))
		_, err := q.run(t, inferOp("m", "p"))
		switch {
		case errorCode(err) == wire.CodeNoWorker:
			return false
		case errorCode(err) != wire.CodeWorkerGone || !strings.Contains(err.Error(), "no heartbeat"):
			t.Fatalf("got %v", err)
		}
		return true
	})
	if w.RequestCount() == 0 {
		t.Fatal("the request never reached the worker")
	}
}

func TestInferCancelStopsWorkerJob(t *testing.T) {
	q := newQueen(t, nil, nil)
	w := fakeworker.NewT(t, fakeworker.Config{ID: "w1", Tokens: []string{"a"}})
	w.SetHold(true)
	q.beat(t, w.Heartbeat("m", wire.StateReady, 0))

	ctx := context.Background()
	jc, err := q.client.Submit(ctx, inferOp("m", "p"))
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		_, err := q.client.Stream(ctx, jc.JobID, func(e wire.Event) error {
			if e.Type == wire.TypeToken {
				if err := q.client.Cancel(ctx, jc.JobID); err != nil {
					t.Errorf("cancel: %v", err)
				}
			}
			return nil
		})
		got <- err
	}()
	if id := testkit.Receive(t, "the worker job's cancellation", w.Deletes()); id != "inf-1" {
		t.Fatalf("worker got DELETE of %q", id)
	}
	if err := <-got; errorCode(err) != wire.CodeCancelled {
		t.Fatalf("stream ended with %v", err)
	}
}

func TestInferDroppedClientStopsWorkerJob(t *testing.T) {
	q := newQueen(t, nil, nil)
	w := fakeworker.NewT(t, fakeworker.Config{ID: "w1", Tokens: []string{"a"}})
	w.SetHold(true)
	q.beat(t, w.Heartbeat("m", wire.StateReady, 0))

	ctx, cancel := context.WithCancel(context.Background())
	jc, err := q.client.Submit(ctx, inferOp("m", "p"))
	if err != nil {
		t.Fatal(err)
	}
	go q.client.Stream(ctx, jc.JobID, func(e wire.Event) error {
		if e.Type == wire.TypeToken {
			cancel() // the keeper goes away mid-stream
		}
		return nil
	})
	testkit.Receive(t, "the worker job's cancellation", w.Deletes())
	testkit.Receive(t, "the worker stream to close", w.Closed())
}

// A worker that refuses connections is skipped for the next one.
func TestInferSkipsDeadWorker(t *testing.T) {
	q := newQueen(t, nil, nil)
	live := fakeworker.NewT(t, fakeworker.Config{ID: "live", Tokens: []string{"b"}})
	hb := live.Heartbeat("m", wire.StateReady, 1)
	hb.Slots = 2 // one free, as the dead one has
	q.beat(t, hb)
	q.beat(t, deadWorker(t, "dead", "m", 1)) // heard from last: tried first
	if _, err := q.run(t, inferOp("m", "p")); err != nil {
		t.Fatal(err)
	}
	if live.RequestCount() != 1 {
		t.Fatal("live worker not used")
	}
	if wk, _ := q.Workers().Get("dead"); wk.State != wire.StateGone {
		t.Fatalf("dead worker: %+v", wk)
	}
}

// A worker that turns a request away although the queen counted a free
// slot (others use it too) is passed over until its next heartbeat; the
// request waits in the queen's queue meanwhile instead of failing.
func TestInferFullWorkers(t *testing.T) {
	q := newQueen(t, nil, nil)
	a := fakeworker.NewT(t, fakeworker.Config{ID: "a", Tokens: []string{"x"}})
	b := fakeworker.NewT(t, fakeworker.Config{ID: "b", Tokens: []string{"y"}})
	q.beat(t, a.Heartbeat("m", wire.StateReady, 0))
	q.beat(t, b.Heartbeat("m", wire.StateReady, 0))
	a.SetFull(true)
	b.SetFull(true)
	ctx := t.Context()
	jc, err := q.client.Submit(ctx, inferOp("m", "p"))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	turnedAway := map[string]bool{} // the queen narrates each refusal
	done := make(chan error, 1)
	go func() {
		_, err := q.client.Stream(ctx, jc.JobID, func(e wire.Event) error {
			if e.Type == wire.TypeNarration && strings.Contains(e.Human, "turned the request away") {
				mu.Lock()
				turnedAway[e.WorkerID] = true
				mu.Unlock()
			}
			return nil
		})
		done <- err
	}()
	// Back in the queue after the second refusal: both are passed over.
	testkit.WaitFor(t, "both workers to turn the request away", func() bool {
		mu.Lock()
		both := turnedAway["a"] && turnedAway["b"]
		mu.Unlock()
		return both && q.queued("m") == 1
	})
	b.SetFull(false)
	q.beat(t, b.Heartbeat("m", wire.StateReady, 0)) // a newer heartbeat: b is asked again
	if err := <-done; err != nil || b.RequestCount() != 1 {
		t.Fatalf("after b freed up: %v, b took %d", err, b.RequestCount())
	}
	if wk, _ := q.Workers().Get("a"); wk.State == wire.StateGone {
		t.Fatal("a full worker was marked gone")
	}
}

func TestInferValidation(t *testing.T) {
	q := newQueen(t, nil, nil)
	bad := -1
	hot := 1000.0
	for name, op := range map[string]wire.Operation{
		"no model":      {Operation: wire.OpInfer, InferenceRequest: wire.InferenceRequest{Prompt: "p"}},
		"bad model":     {Operation: wire.OpInfer, Model: "a b", InferenceRequest: wire.InferenceRequest{Prompt: "p"}},
		"no prompt":     {Operation: wire.OpInfer, Model: "m"},
		"max_tokens":    {Operation: wire.OpInfer, Model: "m", InferenceRequest: wire.InferenceRequest{Prompt: "p", MaxTokens: &bad}},
		"temperature":   {Operation: wire.OpInfer, Model: "m", InferenceRequest: wire.InferenceRequest{Prompt: "p", Temperature: &hot}},
		"bad worker id": {Operation: wire.OpInfer, Model: "m", WorkerID: "a\x00", InferenceRequest: wire.InferenceRequest{Prompt: "p"}},
	} {
		if _, err := q.client.Submit(context.Background(), op); httpStatus(err) != 400 {
			t.Errorf("%s: got %v", name, err)
		}
	}
}
