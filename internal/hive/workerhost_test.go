package hive

import (
	"strings"
	"testing"
)

// Workers on an address other machines reach need a token; hostile
// addresses are refused before any worker starts.
func TestWorkerHostNeedsAToken(t *testing.T) {
	dir := t.TempDir()
	cfg := func(host string) *Config {
		return &Config{WorkerHost: host, DataDir: dir, LogDir: dir}
	}
	t.Setenv("RBEE_WORKER_TOKEN", "")
	if err := cfg("10.0.0.5").setDefaults(); err == nil || !strings.Contains(err.Error(), "RBEE_WORKER_TOKEN") {
		t.Fatalf("no token: %v", err)
	}
	for _, host := range []string{"-oProxyCommand=x", "a;b", "$(id)", "a b"} {
		if err := cfg(host).setDefaults(); err == nil {
			t.Errorf("worker host %q accepted", host)
		}
	}
	t.Setenv("RBEE_WORKER_TOKEN", "secret")
	c := cfg("10.0.0.5")
	if err := c.setDefaults(); err != nil {
		t.Fatal(err)
	}
	if c := cfg(""); c.setDefaults() != nil || c.WorkerHost != "127.0.0.1" {
		t.Fatalf("default worker host %q", c.WorkerHost)
	}
}

func TestParseListeningOnAnyHost(t *testing.T) {
	if got, err := parseListeningOn("listening http://10.231.1.2:4000", true); err != nil || got != "http://10.231.1.2:4000" {
		t.Errorf("got %q %v", got, err)
	}
	for _, line := range []string{"listening http://0.0.0.0:4000", "listening http://[::]:4000"} {
		if got, err := parseListeningOn(line, true); err == nil {
			t.Errorf("%q: %q accepted", line, got)
		}
	}
	if _, err := parseListeningOn("listening http://10.231.1.2:4000", false); err == nil {
		t.Error("a non-loopback address accepted for a loopback worker")
	}
}
