package httpapi

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestFromThisMachine(t *testing.T) {
	local := &net.TCPAddr{IP: net.ParseIP("192.168.1.5"), Port: 7833}
	for _, c := range []struct {
		remote string
		local  net.Addr
		want   bool
	}{
		{"127.0.0.1:5000", nil, true},
		{"[::1]:5000", nil, true},
		{"127.8.9.10:5000", local, true},
		{"192.168.1.5:5000", local, true}, // a client on this machine using its LAN address
		{"192.168.1.6:5000", local, false},
		{"192.168.1.5:5000", nil, false},
		{"[::ffff:192.168.1.5]:5000", local, true},
		{"localhost:5000", local, false}, // never a name: RemoteAddr is an address
		{"garbage", local, false},
		{"", local, false},
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = c.remote
		if c.local != nil {
			r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, c.local))
		}
		if got := FromThisMachine(r); got != c.want {
			t.Errorf("remote %q local %v: %v, want %v", c.remote, c.local, got, c.want)
		}
	}
}
