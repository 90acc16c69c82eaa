package httpapi

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestSameOriginWrites(t *testing.T) {
	h := SameOriginWrites(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	for _, c := range []struct {
		method string
		hdr    map[string]string
		want   int
	}{
		{"POST", nil, 204}, // the CLI, daemons, SDKs
		{"POST", map[string]string{"Origin": "http://127.0.0.1:7833"}, 204},
		{"POST", map[string]string{"Origin": "https://evil.example"}, 403},
		{"POST", map[string]string{"Origin": "null"}, 403},
		{"POST", map[string]string{"Origin": "http://localhost:7833"}, 403}, // another origin, same machine
		{"DELETE", map[string]string{"Origin": "https://evil.example"}, 403},
		{"POST", map[string]string{"Sec-Fetch-Site": "cross-site"}, 403},
		{"POST", map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": "http://127.0.0.1:7833"}, 204},
		{"GET", map[string]string{"Origin": "https://evil.example"}, 204},
	} {
		r := httptest.NewRequest(c.method, "http://127.0.0.1:7833/v1/shutdown", nil)
		for k, v := range c.hdr {
			r.Header.Set(k, v)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != c.want {
			t.Errorf("%s %v: %d, want %d", c.method, c.hdr, w.Code, c.want)
		}
	}
}
