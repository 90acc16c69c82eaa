package testkit

import (
	"errors"
	"fmt"
	"net"
	"syscall"
	"testing"
)

// DialNonReader connects to addr as a client that will never read: with a
// receive buffer of 4 KiB, so that what the kernel absorbs for it is small
// and known. It writes request (a whole HTTP request, e.g. "GET /x
// HTTP/1.1\r\nHost: h\r\n\r\n") and returns the connection, closed at the
// test's end.
func DialNonReader(t testing.TB, addr, request string) net.Conn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		return errors.Join(err, serr)
	}}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := fmt.Fprint(conn, request); err != nil {
		t.Fatal(err)
	}
	return conn
}

// GetRequest is the text of a GET of path on host, for DialNonReader.
func GetRequest(host, path string) string {
	return fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, host)
}
