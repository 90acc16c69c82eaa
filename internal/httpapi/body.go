package httpapi

import (
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// BodyTimeout is how long a daemon gives a client to send a request body.
// The server's header timeout does not cover the body, and a server-wide
// ReadTimeout would cut off every long stream, so the bound is set per
// request by BoundBodies.
const BodyTimeout = 30 * time.Second

// BoundBodies gives each request until timeout to send its body, then
// lifts the bound once the body has been read to its end, so that a stream
// answered afterwards may last as long as it needs. A client that trickles
// its body, or a body that the handler leaves unread, ends with the
// connection instead of holding it for ever.
func BoundBodies(timeout time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		if r.Body == nil || r.Body == http.NoBody {
			next.ServeHTTP(w, r)
			return
		}
		if rc.SetReadDeadline(time.Now().Add(timeout)) != nil {
			next.ServeHTTP(w, r) // not a connection with deadlines (tests' recorders)
			return
		}
		r.Body = &boundBody{ReadCloser: r.Body, lift: func() { _ = rc.SetReadDeadline(time.Time{}) }}
		next.ServeHTTP(w, r)
	})
}

// boundBody lifts the read deadline once the body is read to its end.
type boundBody struct {
	io.ReadCloser
	once sync.Once
	lift func()
}

func (b *boundBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if errors.Is(err, io.EOF) {
		b.once.Do(b.lift)
	}
	return n, err
}

// IsTimeout reports whether err is a read that ran out of time: a body
// that did not arrive in time.
func IsTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
