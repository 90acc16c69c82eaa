// Package remote is the SSH lifecycle of hives on other machines: install
// copies the programs (and the GPU backend a host can run) with the hive's
// token, start runs the hive as a daemon there and waits until it answers
// the queen, stop and uninstall undo that.
package remote

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/rbee/rbee/internal/config"
	"github.com/rbee/rbee/internal/httpapi"
	"github.com/rbee/rbee/internal/jobs"
	"github.com/rbee/rbee/internal/queen/fleet"
	"github.com/rbee/rbee/internal/sshx"
	"github.com/rbee/rbee/internal/wire"
)

// What install puts on a host, beside the two programs, and what start
// leaves there.
const (
	defaultBinaryPath = "~/.local/bin"
	workerProgram     = "llm-worker-rbee"
	tokenFile         = "rbee-hive.token" // the hive's token, 0600
	pidFile           = "rbee-hive.pid"   // the hive start started
	// remoteStopWait bounds a remote hive's stop: its workers' grace, and
	// the network.
	remoteStopWait = 40 * time.Second
	// pollInterval is how often a starting hive is asked whether it answers.
	pollInterval = 100 * time.Millisecond
)

// Options configures a Lifecycle.
type Options struct {
	// Fleet is the queen's hives: their probes, clients and tokens.
	Fleet *fleet.Fleet
	// SSH configures the logins to the hives' hosts.
	SSH sshx.Options
	// HiveStartTimeout bounds waiting for a started hive to answer.
	HiveStartTimeout time.Duration
	// WorkerBinary is the llm-worker-rbee that install copies; empty: the
	// one beside the rbee-hive it copies.
	WorkerBinary string
	// URL, BindHost, Port and AdvertiseURL decide the queen URL a host is
	// given (see queenURLFor).
	URL          string
	BindHost     string
	Port         int
	AdvertiseURL string
}

// Lifecycle installs, starts, stops and uninstalls hives on other
// machines, over SSH.
type Lifecycle struct {
	opt   Options
	fleet *fleet.Fleet
}

// New returns the lifecycle of remote hives.
func New(opt Options) *Lifecycle { return &Lifecycle{opt: opt, fleet: opt.Fleet} }

// Op runs hive_install, hive_uninstall, hive_start or hive_stop for hive h
// on another machine.
func (l *Lifecycle) Op(op wire.Operation, h config.Hive) jobs.RunFunc {
	return func(j *jobs.Job) error {
		r := &remote{l: l, j: j, h: h, acceptNew: op.AcceptNewHostKey}
		defer r.close()
		switch op.Operation {
		case wire.OpHiveInstall:
			return r.install()
		case wire.OpHiveStart:
			return r.start()
		case wire.OpHiveStop:
			return r.stop()
		case wire.OpHiveUninstall:
			return r.uninstall()
		}
		return fmt.Errorf("%s is not a hive lifecycle operation", op.Operation)
	}
}

// remote is one lifecycle operation on a remote hive. It logs in at most
// once, when the operation first needs the host.
type remote struct {
	l         *Lifecycle
	j         *jobs.Job
	h         config.Hive
	acceptNew bool
	c         *sshx.Client
	dir       string // BinaryPath on the host, expanded
}

func (r *remote) ctx() context.Context { return r.j.Context() }

func (r *remote) close() {
	if r.c != nil {
		r.c.Close()
	}
}

// client logs in to the host and resolves the binary directory there.
func (r *remote) client() (*sshx.Client, error) {
	if r.c != nil {
		return r.c, nil
	}
	opt := r.l.opt.SSH
	opt.AcceptNewHostKey = r.acceptNew
	opt.OnNewHostKey = func(fp, file string) {
		r.j.Narrate("ssh", fmt.Sprintf("Recorded the host key of %s (%s) in %s", r.h.Alias, fp, file))
	}
	t := sshx.TargetOf(r.h)
	r.j.Narrate("ssh", fmt.Sprintf("Connecting to %s (%s) over SSH", r.h.Alias, t.Addr()))
	c, err := sshx.Dial(r.ctx(), t, opt)
	if err != nil {
		var hk *sshx.HostKeyError
		switch {
		case r.ctx().Err() != nil:
			return nil, context.Cause(r.ctx())
		case errors.As(err, &hk) && (hk.Changed || hk.Revoked):
			return nil, wire.Errorf(wire.CodeHostKeyChanged, "%v", err)
		case errors.As(err, &hk):
			return nil, wire.Errorf(wire.CodeHostKeyUnknown, "%v", err)
		}
		return nil, wire.Errorf(wire.CodeSSHFailed, "%v", err)
	}
	bp := r.h.BinaryPath
	if bp == "" {
		bp = defaultBinaryPath
	}
	if r.dir, err = c.ExpandPath(bp); err != nil {
		c.Close()
		return nil, wire.Errorf(wire.CodeSSHFailed, "%s: BinaryPath %s: %v", r.h.Alias, bp, err)
	}
	r.c = c
	return c, nil
}

// run runs a script on the host; its failures are ssh_failed errors that
// name the host, unless the job was cancelled.
func (r *remote) run(script string, args ...string) (string, error) {
	c, err := r.client()
	if err != nil {
		return "", err
	}
	out, err := c.Run(r.ctx(), nil, script, args...)
	if err != nil {
		if r.ctx().Err() != nil {
			return "", context.Cause(r.ctx())
		}
		return "", wire.Errorf(wire.CodeSSHFailed, "on %s: %v", r.h.Alias, err)
	}
	return strings.TrimSpace(string(out)), nil
}

func (r *remote) fail(err error) error {
	if r.ctx().Err() != nil {
		return context.Cause(r.ctx())
	}
	if _, typed := wire.AsError(err); typed {
		return err
	}
	return wire.Errorf(wire.CodeSSHFailed, "%s: %v", r.h.Alias, err)
}

// install copies the hive and worker programs to the host, after checking
// that they are built for it, and hands the hive its token.
func (r *remote) install() error {
	files, plat, err := r.l.installFiles()
	if err != nil {
		return err
	}
	uname, err := r.run("uname -sm")
	if err != nil {
		return err
	}
	hostPlat, err := unamePlatform(uname)
	if err != nil {
		return wire.Errorf(wire.CodeIncompatibleHost, "%s: %v", r.h.Alias, err)
	}
	if hostPlat != plat {
		goos, goarch, _ := strings.Cut(string(hostPlat), "/")
		return wire.Errorf(wire.CodeIncompatibleHost, "%s runs %s (uname -sm: %s) but the programs to install are built for %s; "+
			"build them for the host (GOOS=%s GOARCH=%s; the worker needs cgo with a C compiler for that target) and install again",
			r.h.Alias, hostPlat, uname, plat, goos, goarch)
	}
	r.j.Narrate("install", fmt.Sprintf("%s runs %s, as the programs are built for", r.h.Alias, hostPlat))
	if err := r.c.MkdirAll(r.dir); err != nil {
		return r.fail(err)
	}
	res := wire.HiveInstall{Alias: r.h.Alias, Host: r.h.HostName, Platform: string(hostPlat), BinaryPath: r.dir}
	for _, f := range files {
		dest := path.Join(r.dir, f.name)
		start := time.Now()
		sum, err := r.c.Upload(r.ctx(), f.local, dest, 0o755)
		if err != nil {
			return r.fail(err)
		}
		res.Files = append(res.Files, dest)
		r.j.Narrate("install", fmt.Sprintf("Copied %s to %s:%s in %s (SHA-256 %s, checked on the host)",
			f.name, r.h.Alias, dest, time.Since(start).Round(time.Millisecond), sum[:16]))
	}
	gpuFiles, err := r.installGPU(files[1].local) // files: the hive, then the worker
	if err != nil {
		return err
	}
	res.Files = append(res.Files, gpuFiles...)
	tok, created, err := r.l.fleet.Tokens.Ensure(r.h.Alias)
	if err != nil {
		return fmt.Errorf("making the token of hive %s: %w", r.h.Alias, err)
	}
	dest := path.Join(r.dir, tokenFile)
	if err := r.c.WriteSecret(r.ctx(), dest, []byte(tok+"\n"), 0o600); err != nil {
		return r.fail(err)
	}
	res.Files = append(res.Files, dest)
	how := "its token"
	if created {
		how = "a new token"
	}
	r.j.Narrate("install", fmt.Sprintf("Gave hive %s %s (%s:%s, mode 0600); start it with: rbee hive start -a %s", r.h.Alias, how, r.h.Alias, dest, r.h.Alias))
	r.j.Emit(wire.NewResult(res))
	return nil
}

// queenURLFor is the queen's URL as host h reaches it: queen_advertise_url
// when set; else, for a queen listening on every address, the address
// this machine's SSH connection comes from (the host can answer it), with
// the queen's port. A queen on loopback only cannot be reached from there.
func (l *Lifecycle) queenURLFor(c *sshx.Client, h config.Hive) (string, error) {
	if l.opt.AdvertiseURL != "" {
		return strings.TrimRight(l.opt.AdvertiseURL, "/"), nil
	}
	host, port := l.opt.BindHost, l.opt.Port
	if u, err := url.Parse(l.opt.URL); err == nil && (host == "" || port == 0) {
		if host == "" {
			host = u.Hostname()
		}
		if port == 0 {
			port, _ = strconv.Atoi(u.Port())
		}
	}
	if host == "" || httpapi.IsLoopback(host) || port == 0 {
		return "", wire.Errorf(wire.CodeUnavailable, "this queen listens on %s, which the workers on %s cannot reach: "+
			"start it on an address the host can reach (queen-rbee --host 0.0.0.0, or queen_host in config.toml; "+
			"that needs queen_token), or set queen_advertise_url in config.toml", l.opt.URL, h.Alias)
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		la, ok := c.LocalAddr().(*net.TCPAddr)
		if !ok {
			return "", fmt.Errorf("the SSH connection to %s has no TCP address", h.Alias)
		}
		host = la.IP.String()
	}
	return "http://" + net.JoinHostPort(host, strconv.Itoa(port)), nil
}
