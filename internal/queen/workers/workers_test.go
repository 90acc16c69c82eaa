package workers

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rbee/rbee/internal/wire"
)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func newReg(opt Options) (*Registry, *clock) {
	c := &clock{now: time.Unix(1_700_000_000, 0)}
	opt.Now = c.Now
	return New(opt), c
}

func hb(id, model, state string, active int) wire.Heartbeat {
	return wire.Heartbeat{WorkerID: id, HiveID: "localhost", Model: model, URL: "http://127.0.0.1:1234", State: state, Slots: 1, Active: active}
}

func mustBeat(t *testing.T, r *Registry, h wire.Heartbeat) {
	t.Helper()
	if err := r.Heartbeat(h); err != nil {
		t.Fatal(err)
	}
}

func state(t *testing.T, r *Registry, id string) string {
	t.Helper()
	w, ok := r.Get(id)
	if !ok {
		return "(absent)"
	}
	return w.State
}

func TestGoneAfterSilenceThenForgotten(t *testing.T) {
	r, c := newReg(Options{GoneAfter: 8 * time.Second, Forget: time.Minute})
	mustBeat(t, r, hb("w1", "m", wire.StateReady, 0))
	c.Advance(8 * time.Second)
	if s := state(t, r, "w1"); s != wire.StateReady {
		t.Fatalf("at exactly GoneAfter: %s", s)
	}
	c.Advance(time.Millisecond)
	w, _ := r.Get("w1")
	if w.State != wire.StateGone || w.GoneReason != GoneTimeout {
		t.Fatalf("after GoneAfter: %+v", w)
	}
	if ready, loading := r.Pick(Filter{Models: []string{"m"}}); len(ready)+len(loading) != 0 {
		t.Fatalf("a gone worker was picked: %v %v", ready, loading)
	}
	c.Advance(time.Minute - time.Second) // gone since 8 s: 59 s ago
	if len(r.List()) != 1 {
		t.Fatal("forgotten too early")
	}
	c.Advance(2 * time.Second)
	if n := len(r.List()); n != 0 {
		t.Fatalf("gone worker still listed after Forget: %d", n)
	}
}

func TestGoneHeartbeatAndRevival(t *testing.T) {
	r, c := newReg(Options{})
	mustBeat(t, r, hb("w1", "m", wire.StateReady, 0))
	mustBeat(t, r, hb("w1", "m", wire.StateGone, 0))
	if w, _ := r.Get("w1"); w.State != wire.StateGone || w.GoneReason != GoneShutdown {
		t.Fatalf("gone heartbeat: %+v", w)
	}
	mustBeat(t, r, hb("w1", "m", wire.StateReady, 0))
	if s := state(t, r, "w1"); s != wire.StateReady {
		t.Fatalf("fresh heartbeat did not revive: %s", s)
	}

	r.MarkGone("w1", "its stream broke")
	c.Advance(time.Second)
	if w, _ := r.Get("w1"); w.State != wire.StateGone || w.GoneReason != "its stream broke" {
		t.Fatalf("MarkGone: %+v", w)
	}
	// Marking again keeps the first reason and time.
	r.MarkGone("w1", "again")
	if w, _ := r.Get("w1"); w.GoneReason != "its stream broke" {
		t.Fatalf("second MarkGone replaced the reason: %+v", w)
	}
	mustBeat(t, r, hb("w1", "m", wire.StateReady, 0))
	if s := state(t, r, "w1"); s != wire.StateReady {
		t.Fatalf("heartbeat after MarkGone did not revive: %s", s)
	}
	r.MarkGone("nobody", "x") // unknown ids are ignored
}

func TestPickLeastBusyThenMostRecent(t *testing.T) {
	r, c := newReg(Options{})
	mustBeat(t, r, hb("busy", "m", wire.StateBusy, 3))
	mustBeat(t, r, hb("idle-old", "m", wire.StateReady, 0))
	c.Advance(time.Second)
	mustBeat(t, r, hb("idle-new", "m", wire.StateReady, 0))
	mustBeat(t, r, hb("other", "n", wire.StateReady, 0))
	mustBeat(t, r, hb("loading", "m", wire.StateLoading, 0))
	mustBeat(t, r, hb("broken", "m", wire.StateError, 0))

	ready, loading := r.Pick(Filter{Models: []string{"m"}})
	var got []string
	for _, w := range ready {
		got = append(got, w.WorkerID)
	}
	if strings.Join(got, ",") != "idle-new,idle-old,busy" {
		t.Fatalf("order %v", got)
	}
	if len(loading) != 1 || loading[0].WorkerID != "loading" {
		t.Fatalf("loading %v", loading)
	}

	// The queen's own in-flight requests count until a heartbeat says more.
	release := r.Acquire("idle-new")
	ready, _ = r.Pick(Filter{Models: []string{"m"}})
	if ready[0].WorkerID != "idle-old" {
		t.Fatalf("in-flight request ignored: first is %s", ready[0].WorkerID)
	}
	release()
	release() // idempotent
	if w, _ := r.Get("idle-new"); w.InFlight != 0 {
		t.Fatalf("in flight %d after release", w.InFlight)
	}

	ready, _ = r.Pick(Filter{Models: []string{"m"}, WorkerID: "busy"})
	if len(ready) != 1 || ready[0].WorkerID != "busy" {
		t.Fatalf("worker filter: %v", ready)
	}
	if ready, _ = r.Pick(Filter{Models: []string{"m"}, HiveID: "elsewhere"}); len(ready) != 0 {
		t.Fatalf("hive filter: %v", ready)
	}
}

func TestFull(t *testing.T) {
	r, c := newReg(Options{Max: 2, GoneAfter: time.Second, Forget: time.Second})
	mustBeat(t, r, hb("a", "m", wire.StateReady, 0))
	mustBeat(t, r, hb("b", "m", wire.StateReady, 0))
	if err := r.Heartbeat(hb("c", "m", wire.StateReady, 0)); !errors.Is(err, ErrFull) {
		t.Fatalf("third worker: %v", err)
	}
	mustBeat(t, r, hb("a", "m", wire.StateBusy, 1)) // known workers still beat
	c.Advance(3 * time.Second)                      // both gone and past Forget: room again
	mustBeat(t, r, hb("c", "m", wire.StateReady, 0))
}

func TestChanged(t *testing.T) {
	r, _ := newReg(Options{})
	ch := r.Changed()
	select {
	case <-ch:
		t.Fatal("closed before any change")
	default:
	}
	mustBeat(t, r, hb("a", "m", wire.StateLoading, 0))
	select {
	case <-ch:
	default:
		t.Fatal("not closed by a heartbeat")
	}
}

func TestConcurrent(t *testing.T) {
	r := New(Options{})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for n := range 200 {
				id := fmt.Sprintf("w%d-%d", i, n%10)
				_ = r.Heartbeat(hb(id, "m", wire.StateReady, n%3))
				r.Pick(Filter{Models: []string{"m"}})
				r.Acquire(id)()
				if n%50 == 0 {
					r.MarkGone(id, "test")
				}
			}
		})
	}
	wg.Wait()
	if r.Len() != 80 {
		t.Fatalf("%d workers", r.Len())
	}
}

func TestValidate(t *testing.T) {
	good := hb("w1", "m", wire.StateReady, 0)
	if err := Validate(good); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*wire.Heartbeat){
		"no worker id":   func(h *wire.Heartbeat) { h.WorkerID = "" },
		"no hive id":     func(h *wire.Heartbeat) { h.HiveID = "" },
		"no model":       func(h *wire.Heartbeat) { h.Model = "" },
		"long id":        func(h *wire.Heartbeat) { h.WorkerID = strings.Repeat("a", 129) },
		"control char":   func(h *wire.Heartbeat) { h.Model = "a\nb" },
		"bad utf8":       func(h *wire.Heartbeat) { h.HiveID = "\xff" },
		"bad state":      func(h *wire.Heartbeat) { h.State = "happy" },
		"negative slots": func(h *wire.Heartbeat) { h.Slots = -1 },
		"huge queue":     func(h *wire.Heartbeat) { h.QueueLen = 1 << 30 },
		"negative pid":   func(h *wire.Heartbeat) { h.PID = -5 },
		"no url":         func(h *wire.Heartbeat) { h.URL = "" },
		"ftp url":        func(h *wire.Heartbeat) { h.URL = "ftp://127.0.0.1:21" },
		"no port":        func(h *wire.Heartbeat) { h.URL = "http://127.0.0.1" },
		"bad port":       func(h *wire.Heartbeat) { h.URL = "http://127.0.0.1:99999" },
		"user info":      func(h *wire.Heartbeat) { h.URL = "http://u:p@127.0.0.1:80" },
		"query":          func(h *wire.Heartbeat) { h.URL = "http://127.0.0.1:80/?x=1" },
		"not a url":      func(h *wire.Heartbeat) { h.URL = "::::" },
	} {
		h := good
		mut(&h)
		if err := Validate(h); err == nil {
			t.Errorf("%s: accepted %+v", name, h)
		}
	}
}

// A second worker cannot take the id of a live one, from another hive,
// URL or pid; the same worker beating again is fine, and the id of a gone
// worker is free.
func TestIDOfALiveWorker(t *testing.T) {
	r, c := newReg(Options{GoneAfter: 8 * time.Second})
	real := hb("w1", "m", wire.StateReady, 0)
	real.PID = 100
	mustBeat(t, r, real)
	mustBeat(t, r, real)
	for name, mut := range map[string]func(*wire.Heartbeat){
		"another hive": func(h *wire.Heartbeat) { h.HiveID = "box" },
		"another url":  func(h *wire.Heartbeat) { h.URL = "http://127.0.0.1:6666" },
		"another pid":  func(h *wire.Heartbeat) { h.PID = 101 },
	} {
		h := real
		mut(&h)
		if err := r.Heartbeat(h); !errors.Is(err, ErrExists) {
			t.Errorf("%s: %v, want ErrExists", name, err)
		}
	}
	if w, _ := r.Get("w1"); w.URL != real.URL || w.PID != 100 {
		t.Fatalf("the live worker was replaced: %+v", w)
	}
	// Gone by silence: its id may be taken.
	c.Advance(9 * time.Second)
	other := real
	other.PID, other.URL = 200, "http://127.0.0.1:7777"
	mustBeat(t, r, other)
	// Gone by its own word: likewise.
	mustBeat(t, r, func() wire.Heartbeat { h := other; h.State = wire.StateGone; return h }())
	mustBeat(t, r, real)
}

// A gone worker leaves the list after Forget even while requests are
// still counted on it (they hang on a vanished worker until they fail):
// it used to stay listed in rbee status for as long as one did.
func TestGoneWorkerWithRequestsIsForgotten(t *testing.T) {
	r, c := newReg(Options{GoneAfter: 8 * time.Second, Forget: time.Minute})
	mustBeat(t, r, hb("w1", "m", wire.StateReady, 0))
	release := r.Acquire("w1")
	r.MarkGone("w1", "its stream broke")
	c.Advance(time.Minute + time.Second)
	if n := len(r.List()); n != 0 {
		t.Fatalf("a gone worker with a request in flight is still listed after Forget: %d", n)
	}
	// Its id is taken again before the old request lets go: the new
	// worker's count is not touched.
	mustBeat(t, r, hb("w1", "m", wire.StateReady, 0))
	r.Acquire("w1")
	release()
	if w, _ := r.Get("w1"); w.InFlight != 1 {
		t.Fatalf("in flight %d, want 1", w.InFlight)
	}
}
