package testhosts

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rbee/rbee/internal/sshx"
)

// Two hosts: each is its own user with its own home behind its own
// address, reached over real sshd; a pulled link cuts the host off and a
// plugged one brings it back.
func TestHosts(t *testing.T) {
	if err := Available(); err != nil {
		t.Skip("no test hosts here: ", err)
	}
	lab, err := Start(t.Context(), 2)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := lab.Close(); err != nil {
			t.Error(err)
		}
		for _, h := range lab.Hosts {
			if _, err := os.Stat("/var/run/netns/" + h.NetNS); !os.IsNotExist(err) {
				t.Errorf("namespace %s is still there", h.NetNS)
			}
		}
	}()
	known := filepath.Join(t.TempDir(), "known_hosts")
	var lines string
	for _, h := range lab.Hosts {
		lines += h.KnownHostsLine()
	}
	if err := os.WriteFile(known, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	opt := sshx.Options{KnownHosts: []string{known}, AgentSocket: "-", DefaultKeys: []string{}}
	for _, h := range lab.Hosts {
		c, err := sshx.Dial(t.Context(), sshx.Target{Alias: h.Name, Host: h.Addr, User: h.User, IdentityFile: lab.ClientKey}, opt)
		if err != nil {
			t.Fatalf("%s: %v\n%s", h.Name, err, h.SSHLog())
		}
		out, err := c.Run(t.Context(), nil, `id -un; echo "$HOME"; touch "$HOME/mine"`)
		c.Close()
		if err != nil || strings.TrimSpace(string(out)) != h.User+"\n"+h.Home {
			t.Fatalf("%s: %q %v", h.Name, out, err)
		}
	}
	if _, err := os.Stat(filepath.Join(lab.Hosts[1].Home, "mine")); err != nil {
		t.Fatal(err)
	}

	h := lab.Hosts[0]
	if err := h.SetLink(false); err != nil {
		t.Fatal(err)
	}
	if c, err := net.DialTimeout("tcp", h.Addr+":22", 300*time.Millisecond); err == nil {
		c.Close()
		t.Fatal("the host answers with its link down")
	}
	if err := h.SetLink(true); err != nil {
		t.Fatal(err)
	}
	if err := h.awaitSSH(t.Context()); err != nil {
		t.Fatalf("after the link came back: %v", err)
	}
}
