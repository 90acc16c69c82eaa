// Package sshx is rbee's SSH client: it logs in to a hive's host with the
// keys ssh would use, checks the host key against known_hosts, runs
// commands whose arguments are quoted for the remote shell, and copies files
// over SFTP with a checksum check. It never starts a local ssh or shell, so
// no name from a config file can become a local command or an ssh option.
package sshx

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/rbee/rbee/internal/config"
)

// Target is the host to log in to.
type Target struct {
	Alias        string // for messages
	Host         string // name or address
	Port         int    // 0: 22
	User         string // empty: this process's user
	IdentityFile string // absolute or ~/; empty: the default keys
}

// TargetOf is the SSH side of a hive.
func TargetOf(h config.Hive) Target {
	return Target{Alias: h.Alias, Host: h.HostName, Port: h.Port, User: h.User, IdentityFile: h.IdentityFile}
}

// Addr is host:port.
func (t Target) Addr() string { return net.JoinHostPort(t.Host, strconv.Itoa(t.port())) }

func (t Target) port() int {
	if t.Port == 0 {
		return 22
	}
	return t.Port
}

// String is user@host:port, for messages.
func (t Target) String() string { return t.User + "@" + t.Addr() }

// check refuses names that could be read as options or shell words. The
// config package refuses them when it reads hives.conf; this is the same
// check for targets that come from elsewhere.
func (t Target) check() error {
	switch {
	case !config.ValidHostName(t.Host):
		return fmt.Errorf("host %q is not a host name or address", t.Host)
	case t.User != "" && !config.ValidUser(t.User):
		return fmt.Errorf("user %q is not a user name", t.User)
	case t.Port < 0 || t.Port > 65535:
		return fmt.Errorf("port %d is not a port", t.Port)
	}
	return nil
}

// Options configures Dial. Zero fields take the documented defaults.
type Options struct {
	// KnownHosts are the known_hosts files to check host keys against; the
	// first is where an accepted new key is written. Default:
	// ~/.ssh/known_hosts, /etc/ssh/ssh_known_hosts.
	KnownHosts []string
	// AcceptNewHostKey records the key of a host that has none in
	// KnownHosts yet (ssh's StrictHostKeyChecking=accept-new). A key that
	// differs from a recorded one is refused regardless.
	AcceptNewHostKey bool
	// DefaultKeys are tried when the target has no IdentityFile. Default:
	// ~/.ssh/id_ed25519, id_ecdsa, id_rsa.
	DefaultKeys []string
	// AgentSocket is the ssh-agent to ask for keys too; default
	// $SSH_AUTH_SOCK. "-" asks no agent.
	AgentSocket string
	// Timeout bounds connecting and logging in; 15 s.
	Timeout time.Duration
	// OnNewHostKey is called after a new host key was recorded.
	OnNewHostKey func(fingerprint, file string)
}

func (o *Options) setDefaults() error {
	if o.Timeout <= 0 {
		o.Timeout = 15 * time.Second
	}
	if o.AgentSocket == "" {
		o.AgentSocket = os.Getenv("SSH_AUTH_SOCK")
	}
	if o.KnownHosts != nil && o.DefaultKeys != nil {
		return nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return err
	}
	if o.KnownHosts == nil {
		o.KnownHosts = []string{filepath.Join(home, ".ssh", "known_hosts"), "/etc/ssh/ssh_known_hosts"}
	}
	if o.DefaultKeys == nil {
		for _, k := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
			o.DefaultKeys = append(o.DefaultKeys, filepath.Join(home, ".ssh", k))
		}
	}
	return nil
}

// Client is a logged-in SSH connection.
type Client struct {
	target Target
	conn   *ssh.Client
	stop   func() bool // unhooks the close on ctx's end

	mu   sync.Mutex
	sftp *sftp.Client
}

// Dial connects to t and logs in. The connection is closed when ctx ends,
// which is how a cancelled job aborts a long copy; Close releases it
// earlier.
func Dial(ctx context.Context, t Target, opt Options) (*Client, error) {
	if err := opt.setDefaults(); err != nil {
		return nil, err
	}
	if t.User == "" {
		t.User = currentUser()
	}
	if err := t.check(); err != nil {
		return nil, err
	}
	auth, closeAgent, err := authMethods(t, opt)
	if err != nil {
		return nil, err
	}
	defer closeAgent()
	hk, err := newHostKeys(t, opt)
	if err != nil {
		return nil, err
	}
	cfg := &ssh.ClientConfig{
		User:              t.User,
		Auth:              auth,
		HostKeyCallback:   hk.check,
		HostKeyAlgorithms: hk.algorithms(),
		Timeout:           opt.Timeout,
	}

	dctx, cancel := context.WithTimeout(ctx, opt.Timeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(dctx, "tcp", t.Addr())
	if err != nil {
		return nil, fmt.Errorf("connecting to %s (%s): %w", t.Alias, t.Addr(), err)
	}
	// The handshake has no context of its own: a deadline bounds it, and
	// closing the connection aborts it when ctx ends first.
	_ = nc.SetDeadline(time.Now().Add(opt.Timeout))
	unhook := context.AfterFunc(dctx, func() { nc.Close() })
	sc, chans, reqs, err := ssh.NewClientConn(nc, t.Addr(), cfg)
	unhooked := unhook()
	if err != nil {
		nc.Close()
		if hkErr := hk.err(); hkErr != nil {
			return nil, hkErr
		}
		if !unhooked && ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		if !unhooked {
			return nil, fmt.Errorf("SSH to %s (%s): no login within %s", t.Alias, t.String(), opt.Timeout)
		}
		if hk.passed() {
			// The host proved who it is, so what failed is the login.
			return nil, fmt.Errorf("logging in to %s as %s failed (%v): is the public key in ~%s/.ssh/authorized_keys on the host? (IdentityFile in hives.conf picks the key)", t.Alias, t.String(), err, t.User)
		}
		return nil, fmt.Errorf("SSH to %s (%s): %w", t.Alias, t.String(), err)
	}
	_ = nc.SetDeadline(time.Time{})
	c := &Client{target: t, conn: ssh.NewClient(sc, chans, reqs)}
	c.stop = context.AfterFunc(ctx, func() { c.conn.Close() })
	return c, nil
}

func currentUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return os.Getenv("USER")
}

// Target is who this client is logged in as, and where.
func (c *Client) Target() Target { return c.target }

// LocalAddr is this end of the connection: the address the host sees this
// machine connect from, and so one it can reach this machine at.
func (c *Client) LocalAddr() net.Addr { return c.conn.LocalAddr() }

// RemoteAddr is the host's end: the address this machine reached it at.
func (c *Client) RemoteAddr() net.Addr { return c.conn.RemoteAddr() }

// Close closes the connection.
func (c *Client) Close() error {
	c.stop()
	c.mu.Lock()
	if c.sftp != nil {
		_ = c.sftp.Close()
		c.sftp = nil
	}
	c.mu.Unlock()
	err := c.conn.Close()
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
