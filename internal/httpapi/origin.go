package httpapi

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/rbee/rbee/internal/wire"
)

// SameOriginWrites refuses requests that change state (any method but GET,
// HEAD and OPTIONS) when a browser says they come from another site: a web
// page the user visits must not stop a daemon, start jobs or run inference
// with a "simple" cross-site POST, which needs no CORS preflight. Browsers
// send Origin (and Sec-Fetch-Site) with such requests; the CLI, the daemons
// and API clients send neither, and pass.
func SameOriginWrites(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
		default:
			if crossSite(r) {
				WriteError(w, r, wire.Errorf(wire.CodeForbidden, "cross-origin %s requests are refused: rbee's daemons change state only for clients that are not web pages of other sites", r.Method))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func crossSite(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "cross-site", "same-site":
		return true
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return false
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return true // "null" (sandboxed frames, file: pages) or garbage
	}
	return !strings.EqualFold(u.Host, r.Host)
}
