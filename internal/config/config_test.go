package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseHives(t *testing.T) {
	in := `# pool
Host gpu-box
  HostName 10.0.0.5
  User alice
  Port 2222
  HivePort 9000
  BinaryPath ~/.local/bin

host laptop
hostname=laptop.lan
`
	hives, err := ParseHives(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []Hive{
		{Alias: "gpu-box", HostName: "10.0.0.5", User: "alice", Port: 2222, HivePort: 9000, BinaryPath: "~/.local/bin"},
		{Alias: "laptop", HostName: "laptop.lan", Port: 22, HivePort: DefaultHivePort},
	}
	if len(hives) != len(want) {
		t.Fatalf("got %+v", hives)
	}
	for i := range want {
		if hives[i] != want[i] {
			t.Errorf("hive %d: got %+v, want %+v", i, hives[i], want[i])
		}
	}
}

func TestParseHivesRejectsHostileNames(t *testing.T) {
	for _, in := range []string{
		"Host -oProxyCommand=touch /tmp/pwn",
		"Host a;id",
		"Host $(id)",
		"Host `id`",
		"Host a b",
		"Host " + strings.Repeat("a", 300),
		"Host ok\nHostName -oProxyCommand=x",
		"Host ok\nHostName a;b",
		"Host ok\nUser root;id",
		"Host ok\nUser -l",
		"Host ok\nPort 0",
		"Host ok\nPort 99999",
		"Host ok\nBinaryPath relative/path",
		"Host ok\nProxyCommand nc %h %p",
		"HostName before-host",
		"Host twice\nHost twice",
	} {
		if _, err := ParseHives(strings.NewReader(in)); err == nil {
			t.Errorf("accepted %q", in)
		}
	}
}

func FuzzParseHives(f *testing.F) {
	f.Add("Host a\n HostName b\n Port 22\n")
	f.Add("Host=x\nUser=\"y\"\n")
	f.Fuzz(func(t *testing.T, in string) {
		hives, err := ParseHives(strings.NewReader(in))
		if err != nil {
			return
		}
		for _, h := range hives {
			for _, s := range []string{h.Alias, h.HostName, h.User} {
				if strings.HasPrefix(s, "-") || strings.ContainsAny(s, " ;$`|&\n'\"\\") {
					t.Fatalf("unsafe name %q accepted", s)
				}
			}
		}
	})
}

func TestLoadAndPaths(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", "")
	t.Setenv("XDG_DATA_HOME", "")
	t.Setenv("RBEE_QUEEN_URL", "")
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if got := c.QueenURL(""); got != "http://127.0.0.1:7833" {
		t.Fatalf("default queen URL %s", got)
	}
	dir, _ := ConfigDir()
	if dir != filepath.Join(home, ".config", "rbee") {
		t.Fatalf("config dir %s", dir)
	}
	os.MkdirAll(dir, 0o700)
	os.WriteFile(filepath.Join(dir, "config.toml"), []byte("queen_port = 9999\n"), 0o600)
	c, err = Load()
	if err != nil || c.QueenURL("") != "http://127.0.0.1:9999" {
		t.Fatalf("config %+v %v", c, err)
	}
	t.Setenv("RBEE_QUEEN_URL", "http://127.0.0.1:1234")
	if got := c.QueenURL(""); got != "http://127.0.0.1:1234" {
		t.Fatalf("env queen URL %s", got)
	}
	if got := c.QueenURL("http://x:1"); got != "http://x:1" {
		t.Fatalf("flag queen URL %s", got)
	}
	os.WriteFile(filepath.Join(dir, "config.toml"), []byte("queen_prot = 1\n"), 0o600)
	if _, err := Load(); err == nil {
		t.Fatal("misspelt key accepted")
	}
	hives, err := LoadHives()
	if err != nil || len(hives) != 1 || !hives[0].IsLocal() {
		t.Fatalf("hives %+v %v", hives, err)
	}
	data, _ := DataDir()
	if data != filepath.Join(home, ".local", "share", "rbee") {
		t.Fatalf("data dir %s", data)
	}
}
