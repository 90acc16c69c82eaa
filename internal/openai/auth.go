package openai

import (
	"net/http"

	"github.com/rbee/rbee/internal/httpapi"
	"github.com/rbee/rbee/internal/wire"
)

// gate applies the API's access rule with the daemons' one gate:
//   - once a key exists (rbee key create), every request needs a valid key
//     (or the queen_token) as "Authorization: Bearer <key>";
//   - with no key but a queen_token, the queen_token is needed;
//   - with neither, only clients on this machine are served: the queen
//     refuses to listen beyond loopback then, and this holds even if the
//     last key is revoked while it does.
//
// A key store that cannot be read refuses every request: it never falls
// back to "no keys, open".
func (s *Server) gate() *httpapi.Gate {
	g := &httpapi.Gate{
		Token:      s.opt.Token,
		LocalOnly:  true,
		Code:       wire.CodeInvalidAPIKey,
		Hint:       "API keys are made with: rbee key create, and listed with: rbee key list.",
		RemoteCode: wire.CodeInvalidAPIKey,
		RemoteHint: "This queen has no API keys, so it serves only its own machine; create one with: rbee key create",
		Write:      s.writeError,
	}
	if s.opt.Keys != nil {
		g.Keys = func(presented string) (bool, int, error) {
			res, err := s.opt.Keys.Check(presented)
			if err != nil {
				s.log.Error("openai: the API key store cannot be read; refusing requests", "err", err)
			}
			return res.ID != "", res.Keys, err
		}
	}
	return g
}

// Mount registers the API's paths on mux. Methods are checked in serve
// rather than in the patterns, so that a wrong one is answered in OpenAI's
// shape.
func (s *Server) Mount(mux *http.ServeMux) {
	for _, p := range Paths {
		mux.Handle(p, s)
	}
}

// ServeHTTP answers one API request, behind the gate.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.handler.ServeHTTP(w, r)
}
