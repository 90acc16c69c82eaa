package openai

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"

	"github.com/rbee/rbee/internal/httpapi"
	"github.com/rbee/rbee/internal/wire"
)

// authorize applies the API's access rule:
//   - once a key exists (rbee key create), every request needs a valid key
//     (or the queen_token) as "Authorization: Bearer <key>";
//   - with no key but a queen_token, the queen_token is needed;
//   - with neither, only clients on this machine are served: the queen
//     refuses to listen beyond loopback then, and this holds even if the
//     last key is revoked while it does.
//
// A key store that cannot be read refuses every request: it never falls
// back to "no keys, open".
func (s *Server) authorize(r *http.Request) *apiError {
	presented, hasBearer := bearer(r.Header.Get("Authorization"))
	nkeys, keyOK := 0, false
	if s.opt.Keys != nil {
		res, err := s.opt.Keys.Check(presented)
		if err != nil {
			s.log.Error("openai: the API key store cannot be read; refusing requests", "err", err)
			return &apiError{Status: http.StatusServiceUnavailable, Type: typeServer, Code: wire.CodeUnavailable,
				Message: "the queen cannot read its API key store; see the queen's log"}
		}
		nkeys, keyOK = res.Keys, res.ID != ""
	}
	tokenOK := s.opt.Token != "" && hasBearer && sameSecret(presented, s.opt.Token)
	switch {
	case nkeys > 0 || s.opt.Token != "":
		if keyOK || tokenOK {
			return nil
		}
		if !hasBearer {
			return unauthorized("You didn't provide an API key. Send it as \"Authorization: Bearer <key>\"; keys are made with: rbee key create")
		}
		return unauthorized("Incorrect API key provided. Keys are listed with: rbee key list")
	case !httpapi.FromThisMachine(r):
		return unauthorized("This queen has no API keys, so it serves only its own machine; create one with: rbee key create")
	}
	return nil
}

// bearer takes the credentials out of an Authorization value. The scheme
// is case-insensitive (RFC 9110).
func bearer(h string) (string, bool) {
	scheme, cred, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	cred = strings.TrimSpace(cred)
	return cred, cred != ""
}

// sameSecret compares in time that depends on neither value: both are
// hashed first, so not even the length of the secret leaks.
func sameSecret(a, b string) bool {
	ha, hb := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(ha[:], hb[:]) == 1
}
