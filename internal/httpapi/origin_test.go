package httpapi

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// The requests a browser sends for a page of another site are refused,
// whatever their method and content type; clients that are not browsers
// send no Origin and pass.
func TestSameOrigin(t *testing.T) {
	h := SameOrigin(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	for _, c := range []struct {
		method string
		hdr    map[string]string
		want   int
	}{
		{"POST", nil, 204}, // the CLI, daemons, SDKs, curl
		{"GET", nil, 204},
		{"POST", map[string]string{"Origin": "http://127.0.0.1:7833"}, 204},
		{"POST", map[string]string{"Origin": "https://evil.example", "Content-Type": "text/plain"}, 403},
		{"POST", map[string]string{"Origin": "null"}, 403},
		{"POST", map[string]string{"Origin": "file://"}, 403},
		{"POST", map[string]string{"Origin": "http://localhost:7833"}, 403}, // another origin, same machine
		{"POST", map[string]string{"Origin": "http://127.0.0.1:3000"}, 403}, // another port
		{"DELETE", map[string]string{"Origin": "https://evil.example"}, 403},
		{"GET", map[string]string{"Origin": "https://evil.example"}, 403},
		{"OPTIONS", map[string]string{"Origin": "https://evil.example"}, 403},
		{"GET", map[string]string{"Sec-Fetch-Site": "cross-site"}, 403}, // an <img> or a navigation
		{"POST", map[string]string{"Sec-Fetch-Site": "same-site"}, 403},
		{"POST", map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": "http://127.0.0.1:7833"}, 204},
		{"GET", map[string]string{"Sec-Fetch-Site": "none"}, 204}, // a person typed the URL
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
	r := httptest.NewRequest("POST", "http://127.0.0.1:7833/v1/jobs", nil)
	r.Header.Add("Origin", "http://127.0.0.1:7833")
	r.Header.Add("Origin", "https://evil.example")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != 403 {
		t.Errorf("two Origin headers: %d", w.Code)
	}
}
