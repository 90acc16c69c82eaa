// Package sshtest is an SSH server for tests: public-key logins, exec
// requests run by the local sh (as a real sshd runs the login shell), and
// the sftp subsystem, all in the test process on 127.0.0.1. It needs no
// root and no sshd, so code that works over SSH is tested everywhere.
package sshtest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// Server is a running test server.
type Server struct {
	Addr    *net.TCPAddr
	HostKey ssh.Signer
	// Env is added to the environment of the commands it runs; set it
	// before the commands run.
	Env   []string
	execs chan string
}

// New starts a server that lets in the holder of clientKey. It stops when
// the test ends.
func New(t testing.TB, clientKey ssh.PublicKey) *Server {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	hostKey, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(c ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
			if bytes.Equal(k.Marshal(), clientKey.Marshal()) {
				return nil, nil
			}
			return nil, errors.New("unknown key")
		},
	}
	cfg.AddHostKey(hostKey)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Addr: ln.Addr().(*net.TCPAddr), HostKey: hostKey, execs: make(chan string, 1000)}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { s.serveConn(nc, cfg) })
		}
	})
	return s
}

func (s *Server) serveConn(nc net.Conn, cfg *ssh.ServerConfig) {
	defer nc.Close()
	_, chans, reqs, err := ssh.NewServerConn(nc, cfg)
	if err != nil {
		return
	}
	go ssh.DiscardRequests(reqs)
	var wg sync.WaitGroup
	defer wg.Wait()
	for nch := range chans {
		if nch.ChannelType() != "session" {
			_ = nch.Reject(ssh.UnknownChannelType, "only sessions")
			continue
		}
		ch, reqs, err := nch.Accept()
		if err != nil {
			return
		}
		wg.Go(func() { s.serveSession(ch, reqs) })
	}
}

func (s *Server) serveSession(ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer ch.Close()
	for req := range reqs {
		switch req.Type {
		case "exec":
			if len(req.Payload) < 4 {
				_ = req.Reply(false, nil)
				return
			}
			cmdline := string(req.Payload[4:])
			_ = req.Reply(true, nil)
			select {
			case s.execs <- cmdline:
			default:
			}
			cmd := exec.Command("sh", "-c", cmdline)
			cmd.Env = append(os.Environ(), s.Env...)
			cmd.Stdin, cmd.Stdout, cmd.Stderr = ch, ch, ch.Stderr()
			status := 0
			if err := cmd.Run(); err != nil {
				var ee *exec.ExitError
				status = 255
				if errors.As(err, &ee) {
					status = ee.ExitCode()
				}
			}
			var b [4]byte
			binary.BigEndian.PutUint32(b[:], uint32(status))
			_, _ = ch.SendRequest("exit-status", false, b[:])
			return
		case "subsystem":
			if len(req.Payload) < 4 || string(req.Payload[4:]) != "sftp" {
				_ = req.Reply(false, nil)
				return
			}
			_ = req.Reply(true, nil)
			srv, err := sftp.NewServer(ch)
			if err != nil {
				return
			}
			_ = srv.Serve()
			return
		default:
			_ = req.Reply(false, nil)
		}
	}
}

// NewKey writes a fresh ed25519 private key in OpenSSH format to path and
// returns its public half.
func NewKey(t testing.TB, path string) ssh.PublicKey {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

// KnownHostsLine is the line ssh-keyscan would print for a server at Addr
// with the given key (HostKey.PublicKey() for its own).
func (s *Server) KnownHostsLine(key ssh.PublicKey) string {
	return "[127.0.0.1]:" + strconv.Itoa(s.Addr.Port) + " " + string(bytes.TrimSpace(ssh.MarshalAuthorizedKey(key))) + "\n"
}

// Execs returns the command lines run since the last call.
func (s *Server) Execs() []string {
	var out []string
	for {
		select {
		case c := <-s.execs:
			out = append(out, c)
		default:
			return out
		}
	}
}
