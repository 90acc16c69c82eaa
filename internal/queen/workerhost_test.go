package queen

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestCheckWorkerHost(t *testing.T) {
	req := func(remote, local string) *http.Request {
		r := httptest.NewRequest(http.MethodPost, "/v1/workers/heartbeat", nil)
		r.RemoteAddr = remote
		la, _ := net.ResolveTCPAddr("tcp", local)
		return r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, la))
	}
	cases := []struct {
		name, remote, url string
		localHive         bool
		ok                bool
	}{
		{"local worker", "127.0.0.1:5000", "http://127.0.0.1:9000", true, true},
		{"local worker by name", "127.0.0.1:5000", "http://localhost:9000", true, true},
		{"local worker on another loopback address", "127.0.0.1:5000", "http://127.0.0.2:9000", true, true},
		{"loopback for a remote hive", "127.0.0.1:5000", "http://127.0.0.2:9000", false, false},
		{"non-loopback URL from loopback", "127.0.0.1:5000", "http://10.231.1.2:9000", true, false},
		{"public URL from loopback", "127.0.0.1:5000", "http://93.184.216.34:80", true, false},
		{"this machine on its own address", "10.231.1.1:5000", "http://10.231.1.1:9000", true, true},
		{"this machine, loopback URL", "10.231.1.1:5000", "http://127.0.0.1:9000", true, true},
		{"remote worker on its own address", "10.231.1.2:5000", "http://10.231.1.2:9000", false, true},
		{"remote worker naming another machine", "10.231.1.2:5000", "http://10.231.2.2:9000", false, false},
		{"remote worker naming this machine's loopback", "10.231.1.2:5000", "http://127.0.0.1:9000", false, false},
		{"remote worker naming loopback for the local hive", "10.231.1.2:5000", "http://127.0.0.1:9000", true, false},
		{"remote worker naming a public address", "10.231.1.2:5000", "http://93.184.216.34:80", false, false},
	}
	for _, c := range cases {
		err := checkWorkerHost(req(c.remote, "10.231.1.1:7833"), c.url, c.localHive)
		if (err == nil) != c.ok {
			t.Errorf("%s: err %v, want ok=%v", c.name, err, c.ok)
		}
	}
}
