package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"syscall"
	"time"

	"github.com/rbee/rbee/internal/cli/term"
	"github.com/rbee/rbee/internal/supervise"
)

// queenStopTimeout bounds `rbee queen stop`: the queen stops its hive, which
// gives each worker a grace period.
const queenStopTimeout = 30 * time.Second

var queenStartCommand = &command{
	name:     "queen start",
	synopsis: "[--host ADDR] [--port N]",
	summary:  "start queen-rbee in the background",
	help: `The queen keeps running after this command returns; its log is
queen-rbee.log in the rbee log directory. It listens on 127.0.0.1 unless
--host says otherwise, which needs queen_token in config.toml.`,
	setup: func(a *App, fs *flag.FlagSet, g *globals) runFunc {
		host := fs.String("host", "", "the `ADDR` to listen on (default: queen_host of config.toml, else 127.0.0.1)")
		port := fs.Int("port", 0, "the port `N` to listen on (default: the port of the queen URL)")
		return func(ctx context.Context, args []string) error {
			return a.queenStart(ctx, g, *host, *port)
		}
	},
}

var queenStopCommand = &command{
	name:    "queen stop",
	summary: "stop queen-rbee, with the hive and workers it started",
	setup: func(a *App, fs *flag.FlagSet, g *globals) runFunc {
		return func(ctx context.Context, args []string) error { return a.queenStop(ctx, g) }
	},
}

var queenStatusCommand = &command{
	name:    "queen status",
	summary: "say whether queen-rbee is running",
	setup: func(a *App, fs *flag.FlagSet, g *globals) runFunc {
		return func(ctx context.Context, args []string) error {
			qc, err := connect(g)
			if err != nil {
				return err
			}
			err = qc.health(ctx)
			var nq *noQueenError
			if err != nil && !errors.As(err, &nq) {
				return err
			}
			return a.queenState(g, qc.url, err == nil)
		}
	},
}

// queenState prints where the queen is and whether it runs; say, when set,
// is the line for people.
func (a *App) queenState(g *globals, u string, running bool, say ...string) error {
	if g.json {
		b, _ := json.Marshal(struct {
			URL     string `json:"url"`
			Running bool   `json:"running"`
		}{u, running})
		return term.PrintJSON(a.Stdout, b)
	}
	switch {
	case len(say) > 0:
		fmt.Fprintln(a.Stdout, say[0])
	case running:
		fmt.Fprintf(a.Stdout, "queen-rbee is running at %s\n", u)
	default:
		fmt.Fprintf(a.Stdout, "queen-rbee is not running at %s\n", u)
	}
	return nil
}

func (a *App) queenStart(ctx context.Context, g *globals, host string, port int) error {
	if port < 0 || port > 65535 {
		return usagef("--port %d is not a port", port)
	}
	qc, err := connect(g)
	if err != nil {
		return err
	}
	if port != 0 || host != "" {
		qc = qc.at(host, port)
	}
	var addr queenAddr
	if host == "" {
		if addr, err = qc.localAddr(); err != nil {
			return usagef("rbee starts queens only on this machine, and %s is not on it", qc.url)
		}
	} else {
		u, _ := url.Parse(qc.url)
		addr = queenAddr{url: qc.url, host: host, port: u.Port()}
	}
	err = qc.health(ctx)
	var nq *noQueenError
	switch {
	case err == nil:
		fmt.Fprintf(a.Stderr, "[rbee] queen-rbee is already running at %s\n", qc.url)
		return a.queenState(g, qc.url, true)
	case !errors.As(err, &nq):
		return err
	}
	path, err := a.findBinary("queen-rbee")
	if err != nil {
		return err
	}
	log, err := openLog("queen-rbee")
	if err != nil {
		return err
	}
	log.close() // the daemon opens it itself
	pid, err := supervise.Detach(path, addr.args(), nil, log.path)
	if err != nil {
		return fmt.Errorf("starting %s: %w", path, err)
	}
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	if err := waitQueen(ctx, qc, exited(wctx, pid), log); err != nil {
		_ = syscall.Kill(pid, syscall.SIGTERM)
		return err
	}
	fmt.Fprintf(a.Stderr, "[rbee] queen-rbee started (pid %d, log %s)\n", pid, log.path)
	return a.queenState(g, qc.url, true)
}

// at is the same queen connection for another host or port: the URL a
// queen started with --host and --port answers at.
func (q *queenConn) at(host string, port int) *queenConn {
	u, _ := url.Parse(q.url)
	h, p := u.Hostname(), u.Port()
	if host != "" {
		h = host
		if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
			h = "127.0.0.1" // listening everywhere includes loopback
		}
	}
	if port != 0 {
		p = strconv.Itoa(port)
	}
	if p == "" {
		p = "80"
	}
	c := *q
	c.url = u.Scheme + "://" + net.JoinHostPort(h, p)
	jc := *q.jobs
	jc.BaseURL = c.url
	c.jobs = &jc
	return &c
}

// exited is closed once the detached child pid has exited; a detached child
// is still ours to reap until this process exits.
func exited(ctx context.Context, pid int) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		for {
			var ws syscall.WaitStatus
			n, err := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
			if n == pid || err != nil && !errors.Is(err, syscall.EINTR) {
				close(done)
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return done
}

func (a *App) queenStop(ctx context.Context, g *globals) error {
	qc, err := connect(g)
	if err != nil {
		return err
	}
	err = qc.health(ctx)
	var nq *noQueenError
	switch {
	case errors.As(err, &nq):
		fmt.Fprintf(a.Stderr, "[rbee] queen-rbee is not running at %s\n", qc.url)
		return a.queenState(g, qc.url, false)
	case err != nil:
		return err
	}
	if err := qc.shutdown(ctx); err != nil {
		return err
	}
	fmt.Fprintf(a.Stderr, "[rbee] Stopping queen-rbee at %s, with its hives and workers\n", qc.url)
	deadline := time.Now().Add(queenStopTimeout)
	for {
		err := qc.health(ctx)
		if errors.As(err, &nq) {
			return a.queenState(g, qc.url, false, "queen-rbee at "+qc.url+" stopped")
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("queen-rbee at %s still answers %s after it was asked to stop", qc.url, queenStopTimeout)
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
