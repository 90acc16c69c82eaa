package e2e

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rbee/rbee/internal/wire"
)

// Hives on two other machines (network namespaces with real sshd): host
// keys, install, start, workers that heartbeat across the network,
// inference through the queen, a pulled cable in the middle of a stream,
// stop and uninstall. Hostile names never reach a shell.
func TestSSHHives(t *testing.T) {
	e := newSSHEnv(t)
	h1, h2 := e.lab.Hosts[0], e.lab.Hosts[1]
	// A short heartbeat timeout keeps the pulled-cable part quick.
	e.startQueen("--worker-timeout", "5s")

	t.Run("hostile names", func(t *testing.T) { e.hostileNames(t) })

	// Unknown host key: refused with the way to trust it, nothing copied.
	r := e.rbee("hive", "install", "-a", "h1")
	if r.code != 1 || !strings.Contains(r.stderr, "is not known") || !strings.Contains(r.stderr, "ssh-keyscan") || !strings.Contains(r.stderr, "--accept-new-host-key") {
		t.Fatalf("install with an unknown host key: %s", r)
	}
	if _, err := os.Stat(filepath.Join(h1.Home, ".local", "bin")); !os.IsNotExist(err) {
		t.Fatalf("install copied something before the host key was trusted: %v", err)
	}
	// A changed key is refused even with --accept-new-host-key.
	wrong := strings.Replace(h1.KnownHostsLine(), h1.Addr, h2.Addr, 1)
	e.trust(wrong)
	r = e.rbee("hive", "install", "-a", "h2", "--accept-new-host-key")
	if r.code != 1 || !strings.Contains(r.stderr, "not the one recorded") || !strings.Contains(r.stderr, "ssh-keygen -R") {
		t.Fatalf("install with a changed host key: %s", r)
	}

	// h1 by accepting its new key once, h2 from ssh-keyscan's line.
	e.trust(h2.KnownHostsLine())
	r = e.mustRbee("hive", "install", "-a", "h1", "--accept-new-host-key")
	if !strings.Contains(r.stderr, "Recorded the host key") || !strings.Contains(r.stderr, "checked on the host") {
		t.Errorf("install narration: %s", r)
	}
	t.Logf("rbee hive install -a h1 --accept-new-host-key:\n%s%s", r.stderr, r.stdout)
	e.mustRbee("hive", "install", "-a", "h2")
	for _, h := range e.lab.Hosts {
		bin := filepath.Join(h.Home, ".local", "bin")
		for name, mode := range map[string]os.FileMode{"rbee-hive": 0o755, "llm-worker-rbee": 0o755, "rbee-hive.token": 0o600} {
			if st, err := os.Stat(filepath.Join(bin, name)); err != nil || st.Mode().Perm() != mode {
				t.Fatalf("%s:%s: %v %v", h.Name, name, st, err)
			}
		}
	}

	// Start: each hive reports the URL the queen reaches it at.
	r = e.rbee("hive", "start", "-a", "h1")
	t.Logf("rbee hive start -a h1:\n%s%s", r.stderr, r.stdout)
	for _, h := range e.lab.Hosts {
		r = e.mustRbee("hive", "start", "-a", h.Name, "--json")
		var st wire.HiveStatus
		if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || st.State != wire.HiveOnline || st.URL != "http://"+h.Addr+":7835" {
			t.Fatalf("start %s: %+v %v\n%s", h.Name, st, err, r)
		}
	}
	if st := e.hostStatus("h1"); st.Capabilities == nil || st.Capabilities.OS != "linux" || st.Capabilities.CPUCores < 1 {
		t.Fatalf("status of h1: %+v", st)
	}
	r = e.mustRbee("hive", "start", "-a", "h1")
	if !strings.Contains(r.stderr, "already running") {
		t.Errorf("a second start: %s", r)
	}

	// A worker on h1, its heartbeats reaching the queen from h1's address,
	// and inference through the queen.
	e.mustRbee("worker", "spawn", "-m", filepath.Join(e.models, "alpha.gguf"), "--hive", "h1")
	ws := e.waitWorkers("h1", "ready", func(w wire.WorkerStatus) bool { return w.State == wire.StateReady })
	if !strings.HasPrefix(ws[0].URL, "http://"+h1.Addr+":") {
		t.Fatalf("the worker on h1 reports %s", ws[0].URL)
	}
	r = e.mustRbee("infer", "-m", "alpha", "--hive", "h1", "--temperature", "0", "abc")
	if !strings.HasPrefix(r.stdout, "defghijklmnopqrstuvwxyz") {
		t.Fatalf("infer on h1: %s", r)
	}
	// With no worker there, infer --hive starts one on that host.
	r = e.mustRbee("infer", "-m", filepath.Join(e.models, "alpha.gguf"), "--hive", "h2", "--temperature", "0", "abc")
	if !strings.HasPrefix(r.stdout, "defghijklmnopqrstuvwxyz") || !strings.Contains(r.stderr, "starting one on hive h2") {
		t.Fatalf("infer on h2 without a worker: %s", r)
	}
	// Its workers need its token: a wrong one is refused.
	if code := e.workerStatusWith(ws[0].URL, "wrong"); code != http.StatusUnauthorized {
		t.Errorf("h1's worker answered %d to a wrong token", code)
	}

	t.Run("pulled cable", func(t *testing.T) { e.pulledCable(t) })

	// Stop ends the hive and its workers; uninstall removes what install
	// put there, here and on the host.
	for _, h := range e.lab.Hosts {
		e.mustRbee("hive", "stop", "-a", h.Name)
		e.waitNoProcesses(h)
		if st := e.hiveGet(h.Name); st.State != wire.HiveOffline {
			t.Errorf("%s after stop: %+v", h.Name, st)
		}
	}
	e.waitWorkers("h1", "gone", func(w wire.WorkerStatus) bool { return w.State == wire.StateGone })
	for _, h := range e.lab.Hosts {
		e.mustRbee("hive", "uninstall", "-a", h.Name)
		entries, _ := os.ReadDir(filepath.Join(h.Home, ".local", "bin"))
		if len(entries) != 0 {
			t.Errorf("left on %s: %v", h.Name, entries)
		}
		if _, err := os.Stat(filepath.Join(e.home, "config", "rbee", "hive-tokens", h.Name)); !os.IsNotExist(err) {
			t.Errorf("the token of %s is still here: %v", h.Name, err)
		}
	}
	if _, err := os.Stat(e.marker); !os.IsNotExist(err) {
		t.Fatalf("a hostile name ran a command: %v", err)
	}
}

// hostileNames: aliases, host names and users with shell metacharacters,
// spaces or a leading '-' are refused, from the command line, the job API
// and ~/.ssh/config, and nothing runs.
func (e *sshEnv) hostileNames(t *testing.T) {
	mark := e.marker
	for _, alias := range []string{"h1;touch " + mark, "$(touch " + mark + ")", "`touch " + mark + "`", "-oProxyCommand=touch " + mark, "h1 h2"} {
		r := e.rbee("hive", "install", "-a", alias)
		if r.code == 0 || !strings.Contains(r.stderr, "alias") {
			t.Errorf("alias %q: %s", alias, r)
		}
		// Past the CLI, straight to the queen.
		body, _ := json.Marshal(wire.Operation{Operation: wire.OpHiveInstall, Alias: alias})
		if code := e.postJob(body); code != http.StatusBadRequest {
			t.Errorf("job with alias %q: %d", alias, code)
		}
	}
	for alias, why := range map[string]string{"evil-host": "HostName", "evil-user": "User", "evil-dash": "HostName"} {
		r := e.rbee("hive", "install", "-a", alias, "--accept-new-host-key")
		if r.code == 0 || !strings.Contains(r.stderr, why) {
			t.Errorf("%s from ~/.ssh/config: %s", alias, r)
		}
	}
	if _, err := os.Stat(mark); !os.IsNotExist(err) {
		t.Fatalf("a hostile name ran a command: %v", err)
	}
	if _, err := os.Stat(filepath.Join(e.home, ".ssh", "known_hosts")); !os.IsNotExist(err) {
		t.Fatalf("a hostile name reached SSH: %v", err)
	}
}

// pulledCable: h1's link goes down in the middle of a stream. The client
// gets the error, the queen marks h1's workers gone after the heartbeat
// timeout and serves from h2; with the link back, h1's heartbeats resume
// and its workers are used again.
func (e *sshEnv) pulledCable(t *testing.T) {
	h1 := e.lab.Hosts[0]
	for _, h := range e.lab.Hosts {
		e.mustRbee("worker", "spawn", "-m", e.slow, "--hive", h.Name)
	}
	s := e.startRbee("infer", "-m", "slow", "--hive", "h1", "--max-tokens", "3000", "--temperature", "0", "once")
	s.waitFirst(t)
	must(t, h1.SetLink(false))
	relinked := false
	defer func() {
		if !relinked {
			_ = h1.SetLink(true)
		}
	}()
	cut := time.Now()
	r := s.wait(t)
	t.Logf("the stream ended %s after the cut: %s", time.Since(cut).Round(time.Millisecond), r.lastErrLine())
	if r.code != 1 || !strings.Contains(r.lastErrLine(), "went away mid-stream") || r.stdout == "" {
		t.Fatalf("the stream cut off on h1: %s", r)
	}
	e.waitWorkers("h1", "gone", func(w wire.WorkerStatus) bool { return w.State == wire.StateGone })
	r = e.mustRbee("infer", "-m", "slow", "--max-tokens", "4", "once")
	if !strings.Contains(r.stderr, "(hive h2)") {
		t.Fatalf("with h1 cut off, infer did not run on h2: %s", r)
	}

	must(t, h1.SetLink(true))
	relinked = true
	back := time.Now()
	e.waitWorkers("h1", "back", func(w wire.WorkerStatus) bool { return w.State != wire.StateGone })
	t.Logf("h1's workers heartbeat again %s after the link came back", time.Since(back).Round(time.Millisecond))
	r = e.mustRbee("infer", "-m", "slow", "--hive", "h1", "--max-tokens", "4", "once")
	if !strings.Contains(r.stderr, "(hive h1)") {
		t.Fatalf("after the link came back: %s", r)
	}
}

// postJob posts a job with the queen's token and returns the status.
func (e *sshEnv) postJob(body []byte) int {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.queenURL+"/v1/jobs", bytes.NewReader(body))
	must(e.t, err)
	req.Header.Set("Authorization", "Bearer "+e.queenToken())
	resp, err := http.DefaultClient.Do(req)
	must(e.t, err)
	resp.Body.Close()
	return resp.StatusCode
}

func (e *sshEnv) queenToken() string {
	b, err := os.ReadFile(filepath.Join(e.home, "config", "rbee", "config.toml"))
	must(e.t, err)
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "queen_token = "); ok {
			return strings.Trim(v, `"`)
		}
	}
	e.t.Fatal("no queen_token")
	return ""
}

// workerStatusWith asks a worker for an inference with a bearer token and
// returns the status it answers.
func (e *sshEnv) workerStatusWith(url, token string) int {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+"/v1/inference", strings.NewReader(`{"prompt":"abc","max_tokens":1}`))
	must(e.t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	must(e.t, err)
	resp.Body.Close()
	return resp.StatusCode
}
