// Package fleet is the queen's side of its hives: which hives exist (hives.conf,
// ~/.ssh/config), how each is reached (one client per hive, carrying that
// hive's own token and never the queen's), whether it answers, forwarding
// job operations to it, and the rbee-hive process on this machine.
package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rbee/rbee/internal/config"
	"github.com/rbee/rbee/internal/httpapi"
	"github.com/rbee/rbee/internal/jobs"
	"github.com/rbee/rbee/internal/wire"
)

// LocalAlias is the hive on this machine, always present in hives.conf.
const LocalAlias = "localhost"

// HiveProgram is the hive's executable name.
const HiveProgram = "rbee-hive"

// Options configures a Fleet. Zero fields take the documented defaults.
type Options struct {
	// Hives lists the configured hives; called for each operation, so
	// edits of hives.conf need no restart.
	Hives func() ([]config.Hive, error)
	// SSHConfigHive looks up the aliases Hives lacks.
	SSHConfigHive func(alias string) (config.Hive, bool, error)
	// TokenDir holds the hives' tokens (config.HiveTokens); empty:
	// config.ConfigDir()/hive-tokens. Every hive has one, the local hive
	// too: its workers need it to register with the queen.
	TokenDir string
	// HTTP is the client for hives; must be set.
	HTTP *http.Client
	// HealthTimeout bounds each /health probe; capability and model
	// questions get twice as long.
	HealthTimeout time.Duration
	// HiveStartTimeout bounds waiting for a started hive to answer.
	HiveStartTimeout time.Duration
	// HiveBinary and HiveLog are the local hive's program and log; empty:
	// found beside this executable (or on $PATH), config.LogDir().
	HiveBinary string
	HiveLog    string
	// QueenURL is where the local hive and its workers reach the queen.
	QueenURL string
	Logger   *slog.Logger
}

// Fleet is the hives of one queen.
type Fleet struct {
	opt    Options
	log    *slog.Logger
	Tokens config.HiveTokens
	Local  *LocalHive
}

// New returns the fleet; Close stops the local hive if it started it.
func New(opt Options) *Fleet {
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	f := &Fleet{opt: opt, log: opt.Logger, Tokens: config.HiveTokens{Dir: opt.TokenDir}}
	f.Local = &LocalHive{f: f}
	return f
}

// Close stops the local hive if this queen started it (an adopted one is
// someone else's and keeps running).
func (f *Fleet) Close() error { return f.Local.StopOwned() }

// List is the configured hives.
func (f *Fleet) List() ([]config.Hive, error) {
	hives, err := f.opt.Hives()
	if err != nil {
		return nil, fmt.Errorf("reading the hive list: %w", err)
	}
	return hives, nil
}

// Find finds a configured hive (an empty alias is the local one); field
// names where the alias came from in the 400 for a bad or unknown one.
func (f *Fleet) Find(alias, field string) (config.Hive, error) {
	if alias == "" {
		alias = LocalAlias
	}
	if err := wire.CheckHiveID(alias); err != nil {
		return config.Hive{}, wire.BadRequest("%s: %v", field, err)
	}
	hives, err := f.opt.Hives()
	if err != nil {
		return config.Hive{}, wire.Errorf(wire.CodeInternal, "reading the hive list: %v", err)
	}
	h, ok := config.FindHive(hives, alias)
	if !ok {
		// ~/.ssh/config names hosts too; its values get the same checks.
		sh, found, err := f.opt.SSHConfigHive(alias)
		if err != nil {
			return config.Hive{}, wire.BadRequest("hive %s: %v", alias, err)
		}
		h, ok = sh, found
	}
	if !ok {
		names := make([]string, len(hives))
		for i, h := range hives {
			names[i] = h.Alias
		}
		return config.Hive{}, wire.BadRequest(
			"unknown hive %q: the configured hives are %s; add a \"Host %s\" entry to hives.conf (or ~/.ssh/config)", alias, strings.Join(names, ", "), alias)
	}
	return h, nil
}

// TokenOf is hive alias's own token: what the queen presents to it, and
// what its workers' credentials derive from (httpapi.WorkerToken). "" when
// it has none: a remote hive not installed, a name that is no alias, or a
// local hive not started yet. The queen's token is never one.
func (f *Fleet) TokenOf(alias string) (string, error) { return f.Tokens.Get(alias) }

// EnsureLocalToken makes the local hive's token if it has none, so that a
// hive and workers started by hand on this machine, which read it from the
// same file, can register before the queen ever starts the hive.
func (f *Fleet) EnsureLocalToken() error {
	if _, _, err := f.Tokens.Ensure(LocalAlias); err != nil {
		return fmt.Errorf("making the local hive's token: %w", err)
	}
	return nil
}

// OnThisMachine reports whether hive alias runs on this machine: the local
// hive, one whose host name is a loopback address, or one that no
// configuration names (only a hive started by hand here can have made its
// token). Heartbeats from loopback may speak only for those.
func (f *Fleet) OnThisMachine(alias string) bool {
	if alias == LocalAlias {
		return true
	}
	hives, err := f.opt.Hives()
	if err != nil {
		return false
	}
	h, ok := config.FindHive(hives, alias)
	if !ok {
		var err error
		if h, ok, err = f.opt.SSHConfigHive(alias); err != nil {
			return false
		}
	}
	return !ok || httpapi.IsLoopback(h.HostName)
}

// Token is TokenOf for a caller that goes on without one: an unreadable
// token is logged, and the hive then refuses the call itself.
func (f *Fleet) Token(alias string) string {
	tok, err := f.TokenOf(alias)
	if err != nil {
		f.log.Warn("cannot read a hive token", "hive", alias, "err", err)
	}
	return tok
}

// URL is where hive h serves.
func URL(h config.Hive) string {
	return "http://" + net.JoinHostPort(h.HostName, strconv.Itoa(h.HivePort))
}

// Client is the one way the queen calls hive h: the job protocol and its
// small JSON endpoints, with h's own token.
func (f *Fleet) Client(h config.Hive) *jobs.Client {
	return &jobs.Client{BaseURL: URL(h), HTTP: f.opt.HTTP, Token: f.Token(h.Alias)}
}

// ProbeAll asks every hive's /health at once, so the slowest hive, not
// their sum, bounds a listing.
func (f *Fleet) ProbeAll(ctx context.Context, hives []config.Hive) []wire.HiveStatus {
	out := make([]wire.HiveStatus, len(hives))
	var wg sync.WaitGroup
	for i, h := range hives {
		wg.Go(func() { out[i] = f.Probe(ctx, h) })
	}
	wg.Wait()
	return out
}

// Probe reports whether hive h answers GET /health like a hive.
func (f *Fleet) Probe(ctx context.Context, h config.Hive) wire.HiveStatus {
	st := wire.HiveStatus{Alias: h.Alias, Host: h.HostName, HivePort: h.HivePort, URL: URL(h), State: wire.HiveOffline}
	ctx, cancel := context.WithTimeout(ctx, f.opt.HealthTimeout)
	defer cancel()
	var health wire.HiveHealth
	if err := f.Client(h).Get(ctx, "/health", &health); err != nil {
		st.Error = err.Error()
		return st
	}
	if health.Status != "ok" {
		st.Error = fmt.Sprintf("/health answered status %q", health.Status)
		return st
	}
	st.State, st.HiveID = wire.HiveOnline, health.HiveID
	return st
}

// Capabilities asks hive h what it has: CPU, RAM, GPUs.
func (f *Fleet) Capabilities(ctx context.Context, h config.Hive) (*wire.HiveCapabilities, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*f.opt.HealthTimeout)
	defer cancel()
	var caps wire.HiveCapabilities
	if err := f.Client(h).Get(ctx, "/v1/capabilities", &caps); err != nil {
		return nil, err
	}
	return &caps, nil
}

// Models is hive h's model catalog, each entry naming h.
func (f *Fleet) Models(ctx context.Context, h config.Hive) ([]wire.HiveModel, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*f.opt.HealthTimeout)
	defer cancel()
	ev, err := f.Run(ctx, h, wire.Operation{Operation: wire.OpModelList}, nil)
	if err != nil {
		return nil, err
	}
	var infos []wire.ModelInfo
	if err := json.Unmarshal(ev.Data, &infos); err != nil {
		return nil, fmt.Errorf("malformed model list: %v", err)
	}
	out := make([]wire.HiveModel, len(infos))
	for i, m := range infos {
		out[i] = wire.HiveModel{HiveID: h.Alias, ModelInfo: m}
	}
	return out, nil
}

// pollInterval is how often a hive that starts or stops is asked again.
const pollInterval = 100 * time.Millisecond

// Shutdown asks hive h to shut down (it stops its workers first) and waits
// up to wait until it no longer answers.
func (f *Fleet) Shutdown(ctx context.Context, h config.Hive, wait time.Duration) error {
	if err := f.Client(h).Post(ctx, "/v1/shutdown", nil, nil); err != nil {
		return wire.Errorf(wire.CodeHiveUnreachable, "hive %s did not take the shutdown request: %v", h.Alias, err)
	}
	deadline := time.Now().Add(wait)
	for f.Probe(ctx, h).State == wire.HiveOnline {
		if time.Now().After(deadline) {
			return wire.Errorf(wire.CodeInternal, "hive %s still answers %s after it was asked to shut down", h.Alias, wait)
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(pollInterval):
		}
	}
	return nil
}
