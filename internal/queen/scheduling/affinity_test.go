package scheduling

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rbee/rbee/internal/jobs"
	"github.com/rbee/rbee/internal/queen/workers"
	"github.com/rbee/rbee/internal/testkit/fakeworker"
	"github.com/rbee/rbee/internal/wire"
)

func chat(msgs ...string) *wire.InferenceRequest {
	req := &wire.InferenceRequest{}
	for i := 0; i+1 < len(msgs); i += 2 {
		req.Messages = append(req.Messages, wire.ChatMessage{Role: msgs[i], Content: msgs[i+1]})
	}
	return req
}

func text(prompt string) *wire.InferenceRequest { return &wire.InferenceRequest{Prompt: prompt} }

// The next turn of a conversation starts with this one's keys and the
// key of this one followed by its reply.
func TestPrefixChatTurns(t *testing.T) {
	one := prefixOf("m", chat("system", "be brief", "user", "hi"))
	two := prefixOf("m", chat("system", "be brief", "user", "hi", "assistant", " hello ", "user", "more"))
	if len(one.keys) != 1 || len(two.keys) != 3 || one.route != 0 || two.route != 0 {
		t.Fatalf("keys %d and %d, route %d and %d", len(one.keys), len(two.keys), one.route, two.route)
	}
	if one.keys[0] != two.keys[0] {
		t.Fatal("the turns do not share the first turn's key")
	}
	if !slices.Contains(one.replyKeys(" hello "), two.keys[1]) {
		t.Fatal("the reply's key is not the next turn's")
	}
	// A client that trims the reply sends it back so.
	trimmed := prefixOf("m", chat("system", "be brief", "user", "hi", "assistant", "hello", "user", "more"))
	if !slices.Contains(one.replyKeys(" hello "), trimmed.keys[1]) {
		t.Fatal("the trimmed reply's key is missing")
	}
	// A single message keys nothing: it never routes by itself.
	if p := prefixOf("m", chat("system", "be brief")); len(p.keys) != 0 {
		t.Fatalf("a lone message has keys %v", p.keys)
	}
}

// Keys differ wherever the prompts do: message boundaries, roles, the
// model, chat against raw text.
func TestPrefixKeysDiffer(t *testing.T) {
	key := func(model string, req *wire.InferenceRequest) uint64 {
		p := prefixOf(model, req)
		return p.keys[len(p.keys)-1]
	}
	keys := []uint64{
		key("m", chat("user", "ab", "user", "c")),
		key("m", chat("user", "a", "user", "bc")),
		key("m", chat("user", "a", "assistant", "bc")),
		key("n", chat("user", "a", "assistant", "bc")),
		key("m", text("abc")),
		key("n", text("abc")),
		key("m", text("ab")),
	}
	for i := range keys {
		for j := range i {
			if keys[i] == keys[j] {
				t.Errorf("prompts %d and %d have one key", j, i)
			}
		}
	}
}

// A raw prompt is keyed at every block boundary (every 64 bytes up to
// 1024, then every 256) and whole; only the keys of at least half of it
// route.
func TestPrefixText(t *testing.T) {
	prompt := strings.Repeat("0123456789", 100) // 1000 bytes
	p := prefixOf("m", text(prompt))
	if len(p.keys) != 16 || p.route != 7 { // 64, ..., 960, 1000; 512 is half
		t.Fatalf("%d keys, route %d", len(p.keys), p.route)
	}
	if half := prefixOf("m", text(prompt[:512])); !slices.Equal(half.keys, p.keys[:8]) || half.route != 3 {
		t.Fatalf("the first 512 bytes: %d keys, route %d", len(half.keys), half.route)
	}
	if short := prefixOf("m", text("hi")); len(short.keys) != 1 || short.route != 0 {
		t.Fatalf("a short prompt: %v, route %d", short.keys, short.route)
	}
	if empty := prefixOf("m", text("")); len(empty.keys) != 0 {
		t.Fatalf("an empty prompt has keys %v", empty.keys)
	}
	reply := strings.Repeat("r", 300)
	next := prefixOf("m", text(prompt+reply)) // ..., 960, 1024, 1280, 1300
	if len(next.keys) != 18 || !slices.Equal(next.keys[15:], p.replyKeys(reply)) || !slices.Equal(next.keys[:15], p.keys[:15]) {
		t.Fatal("the prompt followed by its reply is keyed otherwise")
	}
}

// The keys of a raw prompt followed by a reply are its whole blocks' keys
// and then the reply's, whatever the lengths; the routing keys cover at
// least half the prompt.
func FuzzPrefixText(f *testing.F) {
	f.Add("", "")
	f.Add("abc", "def")
	f.Add(strings.Repeat("a", textFine), "b")
	f.Add(strings.Repeat("a", textFine-1), strings.Repeat("b", 2*textBlock))
	f.Fuzz(func(t *testing.T, a, b string) {
		p := prefixOf("m", text(a))
		whole := prefixOf("m", text(a+b))
		blocks := len(p.keys)
		if p.tail != "" {
			blocks--
		}
		if !slices.Equal(whole.keys[:blocks], p.keys[:blocks]) {
			t.Fatal("the whole blocks are keyed otherwise")
		}
		if b != "" && !slices.Equal(whole.keys[blocks:], p.replyKeys(b)) {
			t.Fatal("the reply is keyed otherwise")
		}
		if b == "" && !slices.Equal(whole.keys, p.keys) {
			t.Fatal("the same prompt is keyed otherwise")
		}
		_, ends, _, _ := textKeys(0, 0, a+b)
		if n := len(ends); n > 0 && (2*ends[whole.route] < len(a+b) || whole.route > 0 && 2*ends[whole.route-1] >= len(a+b)) {
			t.Fatalf("route %d of %v for %d bytes", whole.route, ends, len(a+b))
		}
	})
}

func TestAffinityChoose(t *testing.T) {
	reg := workers.New(workers.Options{})
	hb := func(id, url string) wire.Heartbeat {
		return wire.Heartbeat{WorkerID: id, HiveID: "h", Model: "m", URL: url, State: wire.StateReady, Slots: 1}
	}
	get := func(id string) workers.Worker {
		w, ok := reg.Get(id)
		if !ok {
			t.Fatalf("no worker %s", id)
		}
		return w
	}
	for _, h := range []wire.Heartbeat{hb("a", "http://a"), hb("b", "http://b")} {
		if err := reg.Heartbeat(h); err != nil {
			t.Fatal(err)
		}
	}
	a := newAffinity(affinityKeys)
	conv := prefixOf("m", chat("system", "s", "user", "u", "assistant", "r", "user", "v"))
	a.record(conv.keys[:2], refOf(get("a")))

	if w, ok := a.choose(conv, []workers.Worker{get("b"), get("a")}, reg); !ok || w.WorkerID != "a" {
		t.Fatalf("chose %v %v", w.WorkerID, ok)
	}
	// a has no free slot: not chosen, still remembered.
	if _, ok := a.choose(conv, []workers.Worker{get("b")}, reg); ok || a.len() != 2 {
		t.Fatalf("chose a busy worker (%v) or forgot it (%d keys)", ok, a.len())
	}
	// Only the first message in common: the policy decides.
	other := prefixOf("m", chat("system", "s", "user", "x"))
	a.record(prefixOf("m", chat("system", "s")).keys, refOf(get("a")))
	if _, ok := a.choose(other, []workers.Worker{get("a"), get("b")}, reg); ok {
		t.Fatal("routed by the system prompt alone")
	}
	// a is gone, and another process took its id: its prefixes go.
	reg.MarkGone("a", "test")
	if _, ok := a.choose(conv, []workers.Worker{get("b")}, reg); ok || a.len() != 0 {
		t.Fatalf("chose %v, %d keys left", ok, a.len())
	}
	a.record(conv.keys, refOf(get("a")))
	if err := reg.Heartbeat(hb("a", "http://a2")); err != nil {
		t.Fatal(err)
	}
	if _, ok := a.choose(conv, []workers.Worker{get("a"), get("b")}, reg); ok || a.len() != 0 {
		t.Fatalf("chose the new process of a id (%v), %d keys left", ok, a.len())
	}
}

// The least recently used prefixes go first.
func TestAffinityBounded(t *testing.T) {
	a := newAffinity(4)
	w := workerRef{id: "a"}
	for k := range uint64(8) {
		a.record([]uint64{k}, w)
		if k == 5 {
			a.record([]uint64{2}, w) // used again
		}
	}
	if a.len() != 4 {
		t.Fatalf("%d keys kept", a.len())
	}
	var kept []uint64
	for el := a.order.Back(); el != nil; el = el.Prev() {
		kept = append(kept, el.Value.(*placed).key)
	}
	if !slices.Equal(kept, []uint64{5, 2, 6, 7}) {
		t.Fatalf("kept %v", kept)
	}
}

// With cache routing, the turns of a conversation stay on one worker
// though the policy prefers the other each time; with NoCacheRouting, they
// go where the policy sends them.
func TestRouteCacheRouting(t *testing.T) {
	for _, off := range []bool{false, true} {
		reg := workers.New(workers.Options{})
		jr := jobs.NewRegistry(jobs.Options{Actor: "queen-rbee"})
		s := New(Options{
			Workers: reg, Jobs: jr, Policy: MostFreeSlots{}, MaxQueue: 8,
			LoadWait: time.Minute, KeepAlive: -1, Actor: "queen-rbee",
			Start:          func(context.Context, *jobs.Job, string, string, func(wire.Event)) error { return ErrNowhere },
			Stop:           func(context.Context, string, string) error { return nil },
			WorkerToken:    func(string, string) string { return "" },
			Logger:         slog.New(slog.DiscardHandler),
			NoCacheRouting: off,
		})
		defer jr.Close()
		defer s.Close()
		ws := map[string]*fakeworker.Worker{}
		favour := func(id string) {
			if err := reg.Heartbeat(ws[id].Heartbeat("m", wire.StateReady, 0)); err != nil {
				t.Fatal(err)
			}
		}
		for _, id := range []string{"w1", "w2"} {
			ws[id] = fakeworker.NewT(t, fakeworker.Config{ID: id, Tokens: []string{"fine"}})
			favour(id)
		}
		conv := chat("system", "s", "user", "u")
		var went []string
		for turn := range 3 {
			var on string
			var reply strings.Builder
			r := &Routed{
				Request: Request{Model: "m", Inference: *conv},
				Filter:  workers.Filter{Models: []string{"m"}},
				Say: func(e wire.Event) {
					if e.Action == "route" {
						on = e.WorkerID
					}
				},
				Nowhere: func() error { return ErrNowhere },
			}
			if _, err := s.Route(context.Background(), r, func(e wire.Event) error {
				reply.WriteString(e.T)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			went = append(went, on)
			favour(map[string]string{"w1": "w2", "w2": "w1"}[on])
			conv.Messages = append(conv.Messages, wire.ChatMessage{Role: "assistant", Content: reply.String()},
				wire.ChatMessage{Role: "user", Content: string(rune('a' + turn))})
		}
		hits, routed := s.AffinityStats()
		stayed := went[0] == went[1] && went[1] == went[2]
		switch {
		case !off && (!stayed || hits != 2 || routed != 3):
			t.Errorf("on: the turns went to %v, %d hits of %d", went, hits, routed)
		case off && (went[0] == went[1] || went[1] == went[2] || hits != 0 || routed != 3):
			t.Errorf("off: the turns went to %v, %d hits of %d", went, hits, routed)
		}
	}
}
