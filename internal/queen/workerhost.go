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

// checkWorkerHost pins a worker to the machine its heartbeats come from, as
// the queen will post prompts (and the worker's credential) to the URL it
// advertises. A heartbeat from another machine may only advertise a URL on
// the address it comes from. A loopback URL is this machine's, so only a
// heartbeat from this machine may advertise one, and only for a hive that
// runs here (localHive): a forger cannot point a remote hive's worker at a
// process of its own on 127.0.0.2.
func checkWorkerHost(r *http.Request, workerURL string, localHive bool) error {
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
	addrs := []string{host}
	if net.ParseIP(host) == nil {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		addrs, _ = net.DefaultResolver.LookupHost(ctx, host)
	}
	loopback, isSrc := len(addrs) > 0, false
	for _, a := range addrs {
		ip := net.ParseIP(a)
		loopback = loopback && ip != nil && ip.IsLoopback()
		isSrc = isSrc || ip.Equal(src)
	}
	switch {
	case loopback && !httpapi.FromThisMachine(r):
		return wire.Errorf(wire.CodeForbidden,
			"a worker on %s may not advertise %s: a worker's URL must be on the machine its heartbeats come from", src, host)
	case loopback && !localHive:
		return wire.Errorf(wire.CodeForbidden,
			"a worker of a hive on another machine may not advertise the loopback address %s", host)
	case loopback:
		return nil
	case src.IsLoopback():
		return wire.Errorf(wire.CodeForbidden,
			"a heartbeat from loopback may not advertise %s: a worker on this machine listens on loopback", host)
	case isSrc:
		return nil
	}
	return wire.Errorf(wire.CodeForbidden,
		"a worker on %s may not advertise %s: a worker's URL must be on the machine its heartbeats come from", src, host)
}
