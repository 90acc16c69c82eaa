package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/rbee/rbee/internal/wire"
)

// IsLoopback reports whether host (an address without port, or a name)
// is a loopback address or "localhost".
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// CheckBind refuses a non-loopback listen address unless a token is set.
func CheckBind(host string, haveToken bool) error {
	if IsLoopback(host) || haveToken {
		return nil
	}
	return fmt.Errorf("refusing to listen on %s without a token: bind 127.0.0.1, or configure a token", host)
}

// LoopbackHostOnly answers 403 to requests whose Host header names anything
// but a loopback address. A daemon bound to loopback uses it so that a web
// page cannot reach it through DNS rebinding.
func LoopbackHostOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		if host != "" && !IsLoopback(host) {
			WriteError(w, r, wire.Errorf(wire.CodeForbiddenHost, "host %q is not allowed", r.Host))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// SendBuffer is the kernel send buffer of every connection a daemon
// accepts (Linux doubles it for its bookkeeping). Kernel buffers hide a
// client that stopped reading: writes succeed until its receive window
// and our send buffer are full, and only then can a stream's write
// deadline notice. Keeping ours small bounds what a non-reader absorbs to
// this plus its own receive buffer, so its stream (and generation) is cut
// soon after it stops reading. Event streams are a few bytes per token,
// and a small buffer costs a LAN nothing.
const SendBuffer = 16 << 10

// NewServer returns an http.Server with the timeouts every daemon wants:
// slow headers are cut off, and idle keep-alive connections are closed.
// There is no server-wide write timeout because event streams are
// long-lived: each stream bounds its own writes, on connections with a
// SendBuffer.
func NewServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetWriteBuffer(SendBuffer)
			}
			return ctx
		},
	}
}

// Daemon is the one shape in which every rbee daemon (queen, hive, worker)
// serves and stops. Every request passes BoundBodies and SameOrigin
// first. Serve runs until its context ends, then shuts down in
// one order:
//
//  1. EndStreams: every open stream gets its terminal event and [DONE]
//     (jobs are cancelled), so clients learn why their stream ends and the
//     graceful shutdown need not wait out its grace;
//  2. the listener closes; requests still open get Grace to finish, then
//     their connections are closed;
//  3. StopChildren: the processes the daemon started (a hive, workers) are
//     stopped, once nothing can ask for new ones.
type Daemon struct {
	Handler      http.Handler
	EndStreams   func()        // nil: nothing to end
	StopChildren func() error  // nil: no children
	Grace        time.Duration // for open requests once the listener closed; 5 s
	BodyTimeout  time.Duration // BodyTimeout when zero
}

// Serve serves d on ln until ctx ends or serving fails, then shuts down in
// the documented order.
func (d Daemon) Serve(ctx context.Context, ln net.Listener) error {
	if d.Grace <= 0 {
		d.Grace = 5 * time.Second
	}
	if d.BodyTimeout <= 0 {
		d.BodyTimeout = BodyTimeout
	}
	srv := NewServer(BoundBodies(d.BodyTimeout, SameOrigin(d.Handler)))
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	var serveErr error
	select {
	case serveErr = <-errc:
		errc = nil
	case <-ctx.Done():
	}
	if d.EndStreams != nil {
		d.EndStreams()
	}
	sctx, cancel := context.WithTimeout(context.Background(), d.Grace)
	defer cancel()
	err := srv.Shutdown(sctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = srv.Close()
	}
	if errc != nil {
		serveErr = <-errc
	}
	if errors.Is(serveErr, http.ErrServerClosed) {
		serveErr = nil
	}
	var cerr error
	if d.StopChildren != nil {
		cerr = d.StopChildren()
	}
	return errors.Join(serveErr, err, cerr)
}

// FromThisMachine reports whether the request comes from this machine: from
// a loopback address, or from the very address it was sent to (a client on
// this machine reaching a daemon bound to one of its LAN addresses). A
// remote peer cannot present the daemon's own address as its source: the
// TCP handshake would not complete.
func FromThisMachine(r *http.Request) bool {
	peer, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(peer)
	if ip == nil {
		return false
	}
	if ip.IsLoopback() {
		return true
	}
	local, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok {
		return false
	}
	lip, _, err := net.SplitHostPort(local.String())
	return err == nil && ip.Equal(net.ParseIP(lip))
}
