package main

import (
	"bytes"
	"context"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/rbee/rbee/internal/config"
	"github.com/rbee/rbee/internal/httpapi"
	"github.com/rbee/rbee/internal/queen"
	"github.com/rbee/rbee/internal/testkit"
	"github.com/rbee/rbee/internal/wire"
	"github.com/rbee/rbee/internal/workerclient"
)

// A worker started by hand on the queen's machine, with no token and no
// --worker-id, gets a random id and registers with the credential it
// derives from hive-tokens/localhost, the file the queen and the local
// hive share; it requires that credential on its API, as the queen calls
// it with it.
func TestHandStartedWorkerRegisters(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv("RBEE_WORKER_TOKEN", "")
	hiveTok, _, err := config.HiveTokens{}.Ensure("localhost")
	if err != nil {
		t.Fatal(err)
	}
	q := queen.New(queen.Options{URL: "http://queen.test", Hives: func() ([]config.Hive, error) { return nil, nil }})
	srv := httptest.NewServer(q.Handler())
	t.Cleanup(func() {
		srv.Close()
		q.Close()
	})

	cmd := workerCmd("--model", alphabetModel(t), "--port", "0", "--threads", "1", "--ctx-size", "512", "--queen-url", srv.URL)
	d := testkit.StartDaemon(t, cmd, nil)
	var w wire.Heartbeat
	testkit.WaitFor(t, "the worker ready at the queen", func() bool {
		list := q.Workers().List()
		if len(list) == 1 && list[0].State == wire.StateReady {
			w = list[0].Heartbeat
			return true
		}
		return false
	})
	if !regexp.MustCompile(`^worker-[0-9a-f]{16}$`).MatchString(w.WorkerID) || w.URL != d.URL {
		t.Fatalf("registered %+v", w)
	}
	ctx := context.Background()
	if _, err := (&workerclient.Client{BaseURL: d.URL}).Ready(ctx); httpStatus(err) != 401 {
		t.Fatalf("its API without its credential: %v", err)
	}
	wc := &workerclient.Client{BaseURL: d.URL, Token: httpapi.WorkerToken(hiveTok, w.WorkerID)}
	if r, err := wc.Ready(ctx); err != nil || !r.Ready {
		t.Fatalf("its API with its credential: %+v %v", r, err)
	}
}

// Without its hive's token file, or with a token nobody can send, a worker
// that is to report to a queen says why in one line and exits.
func TestWorkerWithoutCredential(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	model := alphabetModel(t)
	for name, c := range map[string]struct{ env, want string }{
		"no token file": {"", "hive-tokens/localhost"},
		"blank token":   {" ", "RBEE_WORKER_TOKEN: "},
		"short token":   {"abc", "RBEE_WORKER_TOKEN: "},
	} {
		t.Run(name, func(t *testing.T) {
			t.Setenv("RBEE_WORKER_TOKEN", c.env)
			cmd := workerCmd("--model", model, "--port", "0", "--queen-url", "http://127.0.0.1:9")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Run(); err == nil {
				t.Fatal("worker exited 0")
			}
			lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
			if len(lines) != 1 || !strings.HasPrefix(lines[0], "llm-worker-rbee: ") || !strings.Contains(lines[0], c.want) {
				t.Fatalf("want one line naming %q, got %q", c.want, stderr.String())
			}
		})
	}
}

func httpStatus(err error) int {
	if re, ok := wire.AsError(err); ok {
		return re.Status
	}
	return 0
}
