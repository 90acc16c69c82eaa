package queen

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rbee/rbee/internal/queen/workers"
	"github.com/rbee/rbee/internal/testkit"
	"github.com/rbee/rbee/internal/testkit/fakeworker"
	"github.com/rbee/rbee/internal/wire"
)

// start submits op and reads its stream in the background.
func (q *testQueen) start(t *testing.T, op wire.Operation) <-chan error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	jc, err := q.client.Submit(ctx, op)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		defer cancel()
		_, err := q.client.Stream(ctx, jc.JobID, nil)
		done <- err
	}()
	return done
}

// queued is how many requests wait in model's line.
func (q *testQueen) queued(model string) int {
	for _, st := range q.sched.QueueStatus() {
		if st.Model == model {
			return st.Waiting
		}
	}
	return 0
}

// prompts are the prompts w was sent, in order; a chat's as "chat:" and
// its first message.
func prompts(w *fakeworker.Worker) []string {
	var out []string
	for _, r := range w.Requests() {
		if len(r.Messages) > 0 {
			out = append(out, "chat:"+r.Messages[0].Content)
		} else {
			out = append(out, r.Prompt)
		}
	}
	return out
}

// A worker with one slot takes the queued requests one at a time, in the
// order they came.
func TestQueueFirstInFirstOut(t *testing.T) {
	q := newQueen(t, nil, nil)
	w := fakeworker.NewT(t, fakeworker.Config{ID: "w1", Tokens: []string{"x"}})
	gate := make(chan struct{})
	w.SetGate(gate, -1)
	q.beat(t, w.Heartbeat("m", wire.StateReady, 0)) // one slot
	var done []<-chan error
	for i := range 4 {
		done = append(done, q.start(t, inferOp("m", fmt.Sprint(i))))
		testkit.WaitFor(t, fmt.Sprintf("request %d to arrive", i), func() bool { return w.RequestCount() == 1 && q.queued("m") == i })
	}
	for i := range 4 {
		gate <- struct{}{}
		if err := <-done[i]; err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	if got := strings.Join(prompts(w), ","); got != "0,1,2,3" {
		t.Fatalf("the worker got %s", got)
	}
}

// The job protocol and the OpenAI API wait in the same queue.
func TestQueueSharedByBothWays(t *testing.T) {
	q := newQueen(t, nil, nil)
	w := fakeworker.NewT(t, fakeworker.Config{ID: "w1", Tokens: []string{"x"}})
	gate := make(chan struct{})
	w.SetGate(gate, -1)
	q.beat(t, w.Heartbeat("m", wire.StateReady, 0))
	first := q.start(t, inferOp("m", "first"))
	testkit.WaitFor(t, "the first request to run", func() bool { return w.RequestCount() == 1 })
	api := make(chan int, 1)
	go func() {
		code, _ := q.postAPI(t, "/v1/chat/completions", chatJSON("m", false))
		api <- code
	}()
	testkit.WaitFor(t, "the API request to queue", func() bool { return q.queued("m") == 1 })
	last := q.start(t, inferOp("m", "last"))
	testkit.WaitFor(t, "the job to queue", func() bool { return q.queued("m") == 2 })
	for range 3 {
		gate <- struct{}{}
	}
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if code := <-api; code != http.StatusOK {
		t.Fatalf("API request: %d", code)
	}
	if err := <-last; err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(prompts(w), ","); got != "first,chat:abc,last" {
		t.Fatalf("order %s", got)
	}
}

// A full queue ends an infer job with queue_full, saying when to retry.
func TestQueueFullJob(t *testing.T) {
	q := newQueen(t, nil, func(o *Options) { o.MaxQueue = 2 })
	w := fakeworker.NewT(t, fakeworker.Config{ID: "w1", Tokens: []string{"x"}})
	gate := make(chan struct{})
	w.SetGate(gate, -1)
	q.beat(t, w.Heartbeat("m", wire.StateReady, 0))
	var done []<-chan error
	for i := range 3 {
		done = append(done, q.start(t, inferOp("m", fmt.Sprint(i))))
	}
	testkit.WaitFor(t, "one running and two queued", func() bool { return w.RequestCount() == 1 && q.queued("m") == 2 })
	_, err := q.run(t, inferOp("m", "one too many"))
	if errorCode(err) != wire.CodeQueueFull || !strings.Contains(err.Error(), "retry in 1 s") {
		t.Fatalf("got %v", err)
	}
	var st wire.Status
	q.result(t, wire.Operation{Operation: wire.OpStatus}, &st)
	if len(st.Queues) != 1 || st.Queues[0] != (wire.QueueStatus{Model: "m", Waiting: 2, Max: 2}) {
		t.Fatalf("status queues %+v", st.Queues)
	}
	// Another model has its own queue.
	other := fakeworker.NewT(t, fakeworker.Config{ID: "w2", Tokens: []string{"y"}})
	q.beat(t, other.Heartbeat("n", wire.StateReady, 0))
	if _, err := q.run(t, inferOp("n", "p")); err != nil {
		t.Fatalf("another model: %v", err)
	}
	close(gate)
	for _, d := range done {
		if err := <-d; err != nil {
			t.Fatal(err)
		}
	}
}

// A client that leaves while its request waits takes it out of the queue.
func TestQueueLeaveWhileWaiting(t *testing.T) {
	q := newQueen(t, nil, nil)
	w := fakeworker.NewT(t, fakeworker.Config{ID: "w1", Tokens: []string{"x"}})
	gate := make(chan struct{})
	w.SetGate(gate, -1)
	q.beat(t, w.Heartbeat("m", wire.StateReady, 0))
	first := q.start(t, inferOp("m", "first"))
	testkit.WaitFor(t, "the first request to run", func() bool { return w.RequestCount() == 1 })

	ctx, cancel := context.WithCancel(context.Background())
	jc, err := q.client.Submit(ctx, inferOp("m", "gone"))
	if err != nil {
		t.Fatal(err)
	}
	said := make(chan wire.Event, 8)
	go q.client.Stream(ctx, jc.JobID, func(e wire.Event) error {
		said <- e
		return nil
	})
	// Its client reads the stream: the narration that it waits.
	if e := <-said; e.Type != wire.TypeNarration || !strings.Contains(e.Human, "waiting in the queen's queue") {
		t.Fatalf("first event %+v", e)
	}
	if q.queued("m") != 1 {
		t.Fatal("the second request is not in the queue")
	}
	cancel()
	testkit.WaitFor(t, "the queue to empty", func() bool { return q.queued("m") == 0 })
	gate <- struct{}{}
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if w.RequestCount() != 1 {
		t.Fatalf("the request that left reached the worker: %v", prompts(w))
	}
	// Its slot accounting is back to zero.
	testkit.WaitFor(t, "nothing in flight", func() bool {
		wk, _ := q.Workers().Get("w1")
		return wk.InFlight == 0
	})
}

// timeout_ms bounds the wait in the queue: deadline_exceeded, a 503 for
// the API. What is left of it goes to the worker.
func TestQueueDeadline(t *testing.T) {
	q := newQueen(t, nil, nil)
	w := fakeworker.NewT(t, fakeworker.Config{ID: "w1", Tokens: []string{"x"}})
	gate := make(chan struct{})
	w.SetGate(gate, -1)
	q.beat(t, w.Heartbeat("m", wire.StateReady, 0))
	first := q.start(t, inferOp("m", "first"))
	testkit.WaitFor(t, "the first request to run", func() bool { return w.RequestCount() == 1 })

	op := inferOp("m", "late")
	ms := 100
	op.TimeoutMs = &ms
	_, err := q.run(t, op)
	if errorCode(err) != wire.CodeDeadline || !strings.Contains(err.Error(), "timeout_ms") {
		t.Fatalf("job: %v", err)
	}
	_, err = q.Generate(context.Background(), "m", wire.InferenceRequest{Prompt: "late", TimeoutMs: &ms}, func(wire.Event) error { return nil })
	if he, ok := err.(*wire.Error); !ok || he.HTTPStatus() != http.StatusServiceUnavailable || he.Code != wire.CodeDeadline {
		t.Fatalf("API: %#v", err)
	}
	if q.queued("m") != 0 {
		t.Fatal("a request past its deadline stayed in the queue")
	}
	gate <- struct{}{}
	if err := <-first; err != nil {
		t.Fatal(err)
	}

	ms = 60_000
	go func() { gate <- struct{}{} }()
	if _, err := q.run(t, op); err != nil {
		t.Fatal(err)
	}
	got := w.LastRequest().TimeoutMs
	if got == nil || *got <= 0 || *got > 60_000 {
		t.Fatalf("the worker got timeout_ms %v", got)
	}
}

// The worker's own deadline_exceeded is the request's.
func TestQueueWorkerDeadline(t *testing.T) {
	q := newQueen(t, nil, nil)
	w := fakeworker.NewT(t, fakeworker.Config{ID: "w1"})
	e := wire.NewError(wire.CodeDeadline, "no slot became free within 1s")
	w.SetStreamError(&e)
	q.beat(t, w.Heartbeat("m", wire.StateReady, 0))
	if _, err := q.run(t, inferOp("m", "p")); errorCode(err) != wire.CodeDeadline || !strings.Contains(err.Error(), "no slot became free") {
		t.Fatalf("job: %v", err)
	}
	ms := 1000
	_, err := q.Generate(context.Background(), "m", wire.InferenceRequest{Prompt: "p", TimeoutMs: &ms}, func(wire.Event) error { return nil })
	he, ok := err.(*wire.Error)
	if !ok || he.HTTPStatus() != http.StatusServiceUnavailable || he.Code != wire.CodeDeadline || he.RetryAfter < 1 {
		t.Fatalf("API: %#v", err)
	}
	code, body := q.postAPI(t, "/v1/completions", `{"model":"m","prompt":"p"}`)
	if code != http.StatusServiceUnavailable || !strings.Contains(string(body), wire.CodeDeadline) {
		t.Fatalf("API over HTTP: %d %s", code, body)
	}
}

// pickOne is a policy that always takes the worker it names, if it may.
type pickOne struct {
	id   string
	open atomic.Bool
}

func (p *pickOne) Pick(_ *Request, cands []workers.Worker) (workers.Worker, bool) {
	if !p.open.Load() {
		return workers.Worker{}, false
	}
	for _, w := range cands {
		if w.WorkerID == p.id {
			return w, true
		}
	}
	return workers.Worker{}, false
}

// Options.Policy replaces the default, and may hold requests back.
func TestQueueCustomPolicy(t *testing.T) {
	p := &pickOne{id: "b"}
	q := newQueen(t, nil, func(o *Options) { o.Policy = p })
	a := fakeworker.NewT(t, fakeworker.Config{ID: "a", Tokens: []string{"x"}})
	b := fakeworker.NewT(t, fakeworker.Config{ID: "b", Tokens: []string{"y"}})
	hb := a.Heartbeat("m", wire.StateReady, 0)
	hb.Slots = 8 // the default would take a
	q.beat(t, hb)
	q.beat(t, b.Heartbeat("m", wire.StateReady, 0))
	done := q.start(t, inferOp("m", "p"))
	testkit.WaitFor(t, "the request to be held", func() bool { return q.queued("m") == 1 })
	p.open.Store(true)
	q.beat(t, b.Heartbeat("m", wire.StateReady, 0)) // any change asks again
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if a.RequestCount() != 0 || b.RequestCount() != 1 {
		t.Fatalf("a %d, b %d", a.RequestCount(), b.RequestCount())
	}
}

// Requests spread over workers by their free slots, and the queen's own
// count of requests in flight stands in for heartbeats that lag.
func TestQueueSpreadsByFreeSlots(t *testing.T) {
	q := newQueen(t, nil, nil)
	a := fakeworker.NewT(t, fakeworker.Config{ID: "a", Tokens: []string{"x"}})
	b := fakeworker.NewT(t, fakeworker.Config{ID: "b", Tokens: []string{"y"}})
	gateA, gateB := make(chan struct{}), make(chan struct{})
	a.SetGate(gateA, -1)
	b.SetGate(gateB, -1)
	for _, w := range []*fakeworker.Worker{a, b} {
		hb := w.Heartbeat("m", wire.StateReady, 0)
		hb.Slots = 2
		q.beat(t, hb)
	}
	var done []<-chan error
	for i := range 5 {
		done = append(done, q.start(t, inferOp("m", fmt.Sprint(i))))
	}
	testkit.WaitFor(t, "four running, one queued", func() bool {
		return a.RequestCount() == 2 && b.RequestCount() == 2 && q.queued("m") == 1
	})
	close(gateA)
	close(gateB)
	for _, d := range done {
		if err := <-d; err != nil {
			t.Fatal(err)
		}
	}
	if a.RequestCount()+b.RequestCount() != 5 {
		t.Fatalf("a %d b %d", a.RequestCount(), b.RequestCount())
	}
}
