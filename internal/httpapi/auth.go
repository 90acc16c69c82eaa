package httpapi

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"unicode"

	"github.com/rbee/rbee/internal/wire"
)

// Gate is the one authorisation check of every daemon: a bearer secret in
// the Authorization header, compared in constant time. What differs between
// daemons is configuration: which secrets count, and who may come in while
// none exists.
type Gate struct {
	// Token is the daemon's own secret; empty: none.
	Token string
	// Keys, when set, accepts further secrets (the queen's API keys). It
	// reports whether presented is one, and how many exist, so that an
	// empty store counts as no credential. An error (a store that cannot be
	// read) refuses every request: it never means "no keys".
	Keys func(presented string) (ok bool, count int, err error)
	// LocalOnly serves only clients on this machine while no credential
	// exists. Without it, everyone is served then: a daemon bound to
	// loopback, which refuses to bind elsewhere without a token.
	LocalOnly bool

	// Code is the code of a missing or wrong credential; CodeUnauthorized.
	Code string
	// Hint ends the message of a missing or wrong credential: where to get
	// one.
	Hint string
	// RemoteCode and RemoteHint are the code (CodeForbidden) and message
	// of a refusal by LocalOnly.
	RemoteCode string
	RemoteHint string
	// Write writes a refusal in the protocol's shape; WriteError when nil.
	Write func(w http.ResponseWriter, r *http.Request, err error)
}

// Check returns nil when r may pass, else the *wire.Error to answer. extra
// secrets are accepted besides the gate's own: a hive's token on the
// heartbeats of its workers.
func (g *Gate) Check(r *http.Request, extra ...string) error {
	presented, hasBearer := Bearer(r.Header.Get("Authorization"))
	guarded := g.Token != ""
	ok := hasBearer && g.Token != "" && SameSecret(presented, g.Token)
	for _, s := range extra {
		if s == "" {
			continue
		}
		guarded = true
		ok = ok || hasBearer && SameSecret(presented, s)
	}
	if g.Keys != nil {
		keyOK, n, err := g.Keys(presented)
		if err != nil {
			return wire.Errorf(wire.CodeUnavailable, "the credential store cannot be read; see the daemon's log")
		}
		guarded = guarded || n > 0
		ok = ok || hasBearer && keyOK
	}
	switch {
	case ok:
		return nil
	case guarded && !hasBearer:
		return wire.Errorf(or(g.Code, wire.CodeUnauthorized), "%s", joinHint("No credential: send it as \"Authorization: Bearer <token>\".", g.Hint))
	case guarded:
		return wire.Errorf(or(g.Code, wire.CodeUnauthorized), "%s", joinHint("The bearer credential is not valid.", g.Hint))
	case g.LocalOnly && !FromThisMachine(r):
		return wire.Errorf(or(g.RemoteCode, wire.CodeForbidden), "%s", or(g.RemoteHint, "this daemon serves only its own machine until a token is set"))
	}
	return nil
}

// Wrap passes the requests that Check lets through to next.
func (g *Gate) Wrap(next http.Handler) http.Handler {
	write := g.Write
	if write == nil {
		write = WriteError
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := g.Check(r); err != nil {
			write(w, r, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// MinToken is the shortest secret a daemon takes as its token.
const MinToken = 16

// CheckToken explains why s cannot be a daemon's token, or returns nil: at
// least MinToken characters, none of them blank or a control character. A
// token of a space would make a daemon listen beyond loopback behind a
// secret that no client can send.
func CheckToken(s string) error {
	if len(s) < MinToken {
		return fmt.Errorf("a token must be at least %d characters long, not %d", MinToken, len(s))
	}
	for _, c := range s {
		if c <= ' ' || c == 0x7f || unicode.IsSpace(c) || !unicode.IsPrint(c) {
			return fmt.Errorf("a token must not hold blanks or control characters")
		}
	}
	return nil
}

// WorkerToken is the credential of worker workerID of a hive whose token is
// hiveToken: what the hive hands the worker it spawns, what the worker
// requires on its API and proves its heartbeats with, and what the queen
// computes to check those heartbeats and to call the worker. Derived
// rather than shared, it ties a heartbeat to one hive and one worker id,
// and a worker's secret opens nothing else.
func WorkerToken(hiveToken, workerID string) string {
	if hiveToken == "" {
		return ""
	}
	m := hmac.New(sha256.New, []byte(hiveToken))
	m.Write([]byte("rbee worker\x00" + workerID))
	return hex.EncodeToString(m.Sum(nil))
}

// Bearer takes the credential out of an Authorization value. The scheme is
// case-insensitive (RFC 9110, section 11.1) and may be followed by any
// amount of whitespace.
func Bearer(h string) (string, bool) {
	scheme, cred, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	cred = strings.TrimSpace(cred)
	return cred, cred != ""
}

// SetBearer sets the Authorization header of a request to an rbee daemon;
// an empty secret sets nothing.
func SetBearer(req *http.Request, secret string) {
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
}

// SameSecret compares in time that depends on neither value: both are
// hashed first, so not even the length of the secret leaks.
func SameSecret(a, b string) bool {
	ha, hb := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(ha[:], hb[:]) == 1
}

func or(s, def string) string {
	if s != "" {
		return s
	}
	return def
}

func joinHint(msg, hint string) string {
	if hint == "" {
		return msg
	}
	return msg + " " + hint
}
