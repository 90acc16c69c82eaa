package hive

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rbee/rbee/internal/httpapi"
	"github.com/rbee/rbee/internal/wire"
)

// Workers on an address other machines reach need a token (the hive's,
// from which theirs derive); hostile addresses are refused before any
// worker starts.
func TestWorkerHostNeedsAToken(t *testing.T) {
	dir := t.TempDir()
	cfg := func(host, token string) *Config {
		return &Config{WorkerHost: host, DataDir: dir, LogDir: dir, Token: token}
	}
	if err := cfg("10.0.0.5", "").setDefaults(); err == nil || !strings.Contains(err.Error(), "RBEE_HIVE_TOKEN") {
		t.Fatalf("no token: %v", err)
	}
	for _, host := range []string{"-oProxyCommand=x", "a;b", "$(id)", "a b"} {
		if err := cfg(host, "").setDefaults(); err == nil {
			t.Errorf("worker host %q accepted", host)
		}
	}
	if err := cfg("10.0.0.5", "a-hive-token-of-some-length").setDefaults(); err != nil {
		t.Fatal(err)
	}
	if c := cfg("", ""); c.setDefaults() != nil || c.WorkerHost != "127.0.0.1" {
		t.Fatalf("default worker host %q", c.WorkerHost)
	}
}

// Each worker the hive spawns gets a credential of its own, derived from
// the hive's token and its id, never the hive's token nor one inherited
// from the hive's environment; the hive calls it with that credential
// (the fake worker, like the real one, requires it: the spawn follows its
// loading progress).
func TestSpawnedWorkersGetTheirOwnCredential(t *testing.T) {
	const hiveToken = "the-hive-token-0123456789abcdef"
	t.Setenv("RBEE_HIVE_TOKEN", hiveToken)
	t.Setenv("RBEE_WORKER_TOKEN", "a-token-from-the-shell-0123456789")
	h := startHive(t, func(c *Config) { c.Token = hiveToken })
	path := h.model(t, "alpha")
	_, term, err := h.run(t, spawnOp(path))
	if err != nil {
		t.Fatal(err)
	}
	var info wire.WorkerInfo
	if err := json.Unmarshal(term.Data, &info); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(h.models, "env-"+info.WorkerID+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var env map[string]string
	if err := json.Unmarshal(b, &env); err != nil {
		t.Fatal(err)
	}
	want := httpapi.WorkerToken(hiveToken, info.WorkerID)
	if len(env) != 1 || env["RBEE_WORKER_TOKEN"] != want {
		t.Fatalf("the worker's secrets: %v, want only RBEE_WORKER_TOKEN=%s", env, want)
	}
	if list := result[[]wire.WorkerInfo](t, h, wire.Operation{Operation: wire.OpWorkerList}); len(list) != 1 || list[0].State != wire.StateReady {
		t.Fatalf("worker_list = %+v", list)
	}
}

func TestParseListeningOnAnyHost(t *testing.T) {
	if got, err := parseListeningOn("listening http://10.231.1.2:4000", true); err != nil || got != "http://10.231.1.2:4000" {
		t.Errorf("got %q %v", got, err)
	}
	for _, line := range []string{"listening http://0.0.0.0:4000", "listening http://[::]:4000"} {
		if got, err := parseListeningOn(line, true); err == nil {
			t.Errorf("%q: %q accepted", line, got)
		}
	}
	if _, err := parseListeningOn("listening http://10.231.1.2:4000", false); err == nil {
		t.Error("a non-loopback address accepted for a loopback worker")
	}
}
