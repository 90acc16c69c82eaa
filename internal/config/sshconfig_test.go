package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const sshConfig = `# as ssh reads it: first value wins
User everyone-default

Host gpu-box
  HostName 10.0.0.5
  Port 2222
  IdentityFile ~/.ssh/gpu_key
  ProxyJump bastion

Host *.lan !evil.lan
  HostName %h
  User lanuser

Match host nothing
  User matched

Host *
  User fallback
  Port 2200
`

func TestParseSSHConfig(t *testing.T) {
	for _, tc := range []struct {
		alias string
		found bool
		want  Hive
	}{
		{"gpu-box", true, Hive{Alias: "gpu-box", HostName: "10.0.0.5", User: "everyone-default", Port: 2222, IdentityFile: "~/.ssh/gpu_key", HivePort: DefaultHivePort}},
		{"laptop.lan", true, Hive{Alias: "laptop.lan", HostName: "laptop.lan", User: "everyone-default", Port: 2200, HivePort: DefaultHivePort}},
		{"GPU-BOX", true, Hive{Alias: "GPU-BOX", HostName: "10.0.0.5", User: "everyone-default", Port: 2222, IdentityFile: "~/.ssh/gpu_key", HivePort: DefaultHivePort}},
		{"evil.lan", false, Hive{}},
		{"unknown", false, Hive{}}, // only "Host *" matches
	} {
		h, found, err := ParseSSHConfig(strings.NewReader(sshConfig), tc.alias)
		if err != nil || found != tc.found || h != tc.want {
			t.Errorf("%s: got %+v %v %v, want %+v", tc.alias, h, found, err, tc.want)
		}
	}
}

// Names from ~/.ssh/config get the checks of hives.conf: a hostile value
// is an error, not a connection.
func TestParseSSHConfigRejectsHostileValues(t *testing.T) {
	for _, body := range []string{
		"HostName -oProxyCommand=touch /tmp/pwn",
		"HostName a;touch x",
		"HostName $(touch x)",
		"HostName `touch x`",
		"HostName %d",
		"User -l",
		"User root;id",
		"User a b",
		"Port 0",
		"Port 22;id",
		"IdentityFile relative/key",
		"IdentityFile ~/%u",
	} {
		in := "Host target\n  " + body + "\n"
		if h, found, err := ParseSSHConfig(strings.NewReader(in), "target"); err == nil {
			t.Errorf("%q accepted: %+v %v", body, h, found)
		}
	}
	for _, alias := range []string{"-oProxyCommand=x", "a;b", "$(id)", "a b", ""} {
		if _, _, err := ParseSSHConfig(strings.NewReader("Host *\n"), alias); err == nil {
			t.Errorf("alias %q accepted", alias)
		}
	}
}

func TestSSHConfigHiveReadsHome(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	if _, found, err := SSHConfigHive("box"); found || err != nil {
		t.Fatalf("no file: %v %v", found, err)
	}
	if err := os.MkdirAll(filepath.Join(home, ".ssh"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, ".ssh", "config"), []byte("Host box\n HostName 10.1.2.3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h, found, err := SSHConfigHive("box")
	if !found || err != nil || h.HostName != "10.1.2.3" || h.Port != 22 {
		t.Fatalf("got %+v %v %v", h, found, err)
	}
}

func FuzzParseSSHConfig(f *testing.F) {
	f.Add(sshConfig, "gpu-box")
	f.Add("Host a\nHostName %h\n", "a")
	f.Fuzz(func(t *testing.T, in, alias string) {
		h, found, err := ParseSSHConfig(strings.NewReader(in), alias)
		if err != nil || !found {
			return
		}
		for _, s := range []string{h.Alias, h.HostName, h.User} {
			if strings.HasPrefix(s, "-") || strings.ContainsAny(s, " ;$`|&\n'\"\\%") {
				t.Fatalf("unsafe name %q accepted", s)
			}
		}
	})
}
