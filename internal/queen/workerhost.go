package queen

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/rbee/rbee/internal/httpapi"
	"github.com/rbee/rbee/internal/wire"
)

// checkWorkerHost pins a worker to the machine its heartbeats come from:
// a heartbeat from another machine may only advertise a URL on that
// machine. Otherwise whoever holds a hive's token could point the queen,
// with prompts and that token, at any address. Heartbeats from this
// machine are trusted, as its own hive and workers send them.
func checkWorkerHost(r *http.Request, workerURL string) error {
	if httpapi.FromThisMachine(r) {
		return nil
	}
	peer, _, err := net.SplitHostPort(r.RemoteAddr)
	src := net.ParseIP(peer)
	if err != nil || src == nil {
		return wire.Errorf(wire.CodeForbidden, "cannot tell where the heartbeat came from")
	}
	u, err := url.Parse(workerURL)
	if err != nil {
		return wire.BadRequest("heartbeat: bad url: %v", err)
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); ip != nil {
		if ip.Equal(src) {
			return nil
		}
	} else {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		addrs, _ := net.DefaultResolver.LookupHost(ctx, host)
		for _, a := range addrs {
			if net.ParseIP(a).Equal(src) {
				return nil
			}
		}
	}
	return wire.Errorf(wire.CodeForbidden,
		"a worker on %s may not advertise %s: a worker's URL must be on the machine its heartbeats come from", src, host)
}
