package workers

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"unicode"
	"unicode/utf8"

	"github.com/rbee/rbee/internal/wire"
)

// maxText bounds the free-text fields of a heartbeat (device names).
const maxText = 128

// maxCount bounds slot and queue counts: anything larger is a broken or
// hostile sender, and would skew the least-busy choice.
const maxCount = 1 << 20

// Validate checks a heartbeat from the network before the registry or the
// scheduler trusts it: the queen will post prompts to its URL.
func Validate(hb wire.Heartbeat) error {
	// The names are the ones every part of rbee checks alike: the queen
	// must not list a worker under a name the CLI or a hive refuses.
	if err := wire.CheckWorkerID(hb.WorkerID); err != nil {
		return fmt.Errorf("worker_id: %w", err)
	}
	if err := wire.CheckHiveID(hb.HiveID); err != nil {
		return fmt.Errorf("hive_id: %w", err)
	}
	if err := wire.CheckModelID(hb.Model); err != nil {
		return fmt.Errorf("model: %w", err)
	}
	if hb.Device != "" {
		if err := checkText("device", hb.Device); err != nil {
			return err
		}
	}
	if hb.DeviceName != "" {
		if err := checkText("device_name", hb.DeviceName); err != nil {
			return err
		}
	}
	if hb.GPULayers < 0 || hb.GPULayers > maxCount {
		return fmt.Errorf("gpu_layers must be from 0 to %d, got %d", maxCount, hb.GPULayers)
	}
	switch hb.State {
	case wire.StateLoading, wire.StateReady, wire.StateBusy, wire.StateError, wire.StateGone:
	default:
		return fmt.Errorf("state %q is not one of loading, ready, busy, error, gone", hb.State)
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"slots", hb.Slots}, {"active", hb.Active}, {"queue_len", hb.QueueLen}} {
		if f.v < 0 || f.v > maxCount {
			return fmt.Errorf("%s must be from 0 to %d, got %d", f.name, maxCount, f.v)
		}
	}
	if hb.PID < 0 {
		return fmt.Errorf("pid must not be negative, got %d", hb.PID)
	}
	if c := hb.Cache; c != nil {
		if c.Sequences < 0 || c.Tokens < 0 || c.RAMBytes < 0 || c.BudgetBytes < 0 || c.PromptTokens < 0 ||
			c.CachedTokens < 0 || c.CachedTokens > c.PromptTokens {
			return fmt.Errorf("cache: counts must not be negative, nor cached_tokens above prompt_tokens: %+v", *c)
		}
	}
	return CheckURL(hb.URL)
}

// CheckURL accepts an http(s) URL with a host and a port, and nothing else
// (no user info, query or fragment).
func CheckURL(s string) error {
	if len(s) > 512 {
		return fmt.Errorf("url is %d bytes; the limit is 512", len(s))
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("url %q: %v", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("url %q: the scheme must be http or https", s)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return fmt.Errorf("url %q: only scheme, host, port and path are allowed", s)
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil || host == "" {
		return fmt.Errorf("url %q: want host:port", s)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("url %q: %q is not a port", s, port)
	}
	return nil
}

// checkText accepts a non-empty printable text of at most maxText bytes;
// field names it in the error.
func checkText(field, v string) error {
	if v == "" {
		return fmt.Errorf("%s is required", field)
	}
	if len(v) > maxText {
		return fmt.Errorf("%s is %d bytes; the limit is %d", field, len(v), maxText)
	}
	if !utf8.ValidString(v) {
		return fmt.Errorf("%s is not valid UTF-8", field)
	}
	for _, c := range v {
		if !unicode.IsPrint(c) {
			return fmt.Errorf("%s %q contains a character that is not printable", field, v)
		}
	}
	return nil
}
