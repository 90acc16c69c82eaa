package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rbee/rbee/internal/gguf"
	"github.com/rbee/rbee/internal/testhosts"
	"github.com/rbee/rbee/internal/testkit"
	"github.com/rbee/rbee/internal/testmodel"
	"github.com/rbee/rbee/internal/wire"
)

// sshEnv is a test's world for remote hives: two test hosts (network
// namespaces with their own sshd, user and home), and a queen here that
// listens on every address with a token, as it must for hives elsewhere.
type sshEnv struct {
	*env
	lab    *testhosts.Lab
	models string // world-readable directory of the models the hosts load
	slow   string // a model slow enough to cut its stream mid-way
	marker string // a file that exists only if a hostile name ran a command
}

// slowShape is a random-weight model of a few million parameters: fast to
// write and load, and a long generation on it lasts seconds, so a test can
// act in the middle of one.
var slowShape = testmodel.Shape{
	Name: "slow", Arch: "llama", Embd: 256, Blocks: 4, FF: 1024, Heads: 4, KVHeads: 2, Vocab: 4096, Context: 4096,
	RopeFreqBase: 10000, RMSEps: 1e-5, WeightType: gguf.TypeQ8_0,
}

func newSSHEnv(t *testing.T) *sshEnv {
	t.Helper()
	if err := testhosts.Available(); err != nil {
		t.Skip("SSH tests need test hosts: ", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	lab, err := testhosts.Start(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	// Registered before newEnv's cleanups, so it runs after them: the
	// hosts' processes go when the hosts do.
	t.Cleanup(func() {
		if err := lab.Close(); err != nil {
			t.Errorf("taking the test hosts down: %v", err)
		}
	})
	e := &sshEnv{env: newEnv(t), lab: lab, models: filepath.Join(lab.Dir, "models")}
	e.bin = installableBinaries(t)
	e.marker = filepath.Join(e.home, "PWNED")

	cfgDir := filepath.Join(e.home, "config", "rbee")
	token := make([]byte, 16)
	_, _ = rand.Read(token)
	must(t, os.WriteFile(filepath.Join(cfgDir, "config.toml"),
		fmt.Appendf(nil, "queen_host = \"0.0.0.0\"\nqueen_token = %q\n", hex.EncodeToString(token)), 0o600))
	// The queen listens on port 0 (startQueen); remote hives are told the
	// port it got.
	hport := strings.TrimPrefix(e.hiveURL, "http://127.0.0.1:")
	h1, h2 := lab.Hosts[0], lab.Hosts[1]
	// h1 is in hives.conf with its own key; h2 only in ~/.ssh/config, with
	// the default key.
	must(t, os.WriteFile(filepath.Join(cfgDir, "hives.conf"), fmt.Appendf(nil,
		"Host localhost\n  HivePort %s\n\nHost h1\n  HostName %s\n  User %s\n  IdentityFile ~/.ssh/lab_key\n", hport, h1.Addr, h1.User), 0o600))
	sshDir := filepath.Join(e.home, ".ssh")
	must(t, os.MkdirAll(sshDir, 0o700))
	key, err := os.ReadFile(lab.ClientKey)
	must(t, err)
	must(t, os.WriteFile(filepath.Join(sshDir, "lab_key"), key, 0o600))
	must(t, os.WriteFile(filepath.Join(sshDir, "id_ed25519"), key, 0o600))
	must(t, os.WriteFile(filepath.Join(sshDir, "config"), fmt.Appendf(nil,
		"Host h2\n  HostName %s\n  User %s\n\n"+
			"Host evil-host\n  HostName $(touch %s)\n\n"+
			"Host evil-user\n  HostName %s\n  User -oProxyCommand=touch%s\n\n"+
			"Host evil-dash\n  HostName -oProxyCommand=touch%s\n",
		h2.Addr, h2.User, e.marker, h2.Addr, e.marker, e.marker), 0o600))

	must(t, os.MkdirAll(e.models, 0o755))
	must(t, testmodel.WriteAlphabet(filepath.Join(e.models, "alpha.gguf")))
	e.slow = filepath.Join(e.models, "slow.gguf")
	must(t, testmodel.WriteRandom(e.slow, slowShape, 1))
	for _, m := range []string{"alpha.gguf", "slow.gguf"} {
		must(t, os.Chmod(filepath.Join(e.models, m), 0o644))
	}
	return e
}

// installableBinaries is a directory with the four programs as install
// copies them: the e2e worker is a wrapper script, but a host gets the
// real program.
func installableBinaries(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"rbee", "queen-rbee", "rbee-hive", "llm-worker-rbee"} {
		src := filepath.Join(binDir, name)
		if name == "llm-worker-rbee" {
			if _, err := os.Stat(src + ".real"); err == nil {
				src += ".real"
			}
		}
		dst := filepath.Join(dir, name)
		if os.Link(src, dst) == nil {
			continue
		}
		in, err := os.Open(src)
		must(t, err)
		out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY, 0o755)
		must(t, err)
		_, err = io.Copy(out, in)
		in.Close()
		must(t, err)
		must(t, out.Close())
	}
	return dir
}

// trust writes known_hosts lines, as ssh-keyscan would.
func (e *sshEnv) trust(lines ...string) {
	e.t.Helper()
	must(e.t, os.WriteFile(filepath.Join(e.home, ".ssh", "known_hosts"), []byte(strings.Join(lines, "")), 0o600))
}

// hostStatus is `rbee hive status -a ALIAS --json`: a running hive's
// health and capabilities.
func (e *sshEnv) hostStatus(alias string) wire.HiveStatus { return e.hiveJSON("status", alias) }

// hiveGet is `rbee hive get -a ALIAS --json`: the hive whatever its state.
func (e *sshEnv) hiveGet(alias string) wire.HiveStatus { return e.hiveJSON("get", alias) }

func (e *sshEnv) hiveJSON(cmd, alias string) wire.HiveStatus {
	e.t.Helper()
	r := e.mustRbee("hive", cmd, "-a", alias, "--json")
	var st wire.HiveStatus
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		e.t.Fatalf("hive %s: %v\n%s", cmd, err, r)
	}
	return st
}

// workersOn are the workers of one hive in the queen's registry.
func (e *sshEnv) workersOn(alias string) []wire.WorkerStatus {
	var out []wire.WorkerStatus
	for _, w := range e.status().Workers {
		if w.HiveID == alias {
			out = append(out, w)
		}
	}
	return out
}

// waitWorkers waits until every worker of hive alias is in a state cond
// accepts (and there is at least one).
func (e *sshEnv) waitWorkers(alias, what string, cond func(wire.WorkerStatus) bool) []wire.WorkerStatus {
	e.t.Helper()
	var ws []wire.WorkerStatus
	testkit.WaitFor(e.t, "the workers of "+alias+" to be "+what, func() bool {
		ws = e.workersOn(alias)
		ok := len(ws) > 0
		for _, w := range ws {
			ok = ok && cond(w)
		}
		return ok
	})
	return ws
}

// waitNoProcesses waits until nothing runs on host h.
func (e *sshEnv) waitNoProcesses(h *testhosts.Host) {
	e.t.Helper()
	testkit.WaitFor(e.t, "nothing running on "+h.Name, func() bool { return len(h.Processes()) == 0 })
}
