package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rbee/rbee/internal/wire"
)

func TestBearer(t *testing.T) {
	for h, want := range map[string]string{
		"Bearer abc": "abc", "bearer abc": "abc", "BEARER abc": "abc", "Bearer   abc  ": "abc", " Bearer abc": "abc",
		"Bearer": "", "Bearer ": "", "Basic abc": "", "Bearerabc": "", "": "", "Token abc": "",
	} {
		got, ok := Bearer(h)
		if got != want || ok != (want != "") {
			t.Errorf("Bearer(%q) = %q, %v; want %q", h, got, ok, want)
		}
	}
}

func gateAnswer(t *testing.T, g *Gate, remote, auth string) (int, wire.ErrorBody) {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, "/v1/x", nil)
	r.RemoteAddr = remote
	r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, &net.TCPAddr{IP: net.ParseIP("192.168.1.5"), Port: 1}))
	if auth != "" {
		r.Header.Set("Authorization", auth)
	}
	w := httptest.NewRecorder()
	g.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })).ServeHTTP(w, r)
	var body wire.ErrorBody
	if w.Code != http.StatusNoContent {
		if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
			t.Fatalf("%d %q: %v", w.Code, w.Body, err)
		}
		if body.Error.Message == "" {
			t.Fatalf("%d without a message", w.Code)
		}
	}
	return w.Code, body
}

func TestGate(t *testing.T) {
	const local, remote = "127.0.0.1:5000", "192.168.1.9:5000"
	keys := func(p string) (bool, int, error) { return p == "rbee_key", 1, nil }
	noKeys := func(p string) (bool, int, error) { return false, 0, nil }
	broken := func(p string) (bool, int, error) { return false, 0, errors.New("keys.json: permission denied") }
	for _, c := range []struct {
		name         string
		g            Gate
		remote, auth string
		want         int
	}{
		{"open", Gate{}, remote, "", 204},
		{"token", Gate{Token: "s3cret"}, local, "bearer s3cret", 204},
		{"token missing", Gate{Token: "s3cret"}, local, "", 401},
		{"token wrong", Gate{Token: "s3cret"}, local, "Bearer s3cret2", 401},
		{"token prefix", Gate{Token: "s3cret"}, local, "Bearer s3cre", 401},
		{"not bearer", Gate{Token: "s3cret"}, local, "Basic s3cret", 401},
		{"local only, local", Gate{LocalOnly: true}, local, "", 204},
		{"local only, own address", Gate{LocalOnly: true}, "192.168.1.5:7", "", 204},
		{"local only, remote", Gate{LocalOnly: true}, remote, "", 403},
		{"key", Gate{Keys: keys, LocalOnly: true}, remote, "Bearer rbee_key", 204},
		{"key wrong", Gate{Keys: keys, LocalOnly: true}, local, "Bearer rbee_nope", 401},
		{"token beside keys", Gate{Token: "s3cret", Keys: keys}, remote, "Bearer s3cret", 204},
		{"empty key store", Gate{Keys: noKeys, LocalOnly: true}, local, "", 204},
		{"empty key store, remote", Gate{Keys: noKeys, LocalOnly: true}, remote, "Bearer x", 403},
		{"broken key store", Gate{Keys: broken}, local, "Bearer rbee_key", 503},
	} {
		got, body := gateAnswer(t, &c.g, c.remote, c.auth)
		if got != c.want {
			t.Errorf("%s: %d %+v, want %d", c.name, got, body, c.want)
		}
		if got == 401 && body.Error.Code != wire.CodeUnauthorized {
			t.Errorf("%s: code %q", c.name, body.Error.Code)
		}
	}
}

// A hive's token is accepted beside the daemon's own, and only where the
// caller names it.
func TestGateExtraSecret(t *testing.T) {
	g := &Gate{Token: "queen"}
	r := httptest.NewRequest(http.MethodPost, "/", nil)
	r.Header.Set("Authorization", "Bearer hive-a")
	if g.Check(r) == nil {
		t.Fatal("a hive token passed where none was named")
	}
	if err := g.Check(r, "hive-a"); err != nil {
		t.Fatal(err)
	}
	if err := g.Check(r, "hive-b"); !wire.IsCode(err, wire.CodeUnauthorized) {
		t.Fatalf("another hive's token: %v", err)
	}
	open := &Gate{}
	r.Header.Del("Authorization")
	if err := open.Check(r, "hive-a"); err == nil || !strings.Contains(err.Error(), "Bearer") {
		t.Fatalf("a hive with a token let a request without one pass: %v", err)
	}
}

func TestCheckToken(t *testing.T) {
	for _, ok := range []string{"0123456789abcdef", strings.Repeat("k", 64), "rbee_AbC-123.xyz/=+"} {
		if err := CheckToken(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", " ", strings.Repeat(" ", 20), "short", "0123456789abcde", "0123456789 abcdef", "0123456789abcdef\n", "0123456789abcdef\x00", "0123456789abcdef\u00a0"} {
		if CheckToken(bad) == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestWorkerToken(t *testing.T) {
	a := WorkerToken("hive-secret-0123456789", "w-1")
	if len(a) != 64 || CheckToken(a) != nil {
		t.Fatalf("%q", a)
	}
	for _, other := range []string{WorkerToken("hive-secret-0123456789", "w-2"), WorkerToken("hive-secret-0123456780", "w-1")} {
		if other == a {
			t.Fatal("two workers share a credential")
		}
	}
	if a != WorkerToken("hive-secret-0123456789", "w-1") {
		t.Fatal("not deterministic")
	}
	if WorkerToken("", "w-1") != "" {
		t.Fatal("a hive without a token gave a credential")
	}
}
