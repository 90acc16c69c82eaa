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

// NewServer returns an http.Server with the timeouts every daemon wants:
// slow headers are cut off, and idle keep-alive connections are closed.
// There is no write timeout because event streams are long-lived.
func NewServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
}

// Serve runs srv on ln until ctx is done, then shuts it down gracefully,
// giving open requests grace to finish.
func Serve(ctx context.Context, srv *http.Server, ln net.Listener, grace time.Duration) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	err := srv.Shutdown(sctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = srv.Close()
	}
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) {
		return serr
	}
	return err
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
