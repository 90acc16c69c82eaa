package hive

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/rbee/rbee/internal/catalog"
	"github.com/rbee/rbee/internal/cli"
	"github.com/rbee/rbee/internal/config"
	"github.com/rbee/rbee/internal/httpapi"
	"github.com/rbee/rbee/internal/wire"
)

// nameInputs are tried as every kind of name. The empty name is left out:
// where a name is optional it means "none", which wire's own tests cover.
var nameInputs = []string{
	"a", "worker-0123abcdef", "Q4_K_M.v2", "_x", "x_", ".x", "-x", "x.", "a..b", "a.b",
	"a b", "a/b", `a\b`, "a;b", "$(id)", "a\x00b", "a\nb", "ü", "a:b",
	strings.Repeat("x", 63), strings.Repeat("x", 64), strings.Repeat("x", 128), strings.Repeat("x", 129),
}

// An id that one part of rbee takes, every other part takes too: the CLI,
// the hive's dispatch, its catalog and hives.conf check each kind of name
// with the one function of wire.
func TestNamesAgree(t *testing.T) {
	cfg, ln, dir := testConfig(t)
	hv := serveHive(t, cfg, ln, dir).hive
	rbee := newCLI(t)

	for _, id := range nameInputs {
		want := wire.CheckWorkerID(id) == nil
		_, err := hv.dispatch(wire.Operation{Operation: wire.OpWorkerGet, WorkerID: id})
		agree(t, "worker id", id, want, map[string]bool{
			"hive":                err == nil,
			"rbee worker get":     rbee.sends(t, func(op wire.Operation) bool { return op.WorkerID == id }, "worker", "get", "--", id),
			"rbee infer --worker": rbee.sends(t, func(op wire.Operation) bool { return op.WorkerID == id }, "infer", "-m", "m", "--worker="+id, "hi"),
		})

		want = wire.CheckHiveID(id) == nil
		_, err = hv.dispatch(wire.Operation{Operation: wire.OpWorkerList, HiveID: id})
		_, perr := config.ParseHives(strings.NewReader("Host " + id + "\n"))
		c := Config{HiveID: id, DataDir: dir, LogDir: filepath.Join(dir, "logs")}
		agree(t, "hive id", id, want, map[string]bool{
			"hive":            err == nil,
			"hive config":     c.setDefaults() == nil,
			"hives.conf":      perr == nil,
			"rbee hive start": rbee.sends(t, func(op wire.Operation) bool { return op.Alias == id }, "hive", "start", "--alias="+id),
			"rbee model list": rbee.sends(t, func(op wire.Operation) bool { return op.HiveID == id }, "model", "list", "--hive="+id),
		})

		want = wire.CheckModelID(id) == nil
		_, err = hv.dispatch(wire.Operation{Operation: wire.OpModelGet, Model: id})
		_, cerr := hv.cat.Get(id)
		agree(t, "model id", id, want, map[string]bool{
			"hive":           err == nil,
			"catalog":        !errors.Is(cerr, catalog.ErrInvalidID),
			"rbee model get": rbee.sends(t, func(op wire.Operation) bool { return op.Model == id }, "model", "get", "--", id),
		})
	}
}

func agree(t *testing.T, kind, id string, want bool, got map[string]bool) {
	t.Helper()
	for who, ok := range got {
		if ok != want {
			t.Errorf("%s %.20q: wire says valid=%v, %s says %v", kind, id, want, who, ok)
		}
	}
}

// fakeCLI runs rbee in-process against a queen that records the
// operations it gets and fails them.
type fakeCLI struct {
	mu  sync.Mutex
	ops []wire.Operation
}

func newCLI(t *testing.T) *fakeCLI {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, "config"))
	t.Setenv("XDG_DATA_HOME", filepath.Join(home, "data"))
	f := &fakeCLI{}
	q := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			httpapi.WriteJSON(w, http.StatusOK, wire.HiveHealth{Status: "ok"})
			return
		}
		var op wire.Operation
		if err := json.NewDecoder(r.Body).Decode(&op); err == nil {
			f.mu.Lock()
			f.ops = append(f.ops, op)
			f.mu.Unlock()
		}
		httpapi.WriteError(w, r, wire.Errorf(wire.CodeUnavailable, "this queen only listens"))
	}))
	t.Cleanup(q.Close)
	t.Setenv("RBEE_QUEEN_URL", q.URL)
	return f
}

// sends runs rbee with args and reports whether the queen got an operation
// that sent matches; a refused argument is a usage error and sends nothing.
func (f *fakeCLI) sends(t *testing.T, sent func(wire.Operation) bool, args ...string) bool {
	t.Helper()
	f.mu.Lock()
	f.ops = nil
	f.mu.Unlock()
	var stderr bytes.Buffer
	a := &cli.App{Stdout: &bytes.Buffer{}, Stderr: &stderr, Dir: t.TempDir()}
	code := a.Run(t.Context(), args)
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case code == 2 && len(f.ops) == 0:
		return false
	case code == 1 && len(f.ops) == 1 && sent(f.ops[0]):
		return true
	}
	t.Fatalf("rbee %.60q: exit %d, queen got %+v; stderr %s", args, code, f.ops, stderr.String())
	return false
}
