package queen

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/rbee/rbee/internal/testkit"
	"github.com/rbee/rbee/internal/testkit/fakeworker"
	"github.com/rbee/rbee/internal/wire"
)

// pair is two fake workers of model "m" and the queen they beat to.
type pair struct {
	q      *testQueen
	w      map[string]*fakeworker.Worker
	counts map[string]int // requests each had when last asked
}

func newPair(t *testing.T, slots int) *pair {
	t.Helper()
	p := &pair{q: newQueen(t, nil, nil), w: map[string]*fakeworker.Worker{}, counts: map[string]int{}}
	for _, id := range []string{"w1", "w2"} {
		p.w[id] = fakeworker.NewT(t, fakeworker.Config{ID: id, Slots: slots, Tokens: []string{" Sure", ", ", "noted. "}})
		p.favour(t, id)
	}
	return p
}

// favour makes id the policy's choice among idle workers: the one heard
// from last.
func (p *pair) favour(t *testing.T, id string) {
	t.Helper()
	p.q.beat(t, p.w[id].Heartbeat("m", wire.StateReady, 0))
}

// other is the worker that is not id.
func other(id string) string {
	if id == "w1" {
		return "w2"
	}
	return "w1"
}

// landed is the worker that got a request since the last call.
func (p *pair) landed(t *testing.T) string {
	t.Helper()
	var got []string
	for id, w := range p.w {
		if n := w.RequestCount(); n != p.counts[id] {
			got = append(got, id)
			p.counts[id] = n
		}
	}
	if len(got) != 1 {
		t.Fatalf("the request landed on %v", got)
	}
	return got[0]
}

// arrived waits for a request to reach a worker and says which.
func (p *pair) arrived(t *testing.T) string {
	t.Helper()
	testkit.WaitFor(t, "a request to arrive", func() bool {
		n := 0
		for id, w := range p.w {
			n += w.RequestCount() - p.counts[id]
		}
		return n > 0
	})
	return p.landed(t)
}

// say sends a chat turn and returns the reply, as a client keeps it.
func (p *pair) say(t *testing.T, msgs []wire.ChatMessage) string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"model": "m", "messages": msgs})
	code, out := p.q.postAPI(t, "/v1/chat/completions", string(body))
	if code != http.StatusOK {
		t.Fatalf("chat: %d %s", code, out)
	}
	return content(t, out)
}

// turn sends conv and appends the reply and the next user message.
func (p *pair) turn(t *testing.T, conv *[]wire.ChatMessage, next string) string {
	t.Helper()
	reply := p.say(t, *conv)
	*conv = append(*conv, wire.ChatMessage{Role: "assistant", Content: reply}, wire.ChatMessage{Role: "user", Content: next})
	return p.landed(t)
}

func (p *pair) hits() int64 {
	h, _ := p.q.sched.AffinityStats()
	return h
}

func conversation(user string) []wire.ChatMessage {
	return []wire.ChatMessage{{Role: "system", Content: "You are terse."}, {Role: "user", Content: user}}
}

// The turns of a conversation land on the worker that ran the last one,
// though the policy would pick the other.
func TestAffinityConversationStays(t *testing.T) {
	p := newPair(t, 1)
	conv := conversation("plan a trip")
	home := p.turn(t, &conv, "and the budget?")
	for i := range 4 {
		p.favour(t, other(home))
		if got := p.turn(t, &conv, fmt.Sprint("more ", i)); got != home {
			t.Fatalf("turn %d went to %s, the conversation is on %s", i+2, got, home)
		}
	}
	if hits, routed := p.q.sched.AffinityStats(); hits != 4 || routed != 5 {
		t.Fatalf("%d hits of %d", hits, routed)
	}
}

// Raw prompts that continue an earlier one (with its reply) go where it
// ran, through the job protocol too.
func TestAffinityRawPrompt(t *testing.T) {
	p := newPair(t, 1)
	prompt := "Once upon a time there was a queen of bees who kept a ledger of every hive."
	evs, err := p.q.run(t, inferOp("m", prompt))
	if err != nil {
		t.Fatal(err)
	}
	home := p.landed(t)
	for _, e := range evs {
		if e.Type == wire.TypeToken {
			prompt += e.T
		}
	}
	p.favour(t, other(home))
	if _, err := p.q.run(t, inferOp("m", prompt+" The end.")); err != nil {
		t.Fatal(err)
	}
	if got := p.landed(t); got != home {
		t.Fatalf("the continuation went to %s, the first to %s", got, home)
	}
	if p.hits() != 1 {
		t.Fatalf("%d hits", p.hits())
	}
}

// Two conversations that share only their system prompt, started
// together, spread over both workers, though one of them ran that system
// prompt before.
func TestAffinityNewConversationsSpread(t *testing.T) {
	p := newPair(t, 2)
	earlier := conversation("hello")
	home := p.turn(t, &earlier, "again")
	p.favour(t, other(home))
	if got := p.turn(t, &earlier, "bye"); got != home {
		t.Fatalf("the second turn went to %s, the first to %s", got, home)
	}
	gate := make(chan struct{})
	defer close(gate)
	for _, w := range p.w {
		w.SetGate(gate, -1)
	}
	p.favour(t, home) // the first new one goes where the system prompt ran
	var (
		done  []chan int
		where []string
	)
	for _, user := range []string{"first", "second"} {
		ch := make(chan int, 1)
		go func() {
			body, _ := json.Marshal(map[string]any{"model": "m", "messages": conversation(user)})
			code, _ := p.q.postAPI(t, "/v1/chat/completions", string(body))
			ch <- code
		}()
		done = append(done, ch)
		where = append(where, p.arrived(t))
	}
	if where[0] != home || where[1] != other(home) {
		t.Fatalf("the new conversations went to %v; the system prompt ran on %s", where, home)
	}
	gate <- struct{}{}
	gate <- struct{}{}
	for _, ch := range done {
		if code := <-ch; code != http.StatusOK {
			t.Fatalf("chat: %d", code)
		}
	}
	if p.hits() != 1 {
		t.Fatalf("%d hits", p.hits())
	}
}

// A turn whose worker has no free slot goes where the policy sends it
// rather than wait.
func TestAffinityFullWorker(t *testing.T) {
	p := newPair(t, 1)
	conv := conversation("plan a trip")
	home := p.turn(t, &conv, "and the budget?")
	gate := make(chan struct{})
	p.w[home].SetGate(gate, -1)
	p.favour(t, home)
	busy := p.q.start(t, inferOp("m", "something else"))
	p.arrived(t)
	if got := p.turn(t, &conv, "thanks"); got != other(home) {
		t.Fatalf("the turn went to its busy worker %s", got)
	}
	close(gate)
	if err := <-busy; err != nil {
		t.Fatal(err)
	}
	if p.hits() != 0 {
		t.Fatalf("%d hits", p.hits())
	}
}

// A worker that goes away takes its conversations' affinity with it, even
// when another process comes back with its id.
func TestAffinityWorkerGone(t *testing.T) {
	p := newPair(t, 1)
	p.favour(t, "w1")
	a, d := conversation("first"), conversation("second")
	if p.turn(t, &a, "more") != "w1" || p.turn(t, &d, "more") != "w1" {
		t.Fatal("the conversations did not start on w1")
	}
	p.w["w1"].Close()
	p.q.beat(t, p.w["w1"].Heartbeat("m", wire.StateGone, 0))
	if got := p.turn(t, &a, "still there?"); got != "w2" {
		t.Fatalf("went to %s", got)
	}

	// w1 again, another process: the policy prefers w2.
	p.w["w1"] = fakeworker.NewT(t, fakeworker.Config{ID: "w1", Tokens: []string{"back"}})
	p.counts["w1"] = 0
	p.favour(t, "w1")
	p.favour(t, "w2")
	hits := p.hits()
	if got := p.turn(t, &d, "hello?"); got != "w2" {
		t.Fatalf("the conversation of the old w1 went to the new one")
	}
	if p.hits() != hits {
		t.Fatal("counted as a hit")
	}
	// a moved to w2 with its last turn.
	p.favour(t, "w1")
	if got := p.turn(t, &a, "and now?"); got != "w2" {
		t.Fatalf("went to %s", got)
	}
	if p.hits() != hits+1 {
		t.Fatalf("%d hits, want %d", p.hits(), hits+1)
	}
}
