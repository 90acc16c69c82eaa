package scheduling

import (
	"testing"
	"time"

	"github.com/rbee/rbee/internal/queen/workers"
	"github.com/rbee/rbee/internal/wire"
)

func TestMostFreeSlots(t *testing.T) {
	now := time.Now()
	w := func(id string, slots, active, inflight int, seen time.Duration) workers.Worker {
		return workers.Worker{Heartbeat: wire.Heartbeat{WorkerID: id, Slots: slots, Active: active}, InFlight: inflight, LastSeen: now.Add(-seen)}
	}
	for _, c := range []struct {
		name  string
		cands []workers.Worker
		want  string
	}{
		{"most free", []workers.Worker{w("a", 4, 3, 0, 0), w("b", 4, 1, 0, time.Second), w("c", 2, 0, 0, 0)}, "b"},
		{"in flight counts when heartbeats lag", []workers.Worker{w("a", 4, 0, 3, 0), w("b", 4, 2, 0, 0)}, "b"},
		{"freshest among equals", []workers.Worker{w("a", 2, 0, 0, time.Second), w("b", 2, 0, 0, 0)}, "b"},
		{"lowest id among the same", []workers.Worker{w("b", 2, 0, 0, 0), w("a", 2, 0, 0, 0)}, "a"},
	} {
		got, ok := MostFreeSlots{}.Pick(&Request{}, c.cands)
		if !ok || got.WorkerID != c.want {
			t.Errorf("%s: got %s, want %s", c.name, got.WorkerID, c.want)
		}
	}
}
