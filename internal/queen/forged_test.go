package queen

import (
	"net/http"
	"strings"
	"testing"

	"github.com/rbee/rbee/internal/config"
	"github.com/rbee/rbee/internal/httpapi"
	"github.com/rbee/rbee/internal/testkit/fakeworker"
	"github.com/rbee/rbee/internal/wire"
)

// Issue 12, point 2: any local process could register a worker it
// invented (any hive, the id of a real worker, a URL on another loopback
// address, a model id like ../../etc/passwd) and the queen then sent it
// every user request. Each forgery is refused, and the users' requests all
// go to the real worker, although the forger advertises more free slots.
func TestForgedWorkersAreRefused(t *testing.T) {
	box := config.Hive{Alias: "box", HostName: "10.0.0.5", Port: 22, HivePort: 7835}
	q := newQueen(t, []config.Hive{config.LocalHive(), box}, nil)
	real := fakeworker.NewT(t, fakeworker.Config{ID: "real", Tokens: []string{"real"}})
	q.beat(t, real.Heartbeat("m", wire.StateReady, 0))
	evil := fakeworker.NewT(t, fakeworker.Config{ID: "evil", Slots: 64, Tokens: []string{"evil"}})
	localTok, _, _ := q.tokens.Ensure("localhost")
	boxTok, _, _ := q.tokens.Ensure("box")

	forged := func(mut func(*wire.Heartbeat)) wire.Heartbeat {
		hb := evil.Heartbeat("m", wire.StateReady, 0)
		mut(&hb)
		return hb
	}
	for _, c := range []struct {
		name   string
		hb     wire.Heartbeat
		bearer string
		status int
		code   string
	}{
		{"no credential", forged(func(*wire.Heartbeat) {}), "", 401, wire.CodeUnauthorized},
		{"a wrong credential", forged(func(*wire.Heartbeat) {}), "0123456789abcdef0123456789abcdef", 401, wire.CodeUnauthorized},
		{"the hive's token itself", forged(func(*wire.Heartbeat) {}), localTok, 401, wire.CodeUnauthorized},
		{"another hive's worker credential", forged(func(*wire.Heartbeat) {}), httpapi.WorkerToken(boxTok, "evil"), 401, wire.CodeUnauthorized},
		{"another hive's name", forged(func(h *wire.Heartbeat) { h.HiveID = "box" }), httpapi.WorkerToken(localTok, "evil"), 401, wire.CodeUnauthorized},
		{"a hive nobody installed", forged(func(h *wire.Heartbeat) { h.HiveID = "nowhere" }), httpapi.WorkerToken(localTok, "evil"), 401, wire.CodeUnauthorized},
		{"a live worker's id, without its credential", forged(func(h *wire.Heartbeat) { h.WorkerID = "real" }), httpapi.WorkerToken(localTok, "evil"), 401, wire.CodeUnauthorized},
		{"a live worker's id, with its credential", forged(func(h *wire.Heartbeat) { h.WorkerID = "real" }), httpapi.WorkerToken(localTok, "real"), 409, wire.CodeWorkerExists},
		{"another loopback address for a remote hive", forged(func(h *wire.Heartbeat) { h.HiveID, h.URL = "box", "http://127.0.0.2:4000" }), httpapi.WorkerToken(boxTok, "evil"), 403, wire.CodeForbidden},
		{"a non-loopback URL from loopback", forged(func(h *wire.Heartbeat) { h.URL = "http://10.0.0.9:4000" }), httpapi.WorkerToken(localTok, "evil"), 403, wire.CodeForbidden},
		{"a path as model id", forged(func(h *wire.Heartbeat) { h.Model = "../../etc/passwd" }), httpapi.WorkerToken(localTok, "evil"), 400, wire.CodeBadRequest},
		{"a path as hive id", forged(func(h *wire.Heartbeat) { h.HiveID = "../../etc" }), httpapi.WorkerToken(localTok, "evil"), 400, wire.CodeBadRequest},
	} {
		code, eb := q.beatAs(t, c.hb, c.bearer)
		if code != c.status || eb.Error.Code != c.code {
			t.Errorf("%s: %d %+v, want %d %s", c.name, code, eb, c.status, c.code)
		}
	}
	if list := q.Workers().List(); len(list) != 1 || list[0].WorkerID != "real" || list[0].URL != real.URL {
		t.Fatalf("registry %+v", list)
	}
	for range 5 {
		evs, err := q.run(t, inferOp("m", "hello"))
		if err != nil {
			t.Fatal(err)
		}
		var text strings.Builder
		for _, e := range evs {
			if e.Type == wire.TypeToken {
				text.WriteString(e.T)
			}
		}
		if text.String() != "real" {
			t.Fatalf("a user got %q", text.String())
		}
	}
	if real.RequestCount() != 5 || evil.RequestCount() != 0 {
		t.Fatalf("requests: real %d, forger %d", real.RequestCount(), evil.RequestCount())
	}
}

// The queen's token authorises the queen's callers; it registers no worker.
func TestQueenTokenRegistersNoWorker(t *testing.T) {
	const queenToken = "queen-secret-0123456789"
	q := newQueen(t, nil, func(o *Options) { o.Token = queenToken })
	q.tokens.Ensure("localhost")
	hb := wire.Heartbeat{WorkerID: "w1", HiveID: "localhost", Model: "m", URL: "http://127.0.0.1:4000", State: wire.StateReady, Slots: 1}
	if code, eb := q.beatAs(t, hb, queenToken); code != http.StatusUnauthorized {
		t.Fatalf("the queen's token: %d %+v", code, eb)
	}
	q.beat(t, hb)
}
