// Package testhosts builds test machines for the SSH tests and benchmark:
// each host is a Linux network namespace joined to this one by a veth pair,
// with its own address, a real OpenSSH server (/usr/sbin/sshd with its own
// config and host key) and its own Unix user and home directory, so that
// what is installed on one host is invisible to the others. The queen runs
// here, outside them. Building them needs root; Available says why not.
//
// Host i (from 1) is the namespace rbee-hI at 10.231.I.2/30, reached from
// here through the interface rbee-hI-q at 10.231.I.1, with the user
// rbee-hI. One set of hosts exists at a time: Start holds a lock until
// Close.
package testhosts

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
)

const (
	sshd     = "/usr/sbin/sshd"
	lockPath = "/tmp/rbee-testhosts.lock"
	labNet   = "10.231.0.0/16" // every host's link is a /30 in it
)

// Available reports why test hosts cannot be built here, or nil.
func Available() error {
	if os.Geteuid() != 0 {
		return errors.New("building test hosts needs root (network namespaces, users, sshd)")
	}
	for _, prog := range []string{"ip", "useradd", "userdel"} {
		if _, err := exec.LookPath(prog); err != nil {
			return fmt.Errorf("%s is not installed (apt-get install iproute2 passwd)", prog)
		}
	}
	if _, err := os.Stat(sshd); err != nil {
		return fmt.Errorf("%s is not installed (apt-get install openssh-server)", sshd)
	}
	// Creating a namespace is the real test: containers may forbid it.
	probe := fmt.Sprintf("rbee-probe-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", probe).CombinedOutput(); err != nil {
		return fmt.Errorf("cannot create a network namespace: %v: %s", err, bytes.TrimSpace(out))
	}
	_ = exec.Command("ip", "netns", "del", probe).Run()
	return nil
}

// Lab is a set of test hosts.
type Lab struct {
	Dir        string // world-readable scratch directory, e.g. for models
	ClientKey  string // private key (OpenSSH format) that logs in to every host
	ClientPub  ssh.PublicKey
	Hosts      []*Host
	lock       *os.File
	authorized string
	route      bool // the unreachable route of labNet is ours to remove
}

// Host is one test machine.
type Host struct {
	Name      string // h1, h2, ...
	User      string // rbee-h1
	UID       int
	Home      string // the user's home directory
	Addr      string // its address, 10.231.1.2
	QueenAddr string // this machine's address on its link, 10.231.1.1
	NetNS     string
	Link      string // the interface on this side; down cuts the host off
	HostKey   ssh.PublicKey
	dir       string
	sshd      *exec.Cmd
	sshdDone  chan struct{}
}

// Start builds n hosts. Close takes them down again; on error, whatever was
// built is taken down before Start returns.
func Start(ctx context.Context, n int) (_ *Lab, err error) {
	if n < 1 || n > 9 {
		return nil, fmt.Errorf("testhosts: %d hosts; want 1 to 9", n)
	}
	if err := Available(); err != nil {
		return nil, err
	}
	lab := &Lab{}
	if lab.lock, err = lockHosts(ctx); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			lab.Close()
		}
	}()
	if lab.Dir, err = os.MkdirTemp("", "rbee-testhosts-"); err != nil {
		return nil, err
	}
	if err := os.Chmod(lab.Dir, 0o755); err != nil {
		return nil, err
	}
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil { // sshd's privilege separation directory
		return nil, err
	}
	// With a host's link down, its traffic must go nowhere rather than to
	// the default route (where a sandbox's proxy may answer for anyone).
	if out, err := exec.CommandContext(ctx, "ip", "route", "replace", "unreachable", labNet).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ip route replace unreachable %s: %v: %s", labNet, err, bytes.TrimSpace(out))
	}
	lab.route = true
	lab.ClientKey = filepath.Join(lab.Dir, "client_key")
	if lab.ClientPub, err = writeKey(lab.ClientKey); err != nil {
		return nil, err
	}
	lab.authorized = filepath.Join(lab.Dir, "authorized_keys")
	if err := os.WriteFile(lab.authorized, ssh.MarshalAuthorizedKey(lab.ClientPub), 0o644); err != nil {
		return nil, err
	}
	for i := 1; i <= n; i++ {
		h := &Host{
			Name:      "h" + strconv.Itoa(i),
			User:      "rbee-h" + strconv.Itoa(i),
			Addr:      fmt.Sprintf("10.231.%d.2", i),
			QueenAddr: fmt.Sprintf("10.231.%d.1", i),
			NetNS:     "rbee-h" + strconv.Itoa(i),
			Link:      "rbee-h" + strconv.Itoa(i) + "-q",
			dir:       filepath.Join(lab.Dir, "h"+strconv.Itoa(i)),
		}
		lab.Hosts = append(lab.Hosts, h)
		if err := lab.build(ctx, h); err != nil {
			return nil, fmt.Errorf("test host %s: %w", h.Name, err)
		}
	}
	return lab, nil
}

// lockHosts takes the machine-wide lock of the fixed names and addresses.
func lockHosts(ctx context.Context) (*os.File, error) {
	f, err := os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, err
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("waiting for other test hosts to go away (%s): %w", lockPath, context.Cause(ctx))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (lab *Lab) build(ctx context.Context, h *Host) error {
	if err := os.MkdirAll(h.dir, 0o755); err != nil {
		return err
	}
	// Leftovers of a run that died are removed first: the names are fixed.
	h.teardown()
	h.Home = filepath.Join(lab.Dir, "home-"+h.Name)
	steps := [][]string{
		{"useradd", "--create-home", "--home-dir", h.Home, "--shell", "/bin/sh", "--user-group", "--password", "*", h.User},
		{"ip", "netns", "add", h.NetNS},
		{"ip", "link", "add", h.Link, "type", "veth", "peer", "name", h.NetNS + "-h"},
		{"ip", "link", "set", h.NetNS + "-h", "netns", h.NetNS},
		{"ip", "addr", "add", h.QueenAddr + "/30", "dev", h.Link},
		{"ip", "link", "set", h.Link, "up"},
		{"ip", "-n", h.NetNS, "addr", "add", h.Addr + "/30", "dev", h.NetNS + "-h"},
		{"ip", "-n", h.NetNS, "link", "set", h.NetNS + "-h", "up"},
		{"ip", "-n", h.NetNS, "link", "set", "lo", "up"},
	}
	for _, s := range steps {
		if out, err := exec.CommandContext(ctx, s[0], s[1:]...).CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %v: %s", strings.Join(s, " "), err, bytes.TrimSpace(out))
		}
	}
	u, err := user.Lookup(h.User)
	if err != nil {
		return err
	}
	if h.UID, err = strconv.Atoi(u.Uid); err != nil {
		return err
	}
	keyPath := filepath.Join(h.dir, "ssh_host_ed25519_key")
	if h.HostKey, err = writeKey(keyPath); err != nil {
		return err
	}
	cfg := filepath.Join(h.dir, "sshd_config")
	conf := strings.Join([]string{
		"Port 22",
		"ListenAddress " + h.Addr,
		"HostKey " + keyPath,
		"PidFile " + filepath.Join(h.dir, "sshd.pid"),
		"AuthorizedKeysFile " + lab.authorized,
		"AllowUsers " + h.User,
		"StrictModes no",
		"UsePAM no",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"PermitRootLogin no",
		"Subsystem sftp internal-sftp",
		"PrintMotd no",
		"LogLevel VERBOSE",
	}, "\n") + "\n"
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		return err
	}
	logf, err := os.Create(filepath.Join(h.dir, "sshd.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	h.sshd = exec.Command("ip", "netns", "exec", h.NetNS, sshd, "-D", "-e", "-f", cfg)
	h.sshd.Stdout, h.sshd.Stderr = logf, logf
	if err := h.sshd.Start(); err != nil {
		return err
	}
	h.sshdDone = make(chan struct{})
	go func() {
		_ = h.sshd.Wait()
		close(h.sshdDone)
	}()
	return h.awaitSSH(ctx)
}

// awaitSSH waits until the host's sshd takes connections.
func (h *Host) awaitSSH(ctx context.Context) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(h.Addr, "22"), time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-h.sshdDone:
			log, _ := os.ReadFile(filepath.Join(h.dir, "sshd.log"))
			return fmt.Errorf("sshd exited: %s", bytes.TrimSpace(log))
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("sshd does not answer at %s:22: %v", h.Addr, err)
		}
	}
}

// SSHLog is what the host's sshd logged, for failure messages.
func (h *Host) SSHLog() string {
	b, _ := os.ReadFile(filepath.Join(h.dir, "sshd.log"))
	return string(b)
}

// KnownHostsLine is the host's line for known_hosts, as ssh-keyscan
// prints it.
func (h *Host) KnownHostsLine() string {
	return h.Addr + " " + string(ssh.MarshalAuthorizedKey(h.HostKey))
}

// SetLink plugs the host's cable in or pulls it out: with the link down,
// nothing passes between the host and this machine, and connections hang
// as on a real network.
func (h *Host) SetLink(up bool) error {
	state := "down"
	if up {
		state = "up"
	}
	if out, err := exec.Command("ip", "link", "set", h.Link, state).CombinedOutput(); err != nil {
		return fmt.Errorf("ip link set %s %s: %v: %s", h.Link, state, err, bytes.TrimSpace(out))
	}
	return nil
}

// Processes lists the live processes of the host's user (zombies left out):
// what runs on the host.
func (h *Host) Processes() map[int]string {
	found := map[int]string{}
	if h.UID == 0 {
		return found
	}
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		status, err := os.ReadFile(filepath.Join("/proc", d.Name(), "status"))
		if err != nil {
			continue
		}
		var name, state string
		uid := -1
		for line := range strings.SplitSeq(string(status), "\n") {
			k, v, _ := strings.Cut(line, ":")
			f := strings.Fields(v)
			if len(f) == 0 {
				continue
			}
			switch k {
			case "Name":
				name = f[0]
			case "State":
				state = f[0]
			case "Uid":
				uid, _ = strconv.Atoi(f[0])
			}
		}
		if uid == h.UID && state != "Z" {
			found[pid] = name
		}
	}
	return found
}

// killAll kills every process of the host's user, by pid, until none is
// left (a dying hive may still start a worker).
func (h *Host) killAll() {
	for range 50 {
		procs := h.Processes()
		if len(procs) == 0 {
			return
		}
		for pid := range procs {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// teardown removes the host: its processes, sshd, namespace, link and
// user. Each step tolerates what is already gone.
func (h *Host) teardown() {
	if u, err := user.Lookup(h.User); err == nil {
		h.UID, _ = strconv.Atoi(u.Uid)
	}
	h.killAll()
	if h.sshd != nil && h.sshd.Process != nil {
		_ = h.sshd.Process.Signal(syscall.SIGTERM)
		select {
		case <-h.sshdDone:
		case <-time.After(5 * time.Second):
			_ = h.sshd.Process.Kill()
			<-h.sshdDone
		}
		h.sshd = nil
	}
	_ = exec.Command("ip", "netns", "del", h.NetNS).Run()
	_ = exec.Command("ip", "link", "del", h.Link).Run()
	if h.UID != 0 {
		_ = exec.Command("userdel", "--remove", "--force", h.User).Run()
	}
	h.UID = 0
}

// Close takes every host down and removes the scratch directory.
func (lab *Lab) Close() error {
	for _, h := range lab.Hosts {
		h.teardown()
	}
	if lab.route {
		_ = exec.Command("ip", "route", "del", "unreachable", labNet).Run()
	}
	var err error
	if lab.Dir != "" {
		err = os.RemoveAll(lab.Dir)
	}
	if lab.lock != nil {
		lab.lock.Close() // releases the flock
	}
	return err
}

// writeKey writes a new ed25519 private key in OpenSSH format (0600) and
// returns its public half.
func writeKey(path string) (ssh.PublicKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, err
	}
	return ssh.NewPublicKey(pub)
}
