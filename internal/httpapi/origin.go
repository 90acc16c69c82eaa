package httpapi

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/rbee/rbee/internal/wire"
)

// SameOrigin refuses, before anything runs, every request that a browser
// sends on behalf of another site: a web page the user visits must not
// stop a daemon, start jobs, run inference or read answers, with a
// "simple" cross-site request that needs no CORS preflight, whatever its
// method or content type. Browsers mark such requests with Origin (another
// host than the one asked) or Sec-Fetch-Site (cross-site, or same-site:
// another port of the same host is another program). The CLI, the daemons
// and API clients send neither, and pass; so does a page of the daemon's
// own origin, and a person typing the daemon's URL (Sec-Fetch-Site: none).
func SameOrigin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if crossSite(r) {
			WriteError(w, r, wire.Errorf(wire.CodeForbidden, "cross-origin requests are refused: rbee's daemons serve clients that are not web pages of other sites"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

func crossSite(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "cross-site", "same-site":
		return true
	}
	origins := r.Header.Values("Origin")
	if len(origins) == 0 {
		return false
	}
	if len(origins) > 1 {
		return true
	}
	u, err := url.Parse(origins[0])
	if err != nil || u.Host == "" || u.Scheme != "http" && u.Scheme != "https" {
		return true // "null" (sandboxed frames, file: pages) or garbage
	}
	return !strings.EqualFold(u.Host, r.Host)
}
