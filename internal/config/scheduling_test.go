package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSchedulingSettings(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.toml")
	load := func(text string) (Config, error) {
		t.Helper()
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return LoadFile(path)
	}
	c, err := load("")
	if err != nil || c.KeepAliveOrDefault() != DefaultKeepAlive || c.MaxQueueOrDefault() != DefaultMaxQueue {
		t.Fatalf("defaults: %+v %v", c, err)
	}
	c, err = load("keep_alive = \"90s\"\nmax_queue = 3\n")
	if err != nil || c.KeepAliveOrDefault() != 90*time.Second || c.MaxQueueOrDefault() != 3 {
		t.Fatalf("set: %+v %v", c, err)
	}
	// "0" keeps workers forever: it must not read as unset.
	c, err = load("keep_alive = \"0\"\n")
	if err != nil || c.KeepAliveOrDefault() != 0 {
		t.Fatalf("keep_alive 0: %+v %v", c, err)
	}
	for text, want := range map[string]string{
		"keep_alive = \"-1s\"\n":  "negative",
		"keep_alive = \"soon\"\n": "not a duration",
		"keep_alive = 5\n":        "not a duration",
		"max_queue = -1\n":        "max_queue",
		"max_queue = 1000000\n":   "max_queue",
	} {
		if _, err := load(text); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want an error about %q", text, err, want)
		}
	}
}
