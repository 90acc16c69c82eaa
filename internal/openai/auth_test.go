package openai

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rbee/rbee/internal/wire"
)

const chatBody = `{"model":"m","messages":[{"role":"user","content":"x"}]}`

func TestKeys(t *testing.T) {
	b := newBackend("x")
	a := newAPI(t, b, func(o *Options) {
		o.Keys = fakeKeys{keys: map[string]string{"rbee_good": "k1"}}
		o.Token = "queen-secret"
	})
	ok := []string{"Bearer rbee_good", "bearer rbee_good", "Bearer  rbee_good ", "Bearer queen-secret"}
	for _, h := range ok {
		if r := a.post(t, "/v1/chat/completions", chatBody, "Authorization", h); r.status != http.StatusOK {
			t.Errorf("%q: %d %s", h, r.status, r.body)
		}
	}
	if r := a.do(t, http.MethodGet, "/v1/models", "", "Authorization", "Bearer rbee_good"); r.status != http.StatusOK {
		t.Errorf("models with a key: %d %s", r.status, r.body)
	}
	calls := b.callCount()
	bad := []string{"", "rbee_good", "Basic cmJlZTpnb29k", "Bearer", "Bearer ", "Bearer rbee_bad", "Bearer rbee_good2",
		"Bearer ' OR '1'='1", "Bearer rbee_good' --", "Bearer " + strings.Repeat("k", 8<<10), "Bearer queen-secret2", "Token rbee_good"}
	for _, h := range bad {
		for _, path := range []string{"/v1/chat/completions", "/v1/models", "/v1/models/m"} {
			r := a.post(t, path, chatBody, "Authorization", h)
			if r.status != http.StatusUnauthorized || r.apiErr(t).Code != wire.CodeInvalidAPIKey {
				t.Errorf("%.40q %s: %d %s", h, path, r.status, r.body)
			}
		}
	}
	if b.callCount() != calls {
		t.Error("a request without a valid key reached the backend")
	}
}

// Values that a Go client refuses to send still get a 401, never a 500:
// non-ASCII bytes, a long one. A NUL is refused by net/http itself (400).
func TestHostileAuthorization(t *testing.T) {
	a := newAPI(t, newBackend("x"), func(o *Options) { o.Keys = fakeKeys{keys: map[string]string{"rbee_good": "k1"}} })
	for v, want := range map[string]int{
		"Bearer ключ": 401, "Bearer \xff\xfe": 401, "Bearer " + strings.Repeat("é", 4000): 401, "\xff": 401, "Bearer a\x00b": 400,
	} {
		conn, err := net.Dial("tcp", a.srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
			v, len(chatBody), chatBody)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("%.20q: %v", v, err)
		}
		resp.Body.Close()
		conn.Close()
		if resp.StatusCode != want {
			t.Errorf("%.20q: %d, want %d", v, resp.StatusCode, want)
		}
	}
}

func TestNoKeys(t *testing.T) {
	b := newBackend("x")
	// No key store, no token: this machine only.
	s := New(Options{Backend: b, Logger: slog.New(slog.DiscardHandler)})
	r := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", strings.NewReader(chatBody))
	r.RemoteAddr = "192.0.2.7:4000"
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	if w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), "rbee key create") {
		t.Errorf("remote client without keys: %d %s", w.Code, w.Body)
	}
	r = httptest.NewRequest(http.MethodPost, "/v1/chat/completions", strings.NewReader(chatBody))
	r.RemoteAddr = "127.0.0.1:4000"
	w = httptest.NewRecorder()
	s.ServeHTTP(w, r)
	if w.Code != http.StatusOK {
		t.Errorf("local client without keys: %d %s", w.Code, w.Body)
	}

	// An empty key store is no key store.
	a := newAPI(t, b, func(o *Options) { o.Keys = fakeKeys{} })
	if r := a.post(t, "/v1/chat/completions", chatBody); r.status != http.StatusOK {
		t.Errorf("empty store, local client: %d %s", r.status, r.body)
	}
	// A queen_token alone is required when no key exists.
	a = newAPI(t, b, func(o *Options) { o.Keys = fakeKeys{}; o.Token = "t0k" })
	if r := a.post(t, "/v1/chat/completions", chatBody); r.status != http.StatusUnauthorized {
		t.Errorf("token set, none sent: %d %s", r.status, r.body)
	}
	if r := a.post(t, "/v1/chat/completions", chatBody, "Authorization", "Bearer t0k"); r.status != http.StatusOK {
		t.Errorf("token sent: %d %s", r.status, r.body)
	}
}

// A key store that cannot be read refuses everything: never "no keys".
func TestUnreadableKeyStore(t *testing.T) {
	b := newBackend("x")
	a := newAPI(t, b, func(o *Options) { o.Keys = fakeKeys{err: errors.New("keys.json: bad")} })
	r := a.post(t, "/v1/chat/completions", chatBody, "Authorization", "Bearer anything")
	if r.status != http.StatusServiceUnavailable || strings.Contains(r.String(), "keys.json") {
		t.Errorf("%d %s", r.status, r.body)
	}
	if b.callCount() != 0 {
		t.Error("the backend was called")
	}
}
