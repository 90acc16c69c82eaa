package sshx

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rbee/rbee/internal/sshx/sshtest"
)

// hostile are names and values that would run a command if they reached
// a shell unquoted, or turn into an option.
var hostile = []string{
	`a;touch MARK`, `$(touch MARK)`, "`touch MARK`", `'; touch MARK; '`, `"; touch MARK; "`,
	`\'; touch MARK #`, "a\ntouch MARK", `-oProxyCommand=touch MARK`, `a b`, `a|touch MARK`,
	`a&&touch MARK`, `>MARK`, `it's`, `'`, `''`, `\`, `$HOME`, `*`, ``,
}

// Each value goes through Command and a real sh unchanged, and nothing runs.
func TestCommandQuotesEverything(t *testing.T) {
	dir := t.TempDir()
	for _, v := range hostile {
		cmd := exec.Command("sh", "-c", Command(`printf '%s|%s' "$1" "$2"`, v, "second"))
		cmd.Dir = dir
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%q: %v", v, err)
		}
		if want := v + "|second"; string(out) != want {
			t.Errorf("%q came through as %q", want, out)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("a quoted value ran a command: %v", entries)
	}
}

type fixture struct {
	srv  *sshtest.Server
	home string
	opt  Options
}

func newFixture(t *testing.T) *fixture {
	home := t.TempDir()
	key := sshtest.NewKey(t, filepath.Join(home, ".ssh", "id_ed25519"))
	f := &fixture{srv: sshtest.New(t, key), home: home}
	f.opt = Options{
		KnownHosts:  []string{filepath.Join(home, ".ssh", "known_hosts")},
		DefaultKeys: []string{filepath.Join(home, ".ssh", "id_ed25519")},
		AgentSocket: "-",
	}
	return f
}

func (f *fixture) target() Target {
	return Target{Alias: "testhost", Host: "127.0.0.1", Port: f.srv.Addr.Port, User: "tester"}
}

func (f *fixture) trust(t *testing.T) {
	t.Helper()
	if err := os.WriteFile(f.opt.KnownHosts[0], []byte(f.srv.KnownHostsLine(f.srv.HostKey.PublicKey())), 0o600); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) dial(t *testing.T) *Client {
	t.Helper()
	c, err := Dial(t.Context(), f.target(), f.opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestUnknownHostKeyRefused(t *testing.T) {
	f := newFixture(t)
	_, err := Dial(t.Context(), f.target(), f.opt)
	var hk *HostKeyError
	if !errors.As(err, &hk) || hk.Changed {
		t.Fatalf("want an unknown host key error, got %v", err)
	}
	for _, want := range []string{"not known", "SHA256:", "ssh-keyscan -p ", "--accept-new-host-key", f.opt.KnownHosts[0]} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message lacks %q: %v", want, err)
		}
	}
	if _, err := os.Stat(f.opt.KnownHosts[0]); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("known_hosts was written without --accept-new-host-key: %v", err)
	}
	if cmds := f.srv.Execs(); len(cmds) != 0 {
		t.Errorf("commands ran: %q", cmds)
	}
}

func TestAcceptNewHostKeyRecordsIt(t *testing.T) {
	f := newFixture(t)
	f.opt.AcceptNewHostKey = true
	var said string
	f.opt.OnNewHostKey = func(fp, file string) { said = fp + " " + file }
	f.dial(t).Close()
	if !strings.Contains(said, "SHA256:") {
		t.Errorf("OnNewHostKey got %q", said)
	}
	b, err := os.ReadFile(f.opt.KnownHosts[0])
	if err != nil || !strings.Contains(string(b), "[127.0.0.1]:") {
		t.Fatalf("known_hosts %q %v", b, err)
	}
	// Recorded once: the next login needs no flag.
	f.opt.AcceptNewHostKey = false
	f.dial(t).Close()
}

func TestChangedHostKeyRefusedEvenWithAcceptNew(t *testing.T) {
	f := newFixture(t)
	other := sshtest.NewKey(t, filepath.Join(t.TempDir(), "other"))
	before := f.srv.KnownHostsLine(other)
	if err := os.WriteFile(f.opt.KnownHosts[0], []byte(before), 0o600); err != nil {
		t.Fatal(err)
	}
	f.opt.AcceptNewHostKey = true
	_, err := Dial(t.Context(), f.target(), f.opt)
	var hk *HostKeyError
	if !errors.As(err, &hk) || !hk.Changed {
		t.Fatalf("want a changed host key error, got %v", err)
	}
	for _, want := range []string{"not the one recorded", "ssh-keygen -R [127.0.0.1]:", "known_hosts:1"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message lacks %q: %v", want, err)
		}
	}
	if b, _ := os.ReadFile(f.opt.KnownHosts[0]); string(b) != before {
		t.Errorf("known_hosts changed to %q", b)
	}
}

func TestLoginWithWrongKeySaysWhy(t *testing.T) {
	f := newFixture(t)
	f.trust(t)
	tg := f.target()
	tg.IdentityFile = filepath.Join(t.TempDir(), "wrong")
	sshtest.NewKey(t, tg.IdentityFile)
	_, err := Dial(t.Context(), tg, f.opt)
	if err == nil || !strings.Contains(err.Error(), "authorized_keys") {
		t.Fatalf("got %v", err)
	}
	tg.IdentityFile = "relative/key"
	if _, err := Dial(t.Context(), tg, f.opt); err == nil || !strings.Contains(err.Error(), "absolute") {
		t.Fatalf("relative IdentityFile: %v", err)
	}
}

func TestNoKeySaysHowToMakeOne(t *testing.T) {
	f := newFixture(t)
	f.trust(t)
	f.opt.DefaultKeys = []string{filepath.Join(t.TempDir(), "none")}
	_, err := Dial(t.Context(), f.target(), f.opt)
	if err == nil || !strings.Contains(err.Error(), "ssh-keygen") {
		t.Fatalf("got %v", err)
	}
}

func TestDialRefusesHostileTargets(t *testing.T) {
	f := newFixture(t)
	for _, tg := range []Target{
		{Host: "-oProxyCommand=touch MARK"}, {Host: "a;b"}, {Host: "$(id)"},
		{Host: "127.0.0.1", User: "-l"}, {Host: "127.0.0.1", User: "a b"}, {Host: "127.0.0.1", User: "`id`"},
	} {
		if _, err := Dial(t.Context(), tg, f.opt); err == nil || strings.Contains(err.Error(), "connect") {
			t.Errorf("%+v: %v", tg, err)
		}
	}
}

func TestRun(t *testing.T) {
	f := newFixture(t)
	f.trust(t)
	c := f.dial(t)
	dir := t.TempDir()
	for _, v := range hostile {
		out, err := c.Run(t.Context(), nil, `cd "$1" && printf '%s' "$2"`, dir, v)
		if err != nil || string(out) != v {
			t.Errorf("%q came back as %q, %v", v, out, err)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("a value ran a command: %v", entries)
	}
	out, err := c.Run(t.Context(), strings.NewReader("from stdin"), `cat`)
	if err != nil || string(out) != "from stdin" {
		t.Errorf("stdin: %q %v", out, err)
	}
	_, err = c.Run(t.Context(), nil, `echo "it broke" >&2; exit 3`)
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Status != 3 || ee.Stderr != "it broke" {
		t.Errorf("exit: %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := c.Run(ctx, nil, `sleep 30`); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled run: %v", err)
	}
}

func TestUploadAndSecret(t *testing.T) {
	f := newFixture(t)
	f.trust(t)
	c := f.dial(t)
	local := filepath.Join(t.TempDir(), "prog")
	data := make([]byte, 300<<10)
	for i := range data {
		data[i] = byte(i * 7)
	}
	if err := os.WriteFile(local, data, 0o600); err != nil {
		t.Fatal(err)
	}
	dest := t.TempDir()
	remote, err := c.ExpandPath(dest + "/bin/prog")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.MkdirAll(dest + "/bin"); err != nil {
		t.Fatal(err)
	}
	sum, err := c.Upload(t.Context(), local, remote, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(remote)
	if err != nil || string(got) != string(data) || len(sum) != 64 {
		t.Fatalf("copy differs (%d bytes, %v), sum %q", len(got), err, sum)
	}
	if st, _ := os.Stat(remote); st.Mode().Perm() != 0o755 {
		t.Errorf("mode %v", st.Mode())
	}
	if err := c.WriteSecret(t.Context(), dest+"/bin/token", []byte("s3cret"), 0o600); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(dest + "/bin/token"); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("secret: %v %v", st, err)
	}
	for _, cmd := range f.srv.Execs() {
		if strings.Contains(cmd, "s3cret") {
			t.Errorf("the secret was on a command line: %q", cmd)
		}
	}
	if removed, err := c.Remove(dest + "/bin/token"); !removed || err != nil {
		t.Errorf("remove: %v %v", removed, err)
	}
	if removed, err := c.Remove(dest + "/bin/token"); removed || err != nil {
		t.Errorf("remove again: %v %v", removed, err)
	}
	entries, _ := os.ReadDir(dest + "/bin")
	if len(entries) != 1 {
		t.Errorf("left in the directory: %v", entries)
	}
}

// A copy whose checksum does not match on the host is removed, and the old
// file stays as it was.
func TestUploadChecksumMismatch(t *testing.T) {
	f := newFixture(t)
	f.trust(t)
	fake := t.TempDir()
	script := "#!/bin/sh\necho 0000000000000000000000000000000000000000000000000000000000000000 \"$2\"\n"
	if err := os.WriteFile(filepath.Join(fake, "sha256sum"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	f.srv.Env = []string{"PATH=" + fake + ":" + os.Getenv("PATH")}
	c := f.dial(t)
	local := filepath.Join(t.TempDir(), "prog")
	if err := os.WriteFile(local, []byte("new"), 0o600); err != nil {
		t.Fatal(err)
	}
	dest := t.TempDir()
	if err := os.WriteFile(dest+"/prog", []byte("old"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := c.Upload(t.Context(), local, dest+"/prog", 0o755)
	if err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("got %v", err)
	}
	entries, _ := os.ReadDir(dest)
	if b, _ := os.ReadFile(dest + "/prog"); string(b) != "old" || len(entries) != 1 {
		t.Errorf("after a bad copy: %q, %v", b, entries)
	}
}

func TestExpandPath(t *testing.T) {
	f := newFixture(t)
	f.trust(t)
	c := f.dial(t)
	wd, _ := os.Getwd()
	if p, err := c.ExpandPath("~/.local/bin"); err != nil || p != filepath.Join(wd, ".local/bin") {
		t.Errorf("~/.local/bin: %q %v", p, err)
	}
	if _, err := c.ExpandPath("relative"); err == nil {
		t.Error("relative path accepted")
	}
}
