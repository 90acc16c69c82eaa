package sshx

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// HostKeyError is a host key that was refused: unknown (not in
// known_hosts) or changed (known_hosts has other keys for the host). Its
// message says how to trust the key.
type HostKeyError struct {
	Alias       string
	Addr        string // host:port
	KeyType     string // e.g. ssh-ed25519
	Fingerprint string // SHA256:...
	Changed     bool
	Revoked     bool
	// Known is where the recorded keys are, "file:line", when Changed.
	Known []string
	// KnownHosts is the file a new key would be recorded in.
	KnownHosts string
}

func (e *HostKeyError) Error() string {
	host, port, _ := net.SplitHostPort(e.Addr)
	switch {
	case e.Revoked:
		return fmt.Sprintf("the host key of %s (%s, %s %s) is marked revoked in known_hosts; refusing to connect", e.Alias, e.Addr, e.KeyType, e.Fingerprint)
	case e.Changed:
		return fmt.Sprintf("the host key of %s (%s) is not the one recorded in %s: it offered %s %s. "+
			"Someone may be intercepting the connection, or the host was reinstalled; refusing to connect. "+
			"If the change is expected, remove the old key with: ssh-keygen -R %s, then trust the new one",
			e.Alias, e.Addr, strings.Join(e.Known, ", "), e.KeyType, e.Fingerprint, knownhosts.Normalize(e.Addr))
	}
	short := strings.TrimPrefix(strings.TrimPrefix(e.KeyType, "ssh-"), "ecdsa-sha2-")
	return fmt.Sprintf("the host key of %s (%s) is not known: %s %s. "+
		"Check that fingerprint on the host (ssh-keygen -lf /etc/ssh/ssh_host_%s_key.pub), then trust it with: "+
		"ssh-keyscan -p %s -t %s %s >> %s, or run this command again with --accept-new-host-key",
		e.Alias, e.Addr, e.KeyType, e.Fingerprint, short, port, e.KeyType, host, e.KnownHosts)
}

// hostKeys checks host keys against known_hosts and records the one
// failure it saw, since the ssh handshake wraps it away.
type hostKeys struct {
	t     Target
	opt   Options
	files []string // the known_hosts files that exist
	cb    ssh.HostKeyCallback

	mu      sync.Mutex
	failure *HostKeyError
	ok      bool
}

func newHostKeys(t Target, opt Options) (*hostKeys, error) {
	hk := &hostKeys{t: t, opt: opt}
	for _, f := range opt.KnownHosts {
		if _, err := os.Stat(f); err == nil {
			hk.files = append(hk.files, f)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("known_hosts: %w", err)
		}
	}
	if len(hk.files) > 0 {
		cb, err := knownhosts.New(hk.files...)
		if err != nil {
			return nil, fmt.Errorf("reading known_hosts: %w", err)
		}
		hk.cb = cb
	}
	return hk, nil
}

// known returns the recorded keys of the target: the Want of the error a
// key that matches nothing gets.
func (hk *hostKeys) known() []knownhosts.KnownKey {
	if hk.cb == nil {
		return nil
	}
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil
	}
	probe, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil
	}
	var ke *knownhosts.KeyError
	if err := hk.cb(hk.t.Addr(), &net.TCPAddr{IP: net.IPv4zero, Port: hk.t.port()}, probe); errors.As(err, &ke) {
		return ke.Want
	}
	return nil
}

// algorithms asks the host for a key of a type known_hosts has for it:
// otherwise a host with several keys may show one of another type, which
// would read as a changed key.
func (hk *hostKeys) algorithms() []string {
	var algos []string
	for _, k := range hk.known() {
		switch typ := k.Key.Type(); typ {
		case ssh.KeyAlgoRSA:
			algos = append(algos, ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA)
		default:
			algos = append(algos, typ)
		}
	}
	return algos
}

func (hk *hostKeys) check(hostname string, remote net.Addr, key ssh.PublicKey) error {
	var err error
	if hk.cb != nil {
		err = hk.cb(hostname, remote, key)
	} else {
		err = &knownhosts.KeyError{}
	}
	if err == nil {
		hk.pass()
		return nil
	}
	e := &HostKeyError{
		Alias: hk.t.Alias, Addr: hk.t.Addr(), KeyType: key.Type(),
		Fingerprint: ssh.FingerprintSHA256(key), KnownHosts: hk.opt.KnownHosts[0],
	}
	var ke *knownhosts.KeyError
	var re *knownhosts.RevokedError
	switch {
	case errors.As(err, &re):
		e.Revoked = true
	case errors.As(err, &ke) && len(ke.Want) > 0:
		e.Changed = true
		for _, w := range ke.Want {
			e.Known = append(e.Known, w.Filename+":"+strconv.Itoa(w.Line))
		}
	case errors.As(err, &ke) && hk.opt.AcceptNewHostKey:
		if err := hk.record(key); err != nil {
			return err
		}
		hk.pass()
		return nil
	case errors.As(err, &ke):
	default:
		return err
	}
	hk.mu.Lock()
	hk.failure = e
	hk.mu.Unlock()
	return e
}

// record appends the key to the first known_hosts file, as ssh does for
// StrictHostKeyChecking=accept-new.
func (hk *hostKeys) record(key ssh.PublicKey) error {
	file := hk.opt.KnownHosts[0]
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return fmt.Errorf("recording the host key: %w", err)
	}
	f, err := os.OpenFile(file, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("recording the host key: %w", err)
	}
	line := knownhosts.Line([]string{knownhosts.Normalize(hk.t.Addr())}, key) + "\n"
	if _, err := f.WriteString(line); err != nil {
		f.Close()
		return fmt.Errorf("recording the host key in %s: %w", file, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("recording the host key in %s: %w", file, err)
	}
	if hk.opt.OnNewHostKey != nil {
		hk.opt.OnNewHostKey(key.Type()+" "+ssh.FingerprintSHA256(key), file)
	}
	return nil
}

func (hk *hostKeys) pass() {
	hk.mu.Lock()
	hk.ok = true
	hk.mu.Unlock()
}

// passed reports whether the host's key was accepted.
func (hk *hostKeys) passed() bool {
	hk.mu.Lock()
	defer hk.mu.Unlock()
	return hk.ok
}

// err is the host key refusal of the handshake, if that is why it failed.
func (hk *hostKeys) err() error {
	hk.mu.Lock()
	defer hk.mu.Unlock()
	if hk.failure == nil {
		return nil
	}
	return hk.failure
}
