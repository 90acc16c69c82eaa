package queen

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rbee/rbee/internal/config"
	"github.com/rbee/rbee/internal/httpapi"
	"github.com/rbee/rbee/internal/sshx"
	"github.com/rbee/rbee/internal/sshx/sshtest"
	"github.com/rbee/rbee/internal/testkit/fakeworker"
	"github.com/rbee/rbee/internal/wire"
)

// remoteFixture is a queen with one remote hive, "box", whose host is an
// in-process SSH server running commands with the local sh: install,
// start, stop and uninstall run for real, on files under a temp dir.
type remoteFixture struct {
	q      *testQueen
	progs  string // the programs to install, and their lib/
	srv    *sshtest.Server
	box    config.Hive
	home   string // the "host"'s home: HOME and XDG_DATA_HOME of its commands
	tokens string // the queen's token directory
	known  string // the queen's known_hosts
}

func newRemoteFixture(t *testing.T, mutate func(*Options)) *remoteFixture {
	t.Helper()
	here := t.TempDir()
	key := sshtest.NewKey(t, filepath.Join(here, "id_ed25519"))
	f := &remoteFixture{
		srv:    sshtest.New(t, key),
		home:   t.TempDir(),
		tokens: filepath.Join(here, "hive-tokens"),
		known:  filepath.Join(here, "known_hosts"),
	}
	f.srv.Env = []string{"HOME=" + f.home, "XDG_DATA_HOME=" + filepath.Join(f.home, "data")}
	f.box = config.Hive{
		Alias: "box", HostName: "127.0.0.1", Port: f.srv.Addr.Port, User: "tester",
		HivePort: deadPort(t), BinaryPath: filepath.Join(f.home, "bin"),
	}
	// The programs to install: real executables of this machine's
	// platform (this test binary, twice).
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	progs := t.TempDir()
	f.progs = progs
	for _, name := range []string{"rbee-hive", "llm-worker-rbee"} {
		b, err := os.ReadFile(exe)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(progs, name), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	f.q = newQueen(t, []config.Hive{config.LocalHive(), f.box}, func(o *Options) {
		o.HiveBinary = filepath.Join(progs, "rbee-hive")
		o.HiveTokenDir = f.tokens
		o.SSH = sshx.Options{KnownHosts: []string{f.known}, DefaultKeys: []string{filepath.Join(here, "id_ed25519")}, AgentSocket: "-"}
		o.SSHConfigHive = func(string) (config.Hive, bool, error) { return config.Hive{}, false, nil }
		o.BindHost, o.Port = "0.0.0.0", 7833
		if mutate != nil {
			mutate(o)
		}
	})
	return f
}

func (f *remoteFixture) trust(t *testing.T) {
	t.Helper()
	if err := os.WriteFile(f.known, []byte(f.srv.KnownHostsLine(f.srv.HostKey.PublicKey())), 0o600); err != nil {
		t.Fatal(err)
	}
}

func narration(evs []wire.Event) string {
	var b strings.Builder
	for _, e := range evs {
		if e.Type == wire.TypeNarration {
			b.WriteString(e.Human + "\n")
		}
	}
	return b.String()
}

func TestRemoteInstallAndUninstall(t *testing.T) {
	f := newRemoteFixture(t, nil)
	f.trust(t)
	var res wire.HiveInstall
	evs := f.q.result(t, wire.Operation{Operation: wire.OpHiveInstall, Alias: "box"}, &res)
	if res.BinaryPath != f.box.BinaryPath || len(res.Files) != 3 || res.Platform == "" {
		t.Fatalf("result %+v", res)
	}
	for _, name := range []string{"rbee-hive", "llm-worker-rbee"} {
		st, err := os.Stat(filepath.Join(f.box.BinaryPath, name))
		if err != nil || st.Mode().Perm() != 0o755 {
			t.Errorf("%s: %v %v", name, st, err)
		}
	}
	local, err := os.ReadFile(filepath.Join(f.tokens, "box"))
	if err != nil {
		t.Fatal(err)
	}
	remote, err := os.ReadFile(filepath.Join(f.box.BinaryPath, "rbee-hive.token"))
	if err != nil || string(remote) != string(local) || len(strings.TrimSpace(string(local))) != 64 {
		t.Fatalf("tokens: here %q, there %q (%v)", local, remote, err)
	}
	for _, p := range []string{filepath.Join(f.tokens, "box"), filepath.Join(f.box.BinaryPath, "rbee-hive.token")} {
		if st, _ := os.Stat(p); st.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v", p, st.Mode())
		}
	}
	for _, cmd := range f.srv.Execs() {
		if strings.Contains(cmd, strings.TrimSpace(string(local))) {
			t.Errorf("the token was on a command line: %q", cmd)
		}
	}
	if n := narration(evs); !strings.Contains(n, "SHA-256") || !strings.Contains(n, "checked on the host") {
		t.Errorf("narration:\n%s", n)
	}

	// Installing again keeps the token: a running hive keeps its queen.
	f.q.result(t, wire.Operation{Operation: wire.OpHiveInstall, Alias: "box"}, &res)
	if again, _ := os.ReadFile(filepath.Join(f.tokens, "box")); string(again) != string(local) {
		t.Error("a second install changed the token")
	}

	f.q.result(t, wire.Operation{Operation: wire.OpHiveUninstall, Alias: "box"}, &res)
	if len(res.Files) != 3 {
		t.Errorf("uninstall removed %v", res.Files)
	}
	if entries, _ := os.ReadDir(f.box.BinaryPath); len(entries) != 0 {
		t.Errorf("left on the host: %v", entries)
	}
	if _, err := os.Stat(filepath.Join(f.tokens, "box")); !os.IsNotExist(err) {
		t.Errorf("the local token is still there: %v", err)
	}
}

// An unknown host key stops everything before a command runs, with the
// way to trust it; --accept-new-host-key records it.
func TestRemoteUnknownHostKey(t *testing.T) {
	f := newRemoteFixture(t, nil)
	_, err := f.q.run(t, wire.Operation{Operation: wire.OpHiveInstall, Alias: "box"})
	if errorCode(err) != wire.CodeHostKeyUnknown || !strings.Contains(err.Error(), "ssh-keyscan") || !strings.Contains(err.Error(), "--accept-new-host-key") {
		t.Fatalf("got %v", err)
	}
	if cmds := f.srv.Execs(); len(cmds) != 0 {
		t.Fatalf("commands ran: %q", cmds)
	}
	if _, err := os.Stat(f.box.BinaryPath); !os.IsNotExist(err) {
		t.Fatalf("something was installed: %v", err)
	}
	evs, err := f.q.run(t, wire.Operation{Operation: wire.OpHiveInstall, Alias: "box", AcceptNewHostKey: true})
	if err != nil || !strings.Contains(narration(evs), "Recorded the host key") {
		t.Fatalf("accept-new: %v\n%s", err, narration(evs))
	}
}

func TestRemoteInstallRefusesOtherPlatform(t *testing.T) {
	f := newRemoteFixture(t, nil)
	f.trust(t)
	fake := t.TempDir()
	if err := os.WriteFile(filepath.Join(fake, "uname"), []byte("#!/bin/sh\necho Darwin arm64\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	f.srv.Env = append(f.srv.Env, "PATH="+fake+":"+os.Getenv("PATH"))
	_, err := f.q.run(t, wire.Operation{Operation: wire.OpHiveInstall, Alias: "box"})
	if errorCode(err) != wire.CodeIncompatibleHost || !strings.Contains(err.Error(), "darwin/arm64") || !strings.Contains(err.Error(), "GOOS=darwin GOARCH=arm64") {
		t.Fatalf("got %v", err)
	}
	if _, err := os.Stat(f.box.BinaryPath); !os.IsNotExist(err) {
		t.Fatalf("something was installed: %v", err)
	}
}

// failingHive replaces the installed hive with one that dies at once.
func (f *remoteFixture) failingHive(t *testing.T) {
	t.Helper()
	script := "#!/bin/sh\necho \"rbee-hive: cannot listen: the port is taken\" >&2\nexit 1\n"
	if err := os.WriteFile(filepath.Join(f.box.BinaryPath, "rbee-hive"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
}

// A hive that dies at start is reported with its last words from the log
// on the host.
func TestRemoteStartReportsAnEarlyExit(t *testing.T) {
	f := newRemoteFixture(t, nil)
	f.trust(t)
	_, err := f.q.run(t, wire.Operation{Operation: wire.OpHiveStart, Alias: "box"})
	if errorCode(err) != wire.CodeNotInstalled || !strings.Contains(err.Error(), "rbee hive install -a box") {
		t.Fatalf("start before install: %v", err)
	}
	f.q.run(t, wire.Operation{Operation: wire.OpHiveInstall, Alias: "box"})
	f.failingHive(t)
	_, err = f.q.run(t, wire.Operation{Operation: wire.OpHiveStart, Alias: "box"})
	if errorCode(err) != wire.CodeHiveUnreachable || !strings.Contains(err.Error(), "exited on box") || !strings.Contains(err.Error(), "the port is taken") {
		t.Fatalf("got %v", err)
	}
	log, _ := os.ReadFile(filepath.Join(f.home, "data", "rbee", "logs", "rbee-hive.log"))
	if !strings.Contains(string(log), "--queen-url http://127.0.0.1:7833 --worker-host 127.0.0.1") {
		t.Errorf("the hive was started with the wrong queen or worker address:\n%s", log)
	}
	if strings.Contains(string(log), strings.TrimSpace(string(must(os.ReadFile(filepath.Join(f.tokens, "box")))))) {
		t.Error("the token is in the log")
	}
	// Nothing runs now: stop says so and uninstall cleans up.
	evs, err := f.q.run(t, wire.Operation{Operation: wire.OpHiveStop, Alias: "box"})
	if err != nil || !strings.Contains(narration(evs), "not running") {
		t.Fatalf("stop: %v\n%s", err, narration(evs))
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// A queen on loopback cannot be reached from another host; start says so
// before it starts anything there.
func TestRemoteStartNeedsAReachableQueen(t *testing.T) {
	f := newRemoteFixture(t, func(o *Options) { o.BindHost = "127.0.0.1" })
	f.trust(t)
	f.q.run(t, wire.Operation{Operation: wire.OpHiveInstall, Alias: "box"})
	_, err := f.q.run(t, wire.Operation{Operation: wire.OpHiveStart, Alias: "box"})
	if err == nil || !strings.Contains(err.Error(), "cannot reach") || !strings.Contains(err.Error(), "queen_advertise_url") {
		t.Fatalf("got %v", err)
	}
	if _, err := os.Stat(filepath.Join(f.home, "data", "rbee", "logs", "rbee-hive.log")); !os.IsNotExist(err) {
		t.Errorf("a hive was started: %v", err)
	}
}

func TestQueenURLFor(t *testing.T) {
	f := newRemoteFixture(t, func(o *Options) { o.AdvertiseURL = "http://queen.lan:9000/" })
	f.trust(t)
	f.q.run(t, wire.Operation{Operation: wire.OpHiveInstall, Alias: "box"})
	f.failingHive(t)
	f.q.run(t, wire.Operation{Operation: wire.OpHiveStart, Alias: "box"})
	log, _ := os.ReadFile(filepath.Join(f.home, "data", "rbee", "logs", "rbee-hive.log"))
	if !strings.Contains(string(log), "--queen-url http://queen.lan:9000 ") {
		t.Errorf("queen_advertise_url not used:\n%s", log)
	}
}

// Aliases hives.conf lacks come from ~/.ssh/config, with the same checks.
func TestSSHConfigFallback(t *testing.T) {
	cfg := "Host evil\n  HostName $(touch /tmp/pwned)\nHost fine\n  HostName 127.0.0.1\n  Port 1\n"
	q := newQueen(t, []config.Hive{config.LocalHive()}, func(o *Options) {
		o.SSHConfigHive = func(alias string) (config.Hive, bool, error) {
			return config.ParseSSHConfig(strings.NewReader(cfg), alias)
		}
	})
	_, err := q.run(t, wire.Operation{Operation: wire.OpHiveInstall, Alias: "evil"})
	if httpStatus(err) != http.StatusBadRequest || !strings.Contains(err.Error(), "HostName") {
		t.Fatalf("evil: %v", err)
	}
	var st wire.HiveStatus
	q.result(t, wire.Operation{Operation: wire.OpHiveGet, Alias: "fine"}, &st)
	if st.Host != "127.0.0.1" || st.HivePort != config.DefaultHivePort {
		t.Fatalf("fine: %+v", st)
	}
	if _, err := q.run(t, wire.Operation{Operation: wire.OpHiveGet, Alias: "nowhere"}); httpStatus(err) != http.StatusBadRequest {
		t.Fatalf("unknown alias: %v", err)
	}
}

// A worker's heartbeat needs its own credential, derived from its hive's
// token and its id: none, the hive's token itself, another hive's worker
// credential, another worker's, the queen's token or a wrong one are
// refused; a hive with no token at all registers no worker.
func TestHeartbeatsNeedTheWorkersCredential(t *testing.T) {
	const queenToken = "queen-secret-0123456789"
	dir := t.TempDir()
	q := newQueen(t, nil, func(o *Options) { o.HiveTokenDir = dir; o.Token = queenToken })
	box, _, _ := q.fleet.Tokens.Ensure("box")
	other, _, _ := q.fleet.Tokens.Ensure("other")
	hb := wire.Heartbeat{WorkerID: "w1", HiveID: "box", Model: "m", URL: "http://127.0.0.1:4000", State: wire.StateReady, Slots: 1}
	for _, tc := range []struct {
		name, token string
		want        int
	}{
		{"none", "", 401},
		{"the hive's token", box, 401},
		{"the queen's token", queenToken, 401},
		{"another hive's worker", httpapi.WorkerToken(other, "w1"), 401},
		{"another worker of the hive", httpapi.WorkerToken(box, "w2"), 401},
		{"a wrong one", httpapi.WorkerToken(box, "w1") + "x", 401},
		{"its own", httpapi.WorkerToken(box, "w1"), 200},
	} {
		if code, eb := q.beatAs(t, hb, tc.token); code != tc.want {
			t.Errorf("%s: %d %+v, want %d", tc.name, code, eb, tc.want)
		}
	}
	if _, ok := q.workers.Get("w1"); !ok {
		t.Fatal("the good heartbeat was not recorded")
	}
	// A hive id with no token file: nobody holds a credential for it, and
	// the refusal says how a worker gets one.
	hb = wire.Heartbeat{WorkerID: "w3", HiveID: "my-laptop", Model: "m", URL: "http://127.0.0.1:4002", State: wire.StateReady, Slots: 1}
	code, eb := q.beatAs(t, hb, httpapi.WorkerToken(box, "w3"))
	if code != 401 || !strings.Contains(eb.Error.Message, "hive-tokens/my-laptop") {
		t.Fatalf("a hive without a token: %d %+v", code, eb)
	}
}

// The queen calls a remote worker with its credential, not its hive's
// token nor its own.
func TestInferSendsTheWorkersCredential(t *testing.T) {
	dir := t.TempDir()
	q := newQueen(t, nil, func(o *Options) { o.HiveTokenDir = dir; o.Token = "queen-secret-0123456789" })
	box, _, _ := q.fleet.Tokens.Ensure("box")
	// Like llm-worker-rbee under that hive, it refuses any other token.
	w := fakeworker.NewT(t, fakeworker.Config{ID: "w1", HiveID: "box", HiveToken: box, Tokens: []string{"hi"}})
	if code, eb := q.beatAs(t, w.Heartbeat("m", wire.StateReady, 0), w.Credential); code != 200 {
		t.Fatalf("heartbeat: %d %+v", code, eb)
	}
	if _, err := q.run(t, wire.Operation{Operation: wire.OpInfer, Model: "m", InferenceRequest: wire.InferenceRequest{Prompt: "x"}}); err != nil {
		t.Fatal(err)
	}
	if w.RequestCount() != 1 {
		t.Fatalf("the worker got %d requests", w.RequestCount())
	}
}

// The GPU backend built here goes to a host whose GPUs can run it, and
// uninstall takes it away again; a host without nvidia-smi gets none.
func TestRemoteInstallCopiesTheGPUBackend(t *testing.T) {
	f := newRemoteFixture(t, nil)
	f.trust(t)
	lib := filepath.Join(f.progs, "lib")
	if err := os.MkdirAll(lib, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{
		"libggml-cuda.so":    "not really a library",
		"rbee-backends.json": `{"cuda_architectures":["90"],"cuda_version":"13.0"}`,
		"notes.txt":          "not for the host",
	} {
		if err := os.WriteFile(filepath.Join(lib, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The host's nvidia-smi is a fake on its PATH: first one that lists
	// no GPU, then one that lists an H100.
	fake := t.TempDir()
	smi := filepath.Join(fake, "nvidia-smi")
	if err := os.WriteFile(smi, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	f.srv.Env = append(f.srv.Env, "PATH="+fake+":"+os.Getenv("PATH"))
	var res wire.HiveInstall
	evs := f.q.result(t, wire.Operation{Operation: wire.OpHiveInstall, Alias: "box"}, &res)
	if _, err := os.Stat(filepath.Join(f.box.BinaryPath, "lib")); !os.IsNotExist(err) || !strings.Contains(narration(evs), "no NVIDIA GPU") {
		t.Fatalf("a host without GPUs got the backend: %v\n%s", err, narration(evs))
	}
	if err := os.WriteFile(smi, []byte("#!/bin/sh\necho '0, NVIDIA H100 80GB HBM3, 81559, 81000, 9.0'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	f.q.result(t, wire.Operation{Operation: wire.OpHiveInstall, Alias: "box"}, &res)
	for _, name := range []string{"libggml-cuda.so", "rbee-backends.json"} {
		if _, err := os.Stat(filepath.Join(f.box.BinaryPath, "lib", name)); err != nil {
			t.Errorf("%s was not copied: %v", name, err)
		}
	}
	if _, err := os.Stat(filepath.Join(f.box.BinaryPath, "lib", "notes.txt")); !os.IsNotExist(err) {
		t.Errorf("notes.txt was copied: %v", err)
	}
	f.q.result(t, wire.Operation{Operation: wire.OpHiveUninstall, Alias: "box"}, &res)
	if entries, _ := os.ReadDir(f.box.BinaryPath); len(entries) != 0 {
		t.Errorf("left on the host: %v", entries)
	}
}

// A hive that starts but never answers the queen is stopped again rather
// than left running where nobody can use it.
func TestRemoteStartStopsAHiveThatNeverAnswers(t *testing.T) {
	f := newRemoteFixture(t, func(o *Options) { o.HiveStartTimeout = 1500 * time.Millisecond })
	f.trust(t)
	f.q.run(t, wire.Operation{Operation: wire.OpHiveInstall, Alias: "box"})
	mute := "#!/bin/sh\nwhile :; do sleep 0.2; done\n"
	if err := os.WriteFile(filepath.Join(f.box.BinaryPath, "rbee-hive"), []byte(mute), 0o755); err != nil {
		t.Fatal(err)
	}
	evs, err := f.q.run(t, wire.Operation{Operation: wire.OpHiveStart, Alias: "box"})
	if errorCode(err) != wire.CodeHiveUnreachable || !strings.Contains(err.Error(), "did not answer") {
		t.Fatalf("got %v", err)
	}
	n := narration(evs)
	_, rest, ok := strings.Cut(n, "(pid ")
	pid, perr := strconv.Atoi(strings.SplitN(rest, ",", 2)[0])
	if !ok || perr != nil {
		t.Fatalf("no pid in:\n%s", n)
	}
	if !strings.Contains(n, "Stopped the rbee-hive that did not answer") {
		t.Errorf("narration:\n%s", n)
	}
	status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if strings.Contains(string(status), "State:\tS") || strings.Contains(string(status), "State:\tR") {
		t.Fatalf("the mute hive (pid %d) still runs", pid)
	}
}
