package testkit

import (
	"errors"
	"net"
	"os"
	"strconv"
	"syscall"
	"testing"
)

// Port is a loopback port held by a socket that is bound but not listening,
// for a program that must be given its port number before it starts (the
// queen the CLI starts on queen_port, the local hive the queen starts on
// its HivePort). While it is held, connections to it are refused and the
// kernel hands it to no other socket that asks for any free port, so
// "find a free port, close it, hand the number on" loses its race. The
// socket has SO_REUSEADDR, as Go's listeners do, so the program it is
// handed to can bind and listen on it; or the test listens on it itself.
type Port struct {
	Port int
	fd   int // -1 once released or listening
}

// ReservePort holds a loopback port until Release (or Listen).
func ReservePort() (*Port, error) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		return nil, err
	}
	syscall.CloseOnExec(fd)
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); err != nil {
		syscall.Close(fd)
		return nil, err
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		syscall.Close(fd)
		return nil, err
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		syscall.Close(fd)
		return nil, err
	}
	return &Port{Port: sa.(*syscall.SockaddrInet4).Port, fd: fd}, nil
}

// ReservePortT is ReservePort for a test, released at its end.
func ReservePortT(t testing.TB) *Port {
	t.Helper()
	p, err := ReservePort()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Release)
	return p
}

// String is the port number.
func (p *Port) String() string { return strconv.Itoa(p.Port) }

// Listen listens on the reserved socket itself, once.
func (p *Port) Listen() (net.Listener, error) {
	if p.fd < 0 {
		return nil, errors.New("the reserved port is released or listening already")
	}
	if err := syscall.Listen(p.fd, syscall.SOMAXCONN); err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(p.fd), "reserved port "+p.String())
	p.fd = -1
	defer f.Close() // FileListener holds its own copy
	return net.FileListener(f)
}

// Release lets the port go; it is safe to call more than once.
func (p *Port) Release() {
	if p.fd >= 0 {
		syscall.Close(p.fd)
		p.fd = -1
	}
}
