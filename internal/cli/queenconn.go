package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/rbee/rbee/internal/cli/term"
	"github.com/rbee/rbee/internal/config"
	"github.com/rbee/rbee/internal/httpapi"
	"github.com/rbee/rbee/internal/jobs"
	"github.com/rbee/rbee/internal/wire"
)

// healthTimeout bounds one /health probe or shutdown request: a queen on
// this network answers in milliseconds, and a probe is repeated while
// waiting for one to start.
const healthTimeout = 2 * time.Second

// queenConn is the queen a command talks to, through the one client of the
// job protocol.
type queenConn struct {
	url  string // base URL without a trailing slash
	jobs *jobs.Client
}

// connect resolves the queen's URL (flag, else $RBEE_QUEEN_URL, else
// config.toml) and checks its form; it does not contact the queen.
func connect(g *globals) (*queenConn, error) {
	cfg, err := config.Load()
	if err != nil {
		return nil, err
	}
	raw := cfg.QueenURL(g.queenURL)
	u, err := parseQueenURL(raw)
	if err != nil {
		return nil, usagef("queen URL %q: %v", raw, err)
	}
	base := u.String()
	return &queenConn{url: base, jobs: &jobs.Client{BaseURL: base, Token: cfg.QueenToken}}, nil
}

func parseQueenURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return nil, errors.New("not a URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, errors.New("want http:// or https://")
	case u.Hostname() == "":
		return nil, errors.New("no host")
	case u.User != nil || u.RawQuery != "" || u.Fragment != "" || strings.Trim(u.Path, "/") != "":
		return nil, errors.New("want only scheme, host and port")
	}
	if p := u.Port(); p != "" {
		if n, err := net.LookupPort("tcp", p); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("port %q is not a port", p)
		}
	}
	return &url.URL{Scheme: u.Scheme, Host: u.Host}, nil
}

// queenAddr is where a queen started by this command listens.
type queenAddr struct {
	url  string
	host string // empty: the queen's default (127.0.0.1)
	port string
}

// localAddr tells where a queen for this URL would listen, or why this
// command cannot start one there.
func (q *queenConn) localAddr() (queenAddr, error) {
	u, _ := url.Parse(q.url)
	host := u.Hostname()
	if !httpapi.IsLoopback(host) {
		return queenAddr{}, fmt.Errorf("no queen answers at %s, and rbee starts queens only on this machine; start it there with `rbee queen start`", q.url)
	}
	if u.Scheme != "http" {
		return queenAddr{}, fmt.Errorf("no queen answers at %s, and a queen rbee starts speaks plain http", q.url)
	}
	port := u.Port()
	if port == "" {
		port = "80"
	}
	a := queenAddr{url: q.url, port: port}
	if host != "localhost" && host != "127.0.0.1" {
		a.host = host
	}
	return a, nil
}

// health reports nil when a queen answers /health at the URL, and a
// *noQueenError when nothing does.
func (q *queenConn) health(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, healthTimeout)
	defer cancel()
	// A hive answers /health too, with its id: on a misconfigured port it
	// must not pass for a queen.
	var h struct {
		Status string `json:"status"`
		HiveID string `json:"hive_id"`
	}
	err := q.jobs.Get(ctx, "/health", &h)
	var re *wire.Error
	var ue *url.Error
	switch {
	case errors.As(err, &re):
		return fmt.Errorf("%s/health answered %s: is that a queen-rbee?", q.url, statusText(re.Status))
	case errors.As(err, &ue):
		return &noQueenError{url: q.url, err: err}
	case err != nil:
		return fmt.Errorf("%s/health: %v: is that a queen-rbee?", q.url, err)
	case h.HiveID != "":
		return fmt.Errorf("rbee-hive %q answers at %s, not queen-rbee: check queen_port in config.toml and HivePort in hives.conf", term.OneLine(h.HiveID), q.url)
	}
	return nil
}

// shutdown asks the queen to stop.
func (q *queenConn) shutdown(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, healthTimeout)
	defer cancel()
	err := q.jobs.Post(ctx, "/v1/shutdown", nil, nil)
	var re *wire.Error
	switch {
	case errors.As(err, &re):
		return fmt.Errorf("the queen at %s refused to stop: %s", q.url, statusText(re.Status))
	case err != nil:
		return fmt.Errorf("asking the queen at %s to stop: %w", q.url, err)
	}
	return nil
}

// statusText is an HTTP status as its status line says it: "404 Not Found".
func statusText(code int) string {
	return strings.TrimSpace(fmt.Sprintf("%d %s", code, http.StatusText(code)))
}

// run runs op on the queen, shows its narration and progress on rep, and
// returns its terminal event.
func (q *queenConn) run(ctx context.Context, op wire.Operation, fn func(wire.Event) error) (wire.Event, error) {
	ev, err := q.jobs.Run(ctx, op, fn)
	if err != nil && isDialError(err) {
		err = &noQueenError{url: q.url, err: err}
	}
	return ev, err
}

// noQueenError says that nothing answers at the queen's URL, and how to
// start a queen.
type noQueenError struct {
	url string
	err error
}

func (e *noQueenError) Error() string {
	return fmt.Sprintf("no queen-rbee answers at %s; start one with `rbee queen start` (or point --queen-url or $RBEE_QUEEN_URL at a running one)", e.url)
}

func (e *noQueenError) Unwrap() error { return e.err }

// isDialError reports whether err is a failure to connect, as opposed to an
// answer or a stream that broke.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// describe turns an error into the one line a failure prints: a job's own
// message as the daemon worded it, without the layers of wrapping.
func describe(err error) string {
	var re *wire.Error
	var nq *noQueenError
	switch {
	case errors.As(err, &nq):
		return nq.Error()
	case errors.As(err, &re) && re.Message != "":
		return term.OneLine(re.Message)
	}
	return term.OneLine(err.Error())
}
