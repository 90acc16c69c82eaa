package queen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"

	"github.com/rbee/rbee/internal/config"
	"github.com/rbee/rbee/internal/jobs"
	"github.com/rbee/rbee/internal/wire"
)

// maxSmallBody bounds the answers of /health and /v1/capabilities.
const maxSmallBody = 64 << 10

func hiveURL(h config.Hive) string {
	return "http://" + net.JoinHostPort(h.HostName, strconv.Itoa(h.HivePort))
}

func (s *Server) hiveClient(h config.Hive) *jobs.Client {
	return &jobs.Client{BaseURL: hiveURL(h), HTTP: s.opt.HTTP, Token: s.hiveToken(h.Alias)}
}

// hiveOp runs the hive_* operations that name one hive.
func (s *Server) hiveOp(name string, h config.Hive) jobs.RunFunc {
	return func(j *jobs.Job) error {
		ctx := j.Context()
		switch name {
		case wire.OpHiveGet, wire.OpHiveStatus, wire.OpHiveRefreshCapabilities:
			st := s.probe(ctx, h)
			if st.State == wire.HiveOnline {
				caps, err := s.capabilities(ctx, h)
				if err != nil {
					return wire.Errorf(wire.CodeHiveUnreachable, "hive %s answers /health but not /v1/capabilities: %v", h.Alias, err)
				}
				st.Capabilities = caps
			} else if name != wire.OpHiveGet {
				// hive_get describes a hive whatever its state; the others
				// are questions only a running hive answers.
				return unreachable(h, errors.New(st.Error))
			}
			j.Emit(wire.NewResult(st))
			return nil
		}
		if !h.IsLocal() {
			// dispatch sends remote lifecycle operations to remoteHiveOp.
			return fmt.Errorf("%s of hive %s: not an operation of the local hive", name, h.Alias)
		}
		switch name {
		case wire.OpHiveStart:
			st, err := s.local.start(ctx, j, h)
			if err != nil {
				return err
			}
			j.Emit(wire.NewResult(st))
		case wire.OpHiveStop:
			if err := s.local.stop(ctx, j, h); err != nil {
				return err
			}
			j.Emit(wire.NewResult(s.probe(ctx, h)))
		case wire.OpHiveInstall:
			path, err := s.local.binary()
			if err != nil {
				return err
			}
			j.Narrate("install", "The local hive needs no install: it runs "+path)
			j.Emit(wire.NewResult(map[string]string{"alias": h.Alias, "binary": path}))
		case wire.OpHiveUninstall:
			j.Narrate("uninstall", "The local hive has nothing to uninstall: it runs the rbee-hive installed beside queen-rbee")
			j.Emit(wire.NewResult(map[string]string{"alias": h.Alias}))
		}
		return nil
	}
}

func (s *Server) runHiveList(j *jobs.Job) error {
	hives, err := s.opt.Hives()
	if err != nil {
		return fmt.Errorf("reading the hive list: %w", err)
	}
	j.Emit(wire.NewResult(s.probeAll(j.Context(), hives)))
	return nil
}

// probeAll asks every hive's /health at once, so the slowest hive, not
// their sum, bounds a listing.
func (s *Server) probeAll(ctx context.Context, hives []config.Hive) []wire.HiveStatus {
	out := make([]wire.HiveStatus, len(hives))
	var wg sync.WaitGroup
	for i, h := range hives {
		wg.Go(func() { out[i] = s.probe(ctx, h) })
	}
	wg.Wait()
	return out
}

// probe reports whether hive h answers GET /health like a hive.
func (s *Server) probe(ctx context.Context, h config.Hive) wire.HiveStatus {
	st := wire.HiveStatus{Alias: h.Alias, Host: h.HostName, HivePort: h.HivePort, URL: hiveURL(h), State: wire.HiveOffline}
	ctx, cancel := context.WithTimeout(ctx, s.opt.HealthTimeout)
	defer cancel()
	var health wire.HiveHealth
	if err := s.getJSON(ctx, st.URL+"/health", &health); err != nil {
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

func (s *Server) capabilities(ctx context.Context, h config.Hive) (*wire.HiveCapabilities, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*s.opt.HealthTimeout)
	defer cancel()
	var caps wire.HiveCapabilities
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, hiveURL(h)+"/v1/capabilities", nil)
	if err != nil {
		return nil, err
	}
	if tok := s.hiveToken(h.Alias); tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if err := s.do(req, &caps); err != nil {
		return nil, err
	}
	return &caps, nil
}

// getJSON GETs a small JSON answer.
func (s *Server) getJSON(ctx context.Context, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	return s.do(req, v)
}

func (s *Server) do(req *http.Request, v any) error {
	if s.opt.Token != "" && req.Header.Get("Authorization") == "" {
		req.Header.Set("Authorization", "Bearer "+s.opt.Token)
	}
	resp, err := s.opt.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxSmallBody+1))
	if err != nil {
		return err
	}
	if len(body) > maxSmallBody {
		return fmt.Errorf("%s: answer larger than %d bytes", req.URL.Path, maxSmallBody)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s answered %s: %.200s", req.URL.Path, resp.Status, bytes.TrimSpace(body))
	}
	if v == nil {
		return nil
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("%s: malformed answer: %v", req.URL.Path, err)
	}
	return nil
}
